"""``python -m validator_stub`` / ``bettensor-validator-stub``: run the stub.

Prints one line, ``validator stub on http://HOST:PORT hotkey SS58``, once it
listens (with ``--port 0`` that line tells a parent process the port), and
stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import logging
import math
import signal
import sys
from collections.abc import Callable, Sequence

from bettensor_core.codec import DEFAULT_MAX_MESSAGE_BYTES, Signer
from bettensor_core.identity import load_signer
from validator_stub.config import (
    DEFAULT_HOST,
    DEFAULT_HOTKEY_URI,
    DEFAULT_PORT,
    Limits,
    StubConfig,
    default_db_path,
)
from validator_stub.server import StubServer
from validator_stub.store import StoreError

log = logging.getLogger("validator_stub")

# Below this not even a hello or a single prediction fits in a message.
MIN_MESSAGE_BYTES = 1024
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _number(
    kind: Callable[[str], float], what: str, low: float, high: float = math.inf
) -> Callable[[str], float]:
    """An argparse type: a finite number within [low, high], else a clear error."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or not low <= value <= high:
            bounds = f"at least {low:g}" if high == math.inf else f"{low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is out of range ({bounds})")
        return value

    return parse


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # 0 would refuse every message; infinity would turn the limit off unseen.
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate above 0 (messages a second)"
        )
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bettensor-validator-stub",
        description="A local Bettensor validator: WebSocket /ws and HTTP on one port.",
    )
    limits = Limits()
    add = parser.add_argument
    add("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    add(
        "--port",
        type=_number(int, "a port number", 0, 65535),
        default=DEFAULT_PORT,
        help="0 picks a free port (default %(default)s)",
    )
    add(
        "--db",
        default=None,
        help=f"SQLite file or :memory: (default {default_db_path()})",
    )
    add("--seed", type=int, default=7, help="demo season seed (default %(default)s)")
    add(
        "--games",
        type=_number(int, "a whole number", 1, 100_000),
        default=60,
        help="open games to keep (default 60)",
    )
    add(
        "--speed",
        type=_number(float, "a number", 0),
        default=1.0,
        help="season time runs X times faster; 0 freezes it (default 1)",
    )
    add("--no-websocket", action="store_true", help="refuse WebSocket upgrades (403)")
    add(
        "--hotkey-uri",
        default=DEFAULT_HOTKEY_URI,
        help="development hotkey URI (default %(default)s)",
    )
    add("--wallet.path", dest="wallet_path", default=None, help="bittensor wallets")
    add("--wallet.name", dest="wallet_name", default=None, help="wallet to sign with")
    add("--wallet.hotkey", dest="wallet_hotkey", default=None, help="its hotkey")
    add(
        "--max-connections",
        type=_number(int, "a whole number", 1),
        default=limits.max_connections,
        help="open WebSockets allowed at once (default %(default)s)",
    )
    add(
        "--max-message-bytes",
        type=_number(int, "a whole number", MIN_MESSAGE_BYTES),
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest frame or body accepted (default %(default)s)",
    )
    add(
        "--rate",
        type=_positive_rate,
        default=limits.rate,
        help="messages a second per miner, burst twice this (default %(default)g)",
    )
    add(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="DEBUG shows every frame (default %(default)s)",
    )
    return parser.parse_args(argv)


def make_signer(args: argparse.Namespace) -> Signer:
    """The stub's hotkey: a wallet's when a wallet is named, else the dev URI.

    The wallet is read as the miner reads its own (`load_signer`): btcli's
    defaults for what is not given, a password prompt for an encrypted
    hotkey, and one sentence naming the file when it cannot be used.
    """
    if args.wallet_name or args.wallet_hotkey or args.wallet_path:
        return load_signer(
            args.wallet_path or "~/.bittensor/wallets",
            args.wallet_name or "default",
            args.wallet_hotkey or "default",
            ask_password=lambda: getpass.getpass("stub hotkey password: "),
        )
    return Signer.from_uri(args.hotkey_uri)


def make_config(args: argparse.Namespace) -> StubConfig:
    limits = Limits(
        max_connections=args.max_connections,
        max_message_bytes=args.max_message_bytes,
        rate=args.rate,
        burst=2 * args.rate,
    )
    return StubConfig(
        host=args.host,
        port=args.port,
        db=args.db,
        seed=args.seed,
        games=args.games,
        speed=args.speed,
        websocket_enabled=not args.no_websocket,
        limits=limits,
        signer=make_signer(args),
    )


async def serve(config: StubConfig) -> None:
    """Run until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with StubServer(config) as stub:
        print(f"validator stub on {stub.url} hotkey {stub.ss58}", flush=True)
        await stop.wait()
        log.info("stopping")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # uvicorn logs two lines per WebSocket; the stub's own line says enough.
    logging.getLogger("uvicorn.error").setLevel(
        max(logging.WARNING, logging.getLogger().level)
    )
    try:
        config = make_config(args)
    except Exception as exc:
        sys.exit(f"cannot load the stub's hotkey: {exc}")
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        sys.exit(f"cannot start the validator stub: {_bind_problem(exc, args)}")
    except StoreError as exc:
        sys.exit(f"cannot start the validator stub: {exc}")


def _bind_problem(exc: OSError, args: argparse.Namespace) -> str:
    """Say which address failed and what to do, for the two usual cases."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{args.host}:{args.port} is already in use (another stub?); "
            "choose another port with --port N, or --port 0 for a free one"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{args.host} is not an address of this machine (--host)"
    return str(exc)


if __name__ == "__main__":
    main()
