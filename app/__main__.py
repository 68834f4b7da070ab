"""The `bettensor-miner` command (also ``python -m app``).

With no configuration it starts an embedded validator stub on a free loopback
port with demo games, uses a local development hotkey, and opens the app.
``bettensor-miner serve`` serves the same app to a browser (`app.serve`).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bettensor_core.errors import BettensorError

log = logging.getLogger("app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bettensor-miner",
        description=(
            "Terminal app for Bettensor miners. With no validator configured it "
            "starts a local demo validator with demo games."
        ),
        epilog=(
            "'bettensor-miner serve --help' serves the app to a browser. "
            "Screens, keys and errors: docs/app.md."
        ),
    )
    parser.add_argument(
        "--validator",
        action="append",
        metavar="URL[#SS58]",
        help="a validator to connect to (repeatable); #SS58 pins its hotkey",
    )
    parser.add_argument(
        "--wallet.path",
        dest="wallet_path",
        metavar="PATH",
        help="the wallets folder (default ~/.bittensor/wallets)",
    )
    parser.add_argument(
        "--wallet.name", dest="wallet_name", metavar="NAME", help="the wallet's name"
    )
    parser.add_argument(
        "--wallet.hotkey",
        dest="wallet_hotkey",
        metavar="HOTKEY",
        help="the hotkey to sign with (default: a local development hotkey)",
    )
    parser.add_argument("--config", metavar="PATH", help="the TOML config file")
    parser.add_argument("--data-dir", metavar="PATH", help="where the miner keeps data")
    parser.add_argument(
        "--demo-games",
        type=int,
        metavar="N",
        help="how many games the demo validator starts with",
    )
    parser.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="demo time runs X times faster (0 freezes the demo)",
    )
    return parser


def _flags(args: argparse.Namespace) -> dict[str, object]:
    return {
        "validators": args.validator,
        "wallet_path": args.wallet_path,
        "wallet_name": args.wallet_name,
        "wallet_hotkey": args.wallet_hotkey,
        "data_dir": args.data_dir,
    }


def _ask_password() -> str | None:
    if not sys.stdin.isatty():
        return None
    return getpass.getpass("Hotkey password: ")


def _ask_remember() -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input("Remember this password in the system keyring? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app (or ``serve``); returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":
        from app import serve

        return int(serve.main(argv[1:]) or 0)

    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BettensorError as exc:
        print(f"bettensor-miner: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from app.miner import MinerApp
    from app.session import DemoOptions, open_session
    from bettensor_core.config import load_config
    from bettensor_core.identity import dev_signer, load_signer
    from bettensor_core.logs import setup_logging

    config_path = Path(args.config).expanduser() if args.config else None
    config = load_config(_flags(args), path=config_path)
    log_file = setup_logging(config.log_dir)

    # The hotkey is unlocked before the screen takes over the terminal, so a
    # password prompt is an ordinary prompt.
    if config.wallet_hotkey is None:
        signer = dev_signer(config.data_dir)
    else:
        signer = load_signer(
            config.wallet_path,
            config.wallet_name,
            config.wallet_hotkey,
            ask_password=_ask_password,
            remember=_ask_remember if config.remember_password else None,
            notify=lambda text: print(text, file=sys.stderr),
        )
    log.info("miner %s starting; log file %s", signer.ss58, log_file)

    power = config.power_policy()
    demo = DemoOptions(games=args.demo_games, speed=args.speed)
    if config_path is None:
        from bettensor_core.config import default_config_path

        config_path = default_config_path()

    async def opener():  # type: ignore[no-untyped-def]
        return await open_session(
            signer,
            list(config.validators),
            data_dir=Path(config.data_dir),
            power=power,
            demo=demo,
            config=config,
            config_path=config_path,
        )

    app = MinerApp(opener, power=power)
    if config.theme in app.available_themes:
        app.theme = config.theme
    else:
        log.warning("unknown theme %r; using the default", config.theme)
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
