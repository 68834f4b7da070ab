"""The exceptions of bettensor_core, and the stable error codes on the wire.

Lower-level errors (``websockets``, ``httpx``, ``msgspec``, the wallet) are
mapped to these in one place each, so callers catch only what is here.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Codes of the `Error` message; `docs/protocol.md` explains each."""

    MALFORMED = "malformed"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    BAD_SIGNATURE = "bad_signature"
    BAD_SENDER = "bad_sender"
    SENDER_MISMATCH = "sender_mismatch"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    REPLAYED_NONCE = "replayed_nonce"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    HELLO_REQUIRED = "hello_required"
    UNEXPECTED_MESSAGE = "unexpected_message"
    UNTRUSTED_VALIDATOR = "untrusted_validator"


class BettensorError(Exception):
    """Base of every error raised by bettensor_core."""


class ProtocolError(BettensorError):
    """A message could not be accepted; ``code`` says why, ``ref`` its nonce."""

    def __init__(self, code: ErrorCode, message: str, ref: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


class IdentityError(BettensorError):
    """A hotkey could not be loaded, unlocked or created."""


class ConfigError(BettensorError):
    """The configuration file, environment or flags hold a bad value.

    ``key`` and ``source`` name the first bad key and where it came from
    (a flag, an environment variable, or a file and line); the message names
    every bad key.
    """

    def __init__(self, message: str, key: str | None = None, source: str | None = None):
        super().__init__(message)
        self.key = key
        self.source = source


class TransportError(BettensorError):
    """A link to a validator failed; the link retries on its own."""


class WagerError(BettensorError, ValueError):
    """A wager typed by the miner is refused before anything is sent."""
