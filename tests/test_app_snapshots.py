"""Snapshot tests of the Games screen at desktop, SSH and phone sizes.

The data is fixed: a real stub (speed 0) holding a list of games built here
with fixed kickoffs, an app clock frozen at `NOW` and the local time zone set
to UTC, so countdowns and kickoff times are the same on every run. Update the
pictures with ``pytest tests/test_app_snapshots.py --snapshot-update`` after
a deliberate change, and look at them before committing.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from app.miner import MinerApp
from app.session import Session
from app.widgets.status_line import StatusLine
from bettensor_core.client import MinerClient
from bettensor_core.codec import Signer
from bettensor_core.config import ValidatorConfig
from bettensor_core.link import LinkOptions
from bettensor_core.protocol import Game
from validator_stub.config import StubConfig
from validator_stub.server import StubServer

NOW = 1_893_456_000.0  # 2030-01-01 00:00 UTC, in the future for the stub too

LEAGUES = [
    ("soccer", "EPL", True, ["Arsenal", "Chelsea", "Everton", "Fulham", "Brentford"]),
    ("soccer", "La Liga", True, ["Sevilla", "Valencia", "Getafe", "Osasuna"]),
    ("football", "NFL", False, ["Bills", "Bears", "Broncos", "Packers", "Jets"]),
    ("baseball", "MLB", False, ["Cubs", "Mets", "Twins", "Padres"]),
]


def fixed_games(count: int = 30, seed: int = 5) -> list[Game]:
    """The same games on every run: seeded teams and odds, kickoffs from NOW."""
    pick = random.Random(seed)
    games = []
    for n in range(count):
        sport, league, can_tie, teams = LEAGUES[n % len(LEAGUES)]
        team_a, team_b = pick.sample(teams, 2)
        games.append(
            Game(
                game_id=f"snap-{n:03d}",
                sport=sport,
                league=league,
                team_a=team_a,
                team_b=team_b,
                kickoff=NOW + 1800 + n * 2700,
                odds_a=round(pick.uniform(1.3, 4.5), 2),
                odds_b=round(pick.uniform(1.3, 4.5), 2),
                odds_tie=round(pick.uniform(2.8, 4.2), 2) if can_tie else None,
                can_tie=can_tie,
            )
        )
    return games


GAMES = fixed_games()


@pytest.fixture(autouse=True)
def utc_local_time() -> Iterator[None]:
    """Kickoff times are shown in local time; make local time UTC here."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def snapshot_app(tmp_path: Path) -> MinerApp:
    """An app on a real stub that holds exactly `GAMES` as open games."""

    async def opener() -> Session:
        stub = StubServer(
            StubConfig(
                host="127.0.0.1",
                port=0,
                db=tmp_path / "stub.sqlite",
                games=1,
                speed=0,
                seed=3,
            )
        )
        await stub.start()
        # The stub seeds one game of its own; kicked off, the open filter hides it.
        for game in stub.games():
            await stub.kickoff(game.game_id)
        # Added together, the stub commits them in one go.
        await asyncio.gather(*(stub.add_game(game) for game in GAMES))
        client = MinerClient(
            Signer.from_uri("//bettensor-app-snapshot"),
            [ValidatorConfig(url=stub.url, ss58=stub.ss58, name="stub")],
            store_path=tmp_path / "miner.sqlite",
            link_options=LinkOptions(probe_interval=120.0),
        )
        await client.start()
        return Session(client=client, _stub=stub)

    return MinerApp(opener, cursor_blink=False, clock=lambda: NOW)


async def settled(pilot: Pilot[Any]) -> None:
    """Wait (bounded) until every fixed game is listed and the link is up."""
    app: MinerApp = pilot.app  # type: ignore[assignment]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = app.screen.query("#games")
        line = app.screen.query(StatusLine)
        if (
            shown
            and len(shown.first().shown_game_ids) == len(GAMES)
            and line
            and "WS" in line.first().plain
        ):
            break
        await pilot.pause(0.05)
    app.flush_now()
    await pilot.pause(0.1)


@pytest.mark.parametrize("size", [(120, 40), (80, 24), (40, 20)])
def test_games_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    """The Games screen renders the fixed games as recorded at this size."""
    assert snap_compare(snapshot_app(tmp_path), terminal_size=size, run_before=settled)
