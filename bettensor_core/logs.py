"""Logging for the miner: one rotating file, and a filter that hides secrets.

While the terminal app runs, nothing may be written to the terminal but the
app itself, so `setup_logging` sends every record to a rotating file in
``platformdirs.user_log_dir("bettensor")`` (or the given folder) and removes
root handlers that write to the terminal. `SecretFilter` is a safety net
on that file: the code never logs a password, a seed or a mnemonic on
purpose, and the filter blanks anything that looks like one anyway.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from pathlib import Path

import platformdirs

LOG_FILE_NAME = "miner.log"
REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# "password=...", "seed: ...", '"secretPhrase": "..."' and friends: the value
# runs to the end of a quoted string or to the next space, comma or brace.
_NAMED_SECRET = re.compile(
    r"""(?ix)
    (?P<key>["']?\b(?:
        password|passwd|passphrase|pass_phrase|pwd|
        secret(?:_?seed|_?phrase|_?key)?|private_?key|seed(?:_?hex)?|
        mnemonic|api_?key|token|authorization
    )\b["']?\s*[:=]\s*)
    (?P<value>"[^"]*"|'[^']*'|[^\s,;}\]]+)
    """
)

# Raw key material: 32 bytes or more in hex (seeds, private keys).
_HEX_SECRET = re.compile(r"\b(?:0x)?[0-9a-fA-F]{64,}\b")

# Candidate mnemonics: twelve or more short lowercase words in a row; each
# run is checked against the BIP-39 checksum before it is blanked.
_WORD_RUN = re.compile(r"\b[a-z]{3,8}(?: [a-z]{3,8}){11,}\b")
_MNEMONIC_LENGTHS = (24, 21, 18, 15, 12)


def redact(text: str) -> str:
    """``text`` with anything that looks like a secret replaced by a marker."""
    text = _NAMED_SECRET.sub(lambda m: m.group("key") + REDACTED, text)
    text = _HEX_SECRET.sub(REDACTED, text)
    if _WORD_RUN.search(text):
        text = _WORD_RUN.sub(_redact_mnemonics, text)
    return text


def _redact_mnemonics(match: re.Match[str]) -> str:
    words = match.group(0).split(" ")
    out: list[str] = []
    i = 0
    while i < len(words):
        for length in _MNEMONIC_LENGTHS:
            window = words[i : i + length]
            if len(window) == length and _is_mnemonic(" ".join(window)):
                out.append(REDACTED)
                i += length
                break
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _is_mnemonic(phrase: str) -> bool:
    try:
        from bittensor_wallet import Keypair

        Keypair.create_from_mnemonic(phrase)
    except Exception:
        return False
    return True


class SecretFilter(logging.Filter):
    """Rewrites each record so that secrets in its text never reach a handler.

    The message is formatted once (with its arguments) and redacted, and so
    is the traceback of an exception, which formatters then reuse.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info)
            )
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir("bettensor", appauthor=False))


class _MinerFileHandler(logging.handlers.RotatingFileHandler):
    """Marks the handler `setup_logging` installed, so a second call replaces it."""


# Libraries whose INFO lines are one per request.
CHATTY_LOGGERS = ("httpx", "httpcore")


def setup_logging(
    log_dir: str | Path | None = None,
    level: str | int = "INFO",
    *,
    file_name: str = LOG_FILE_NAME,
    max_bytes: int = 1_000_000,
    backup_count: int = 5,
    quiet_terminal: bool = True,
) -> Path:
    """Send all logging to a rotating file and return the file's path.

    Args:
        log_dir: the folder; ``user_log_dir("bettensor")`` when None.
        level: the root level, a name ("DEBUG") or a number.
        quiet_terminal: remove root handlers that write to stdout or stderr
            and route `warnings` to the log, for while the TUI runs.

    Calling it again replaces the earlier file handler instead of adding one.
    """
    root_level = _level(level)
    folder = Path(log_dir).expanduser() if log_dir is not None else default_log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name

    root = logging.getLogger()
    for handler in list(root.handlers):
        to_terminal = isinstance(handler, logging.StreamHandler) and getattr(
            handler, "stream", None
        ) in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        if isinstance(handler, _MinerFileHandler) or (quiet_terminal and to_terminal):
            root.removeHandler(handler)
            handler.close()

    handler = _MinerFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(SecretFilter())
    root.addHandler(handler)
    root.setLevel(root_level)
    # httpx logs every request at INFO: each long-poll and heartbeat would bury
    # the link's own lines. Its warnings stay, and DEBUG shows everything.
    for name in CHATTY_LOGGERS:
        chatty = logging.getLogger(name)
        chatty.setLevel(root_level if root_level <= logging.DEBUG else logging.WARNING)
    if quiet_terminal:
        logging.captureWarnings(True)
    logging.getLogger(__name__).info("logging to %s", path)
    return path


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number
