"""The first run: no validator configured starts the embedded demo validator.

Also covers the command line's parsing and the palette commands, without
starting a terminal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import Static

from app.__main__ import _flags, build_parser
from app.miner import MinerApp
from app.session import DemoOptions, open_session
from app.widgets.status_line import StatusLine
from bettensor_core.config import load_config
from bettensor_core.identity import dev_signer


async def test_first_run_shows_demo_games_and_banner(tmp_path: Path) -> None:
    """With no validators the app starts the demo stub, lists games, and stops it."""
    signer = dev_signer(tmp_path)

    async def opener() -> Any:
        return await open_session(
            signer, [], data_dir=tmp_path, demo=DemoOptions(games=6, speed=0)
        )

    app = MinerApp(opener, cursor_blink=False)
    started = time.monotonic()
    async with app.run_test(size=(80, 24)) as pilot:
        deadline = started + 10
        while not (
            app.session is not None
            and app.screen.query_one("#games").shown_game_ids
            and "WS" in app.screen.query_one(StatusLine).plain
        ):
            assert time.monotonic() < deadline, "demo games never appeared"
            await pilot.pause(0.05)
        assert time.monotonic() - started < 5
        banner = str(app.screen.query_one("#banner", Static).render())
        assert "Local demo validator" in banner and "--validator URL" in banner
        assert "demo" in app.screen.query_one(StatusLine).plain
        assert (tmp_path / "demo-validator.sqlite").exists()
        url = app.session.demo_url
        assert url is not None and url.startswith("http://127.0.0.1:")

        # The banner says it is a demo; no toast repeats it over the games.
        assert not [n for n in app._notifications if n.title == "Demo mode"]

        await pilot.press("b")
        assert not app.screen.query_one("#banner").display
        await pilot.press("q")

    # Quitting stopped the embedded validator.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/ws/health", timeout=2)


def test_command_line_flags_reach_the_config(tmp_path: Path) -> None:
    """Repeated --validator URL#SS58 and wallet flags become the configuration."""
    ss58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    args = build_parser().parse_args(
        [
            "--validator",
            "ws://127.0.0.1:9000",
            "--validator",
            f"http://127.0.0.1:9001#{ss58}",
            "--wallet.name",
            "miner",
            "--wallet.hotkey",
            "hot",
            "--data-dir",
            str(tmp_path),
            "--demo-games",
            "5",
            "--speed",
            "0",
        ]
    )
    config = load_config(_flags(args), env={}, path=tmp_path / "none.toml")
    assert [v.url for v in config.validators] == [
        "ws://127.0.0.1:9000",
        "http://127.0.0.1:9001",
    ]
    assert config.validators[1].ss58 == ss58
    assert (config.wallet_name, config.wallet_hotkey) == ("miner", "hot")
    assert config.data_dir == tmp_path
    assert (args.demo_games, args.speed) == (5, 0.0)


async def test_palette_offers_grouped_commands(tmp_path: Path) -> None:
    """Command palette entries are named "group: action" and cover every screen."""
    signer = dev_signer(tmp_path)

    async def opener() -> Any:
        return await open_session(
            signer, [], data_dir=tmp_path, demo=DemoOptions(games=2, speed=0)
        )

    app = MinerApp(opener, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Go: games", "Go: predictions", "Go: dashboard"):
            assert wanted in titles
        assert "Games: search" in titles
        await pilot.press("q")
