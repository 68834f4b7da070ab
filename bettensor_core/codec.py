"""The one codec of both transports: signed JSON envelopes.

A message on the wire is a JSON object::

    {"v": 1, "type": "prediction", "sender": "5F...", "ts": 1764790000123,
     "nonce": "9f1c...", "body": {...}, "sig": "0x..."}

``sig`` is the sender's sr25519 signature of `signed_bytes`: the version, type,
sender, millisecond timestamp and nonce, each on a line, followed by the exact
bytes of ``body`` as they were sent (msgspec keeps them raw on decoding). So
the signature covers the bytes sent, the sender, the time and a single-use
nonce, and a WebSocket frame and an HTTP body carry the very same bytes.

Checking freshness and nonce reuse needs memory of what was seen; that is
`NonceGuard`, kept apart so the validator can persist it.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated

import msgspec
from bittensor_wallet import Keypair

from bettensor_core.errors import ErrorCode, ProtocolError
from bettensor_core.protocol import MESSAGE_TYPES, PROTOCOL_VERSION, TYPE_NAMES, Body

# A message older or newer than this (seconds) against the receiver's clock is
# refused; nonces are remembered for twice as long, so no replay slips between.
FRESHNESS_WINDOW = 30.0
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024


# A nonce is kept by the receiver until it expires, so its size is bounded;
# newlines and the like could blur the signed payload's lines.
NONCE_PATTERN = "^[0-9A-Za-z_-]{1,64}$"
Nonce = Annotated[str, msgspec.Meta(pattern=NONCE_PATTERN)]


class Envelope(msgspec.Struct, frozen=True):
    """The signed wrapper around every message body."""

    v: int
    type: str
    sender: str
    ts: int
    nonce: Nonce
    body: msgspec.Raw
    sig: str


class Signed(msgspec.Struct, frozen=True):
    """A decoded, signature-checked message: who sent what, when."""

    type: str
    sender: str
    ts: int
    nonce: str
    body: Body


def signed_bytes(
    v: int, type_: str, sender: str, ts: int, nonce: str, body: bytes
) -> bytes:
    """The exact bytes a signature covers."""
    head = f"bettensor/{v}\n{type_}\n{sender}\n{ts}\n{nonce}\n"
    return head.encode() + body


class Signer:
    """Signs outgoing messages with one sr25519 hotkey."""

    def __init__(self, keypair: Keypair):
        self._keypair = keypair
        self.ss58 = keypair.ss58_address

    @classmethod
    def from_uri(cls, uri: str) -> Signer:
        """A development hotkey from a derivation URI such as ``//alice``."""
        return cls(Keypair.create_from_uri(uri))

    def sign(self, data: bytes) -> bytes:
        return bytes(self._keypair.sign(data))

    def __repr__(self) -> str:
        # Only the public address; the keypair never reaches a log line.
        return f"Signer({self.ss58})"


_encoder = msgspec.json.Encoder()
_envelope_decoder = msgspec.json.Decoder(Envelope)
_body_decoders = {
    name: msgspec.json.Decoder(cls) for name, cls in MESSAGE_TYPES.items()
}


def new_nonce() -> str:
    return os.urandom(16).hex()


def encode(
    body: Body, signer: Signer, *, ts: int | None = None, nonce: str | None = None
) -> bytes:
    """Sign ``body`` and return the envelope bytes, ready for either transport."""
    type_ = TYPE_NAMES[type(body)]
    raw = _encoder.encode(body)
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = new_nonce() if nonce is None else nonce
    sig = signer.sign(
        signed_bytes(PROTOCOL_VERSION, type_, signer.ss58, ts, nonce, raw)
    )
    envelope = Envelope(
        v=PROTOCOL_VERSION,
        type=type_,
        sender=signer.ss58,
        ts=ts,
        nonce=nonce,
        body=msgspec.Raw(raw),
        sig="0x" + sig.hex(),
    )
    return _encoder.encode(envelope)


class _KeyCache:
    """Public keys by ss58 address; parsing an address costs more than verifying."""

    def __init__(self, size: int = 4096):
        self._size = size
        self._keys: OrderedDict[str, Keypair] = OrderedDict()

    def get(self, ss58: str) -> Keypair:
        key = self._keys.get(ss58)
        if key is None:
            key = Keypair(ss58_address=ss58)
            self._keys[ss58] = key
            if len(self._keys) > self._size:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(ss58)
        return key


_keys = _KeyCache()


def decode(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Signed:
    """Parse an envelope, check its signature and decode its body.

    Freshness and nonce reuse are not checked here: see `NonceGuard`.
    Raises `ProtocolError` with a stable code for anything wrong.
    """
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"message of {len(data)} bytes exceeds {max_bytes}"
        )

    try:
        env = _envelope_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.MALFORMED, f"bad envelope: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.MALFORMED, f"not valid JSON: {exc}") from None

    if env.v != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {env.v} is not supported (expected {PROTOCOL_VERSION})",
            env.nonce,
        )
    body_decoder = _body_decoders.get(env.type)
    if body_decoder is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown message type {env.type!r}", env.nonce
        )

    # Check the signature before trusting anything in the body.
    try:
        key = _keys.get(env.sender)
    except Exception:
        raise ProtocolError(
            ErrorCode.BAD_SENDER,
            f"sender {env.sender!r} is not an ss58 address",
            env.nonce,
        ) from None
    try:
        sig = bytes.fromhex(env.sig.removeprefix("0x"))
    except ValueError:
        sig = b""
    payload = signed_bytes(
        env.v, env.type, env.sender, env.ts, env.nonce, bytes(env.body)
    )
    if len(sig) != 64 or not key.verify(payload, sig):
        raise ProtocolError(
            ErrorCode.BAD_SIGNATURE,
            "signature does not match sender and content",
            env.nonce,
        )

    try:
        body = body_decoder.decode(env.body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProtocolError(
            ErrorCode.MALFORMED, f"bad {env.type} body: {exc}", env.nonce
        ) from None
    return Signed(
        type=env.type, sender=env.sender, ts=env.ts, nonce=env.nonce, body=body
    )


class NonceGuard:
    """Refuses stale or future timestamps and any nonce seen inside the window.

    ``on_seen`` is called with (sender, nonce, ts_ms) for each accepted message
    so that a validator can persist nonces across a restart; `remember` loads
    them back.
    """

    def __init__(
        self,
        window: float = FRESHNESS_WINDOW,
        clock: Callable[[], float] = time.time,
        on_seen: Callable[[str, str, int], None] | None = None,
    ):
        self.window = window
        self._clock = clock
        self._on_seen = on_seen
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()

    def remember(self, sender: str, nonce: str, ts: int) -> None:
        self._seen[(sender, nonce)] = ts

    def check(self, msg: Signed) -> None:
        """Raise `ProtocolError` if ``msg`` is stale, from the future, or replayed."""
        now_ms = self._clock() * 1000
        window_ms = self.window * 1000
        if msg.ts < now_ms - window_ms:
            raise ProtocolError(
                ErrorCode.STALE_TIMESTAMP,
                f"timestamp is {(now_ms - msg.ts) / 1000:.1f} s old "
                f"(at most {self.window:.0f} s allowed)",
                msg.nonce,
            )
        if msg.ts > now_ms + window_ms:
            raise ProtocolError(
                ErrorCode.FUTURE_TIMESTAMP,
                f"timestamp is {(msg.ts - now_ms) / 1000:.1f} s in the future",
                msg.nonce,
            )
        self._expire(now_ms - 2 * window_ms)
        key = (msg.sender, msg.nonce)
        if key in self._seen:
            raise ProtocolError(
                ErrorCode.REPLAYED_NONCE, "nonce was already used", msg.nonce
            )
        self._seen[key] = msg.ts
        if self._on_seen is not None:
            self._on_seen(msg.sender, msg.nonce, msg.ts)

    def _expire(self, before_ms: float) -> None:
        # Entries arrive roughly in time order; drop from the front until fresh.
        while self._seen:
            key, ts = next(iter(self._seen.items()))
            if ts >= before_ms:
                break
            del self._seen[key]

    def __len__(self) -> int:
        return len(self._seen)
