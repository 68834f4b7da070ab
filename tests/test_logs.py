"""The log file and the secret-redacting filter."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bittensor_wallet import Keypair

from bettensor_core.logs import REDACTED, SecretFilter, redact, setup_logging


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    """The root logger, restored to its handlers and level after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


@pytest.mark.parametrize(
    "text",
    [
        "unlock password=hunter2hunter2 failed",
        "unlock password: 'hunter2hunter2'",
        '{"secretPhrase": "hunter2hunter2", "x": 1}',
        "PASSWD=hunter2hunter2",
        "seed=hunter2hunter2",
        "api_key = hunter2hunter2",
    ],
)
def test_named_secrets_are_blanked(text: str) -> None:
    """Values after password/seed/secret-like names never survive."""
    cleaned = redact(text)
    assert "hunter2hunter2" not in cleaned
    assert REDACTED in cleaned


def test_hex_key_material_is_blanked() -> None:
    """A 32-byte (or longer) hex string, with or without 0x, is blanked."""
    seed = "0x" + "ab" * 32
    assert redact(f"seed is {seed} here") == f"seed is {REDACTED} here"
    assert "cd" * 64 not in redact("key " + "cd" * 64)


def test_real_mnemonics_are_blanked_and_prose_is_not() -> None:
    """A BIP-39 mnemonic is blanked; a long ordinary sentence stays readable."""
    mnemonic = Keypair.generate_mnemonic(12)
    cleaned = redact(f"restored from {mnemonic} ok")
    assert cleaned == f"restored from {REDACTED} ok"
    mnemonic24 = Keypair.generate_mnemonic(24)
    assert mnemonic24.split()[5] not in redact(mnemonic24).split()

    # Fifteen short lowercase words: shaped like a mnemonic, without its checksum.
    prose = (
        "every miner should check that each server sends fresh odds "
        "before kickoff and after halftime"
    )
    assert redact(prose) == prose


def test_ordinary_lines_are_untouched() -> None:
    """Nonces, addresses, URLs and numbers pass unchanged."""
    line = (
        "connected to ws://127.0.0.1:8091/ws as 5DDFQACqNnYAVdAaKnED1v1xYHEGqGhAza8v"
        "6FHsTBUoztL6 nonce 9f1c2e3d4c5b6a79 seq=42 rtt=1.5ms"
    )
    assert redact(line) == line


def test_filter_redacts_message_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Secrets passed as %-arguments or inside an exception are blanked."""
    logger = logging.getLogger("test.secret")
    logger.addFilter(SecretFilter())
    try:
        with caplog.at_level(logging.INFO, logger="test.secret"):
            logger.info("login with password=%s", "hunter2hunter2")
            try:
                raise ValueError("bad mnemonic=hunter2hunter2")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.filters.clear()
    assert "hunter2hunter2" not in caplog.text
    assert caplog.records[0].getMessage() == f"login with password={REDACTED}"


def test_setup_logging_writes_a_redacted_file_and_not_the_terminal(
    tmp_path: Path,
    clean_root: logging.Logger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Records go to miner.log in the given folder, redacted, and nowhere else."""
    terminal = logging.StreamHandler(sys.stderr)
    clean_root.addHandler(terminal)

    path = setup_logging(tmp_path / "logs", "DEBUG")
    assert path == tmp_path / "logs" / "miner.log"
    assert terminal not in clean_root.handlers
    logging.getLogger("bettensor_core.test").debug("frame password=%s", "hunter2xx")
    for handler in clean_root.handlers:
        handler.flush()

    text = path.read_text(encoding="utf-8")
    assert "frame password=" + REDACTED in text
    assert "hunter2xx" not in text
    captured = capsys.readouterr()
    assert "frame" not in captured.err and "frame" not in captured.out


def test_setup_logging_twice_keeps_one_file_handler(
    tmp_path: Path, clean_root: logging.Logger
) -> None:
    """Calling setup_logging again replaces its handler instead of doubling lines."""
    setup_logging(tmp_path, "INFO")
    path = setup_logging(tmp_path, "WARNING")
    logging.getLogger("x").warning("once")
    for handler in clean_root.handlers:
        handler.flush()
    assert path.read_text(encoding="utf-8").count("once") == 1
    assert clean_root.level == logging.WARNING


def test_bad_level_is_refused(tmp_path: Path, clean_root: logging.Logger) -> None:
    """An unknown level name raises ValueError naming it."""
    with pytest.raises(ValueError, match="LOUD"):
        setup_logging(tmp_path, "LOUD")


@pytest.mark.parametrize(("level", "kept"), [("INFO", False), ("DEBUG", True)])
def test_per_request_library_lines_stay_out_unless_debugging(
    tmp_path: Path, clean_root: logging.Logger, level: str, kept: bool
) -> None:
    """httpx's INFO line per request is left out at INFO; its warnings never are."""
    httpx_log = logging.getLogger("httpx")
    before = httpx_log.level
    try:
        path = setup_logging(tmp_path, level)
        httpx_log.info('HTTP Request: POST /v1/events "HTTP/1.1 200 OK"')
        httpx_log.warning("connection pool is full")
        for handler in clean_root.handlers:
            handler.flush()
        text = path.read_text(encoding="utf-8")
        assert ("POST /v1/events" in text) is kept
        assert "connection pool is full" in text
    finally:
        httpx_log.setLevel(before)
