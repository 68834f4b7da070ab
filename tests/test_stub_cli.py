"""The stub's command line refuses values it cannot run with, in one clear line."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from validator_stub.__main__ import main, parse_args


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--port", "99999"], "argument --port: '99999' is out of range (0 to 65535)"),
        (["--port", "http"], "argument --port: 'http' is not a port number"),
        (["--games", "0"], "argument --games: '0' is out of range (1 to 100000)"),
        (["--games", "-3"], "argument --games: '-3' is out of range"),
        (["--speed", "-1"], "argument --speed: '-1' is out of range (at least 0)"),
        (["--speed", "nan"], "argument --speed: 'nan' is out of range"),
        (["--max-connections", "0"], "argument --max-connections: '0' is out of"),
        (["--max-message-bytes", "10"], "'10' is out of range (at least 1024)"),
        (["--rate", "0"], "argument --rate: '0' is not a rate above 0"),
        (["--rate", "-2"], "argument --rate: '-2' is not a rate above 0"),
        (["--rate", "inf"], "argument --rate: 'inf' is not a rate above 0"),
        (["--log-level", "loud"], "argument --log-level: invalid choice: 'LOUD'"),
    ],
)
def test_bad_flag_values_are_refused(flags, said, capsys):
    """A value the stub cannot run with stops it with argparse's one-line error."""
    with pytest.raises(SystemExit) as stopped:
        parse_args(flags)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err


def test_flag_values_at_their_limits_are_taken():
    """The smallest useful values and a lower-case log level are accepted."""
    args = parse_args(
        [
            *("--port", "0", "--games", "1", "--speed", "0"),
            *("--max-connections", "1", "--max-message-bytes", "1024"),
            *("--rate", "0.5", "--log-level", "debug"),
        ]
    )
    assert (args.port, args.games, args.speed) == (0, 1, 0.0)
    assert (args.max_connections, args.max_message_bytes) == (1, 1024)
    assert (args.rate, args.log_level) == (0.5, "DEBUG")


def test_busy_port_is_named_with_what_to_do():
    """A port already taken ends the stub with one sentence, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "validator_stub", "--port", str(port)),
                *("--db", ":memory:", "--speed", "0"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        f"cannot start the validator stub: 127.0.0.1:{port} is already in use "
        "(another stub?); choose another port with --port N, or --port 0 for a "
        "free one"
    )
    assert "Traceback" not in done.stderr


def test_missing_wallet_hotkey_is_one_sentence_naming_the_file(tmp_path):
    """--wallet.* naming no hotkey file stops the stub with the miner's wording."""
    with pytest.raises(SystemExit) as stopped:
        main(["--wallet.path", str(tmp_path), "--wallet.name", "nobody"])
    assert stopped.value.code == (
        "cannot load the stub's hotkey: No hotkey file at "
        f"{tmp_path}/nobody/hotkeys/default. Check the wallet path, wallet name "
        "and hotkey name (btcli wallet list shows them)."
    )
