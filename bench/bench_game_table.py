"""How long 5,000 games and 100 odds changes take in GameTable and in DataTable.

Run it with ``.venv/bin/python -m bench.bench_game_table`` (``--games`` and
``--changes`` change the sizes). Each table sits alone in a headless 120x40
app. The script times, for each table:

- load: putting all the games in and drawing the first screen;
- 100 changes: one odds change at a time, each followed by the screen update
  it causes (update + render), for changes spread over the whole list (most
  off screen, as live odds arrive) and for changes on visible lines only.

It prints one line per measurement; docs/serve.md quotes the numbers. It is a
measurement, not a test: nothing here fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable

import msgspec
from textual import events
from textual.app import App, ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable

from app.widgets.game_table import GameTable
from bettensor_core.protocol import Game

SIZE = (120, 40)
COLUMNS = ("sport", "league", "teams", "kickoff", "odds_a", "odds_tie", "odds_b")


def make_games(count: int) -> dict[str, Game]:
    """``count`` plausible games, a kickoff every five minutes from now."""
    now = time.time()
    sports = [("soccer", "EPL", True), ("basketball", "NBA", False)]
    games = {}
    for i in range(count):
        sport, league, can_tie = sports[i % 2]
        game = Game(
            game_id=f"g{i:05d}",
            sport=sport,
            league=league,
            team_a=f"Home {i}",
            team_b=f"Away {i}",
            kickoff=now + 300 * (i + 1),
            odds_a=1.5 + (i % 50) / 25,
            odds_b=2.2,
            odds_tie=3.4 if can_tie else None,
            can_tie=can_tie,
        )
        games[game.game_id] = game
    return games


def row_of(game: Game) -> tuple[str, ...]:
    tie = "-" if game.odds_tie is None else f"{game.odds_tie:.2f}"
    return (
        game.sport,
        game.league,
        f"{game.team_a} v {game.team_b}",
        time.strftime("%a %H:%M", time.localtime(game.kickoff)),
        f"{game.odds_a:.2f}",
        tie,
        f"{game.odds_b:.2f}",
    )


class GameTableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield GameTable()


class DataTableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()


Step = Callable[[str, Game], Awaitable[None]]


def draw_frame(app: App[None], widget: Widget) -> int:
    """Draw what ``widget`` marked dirty, as the next frame would; bytes written.

    This does synchronously what Textual's screen does on its update timer:
    the compositor renders the dirty regions and they become terminal bytes.
    The event loop's scheduling is left out, so the figure is CPU time.
    """
    screen = app.screen
    if widget._repaint_required:
        widget._repaint_required = False
        screen._dirty_widgets.add(widget)
    if not screen._dirty_widgets:
        return 0
    screen._compositor.update_widgets(screen._dirty_widgets)
    update = screen._compositor.render_update(screen_stack=app._background_screens)
    screen._dirty_widgets.clear()
    if update is None:
        return 0
    return len(update.render_segments(app.console).encode())


async def timed_changes(
    app: App[None], table: Widget, games: dict[str, Game], ids: list[str], apply: Step
) -> tuple[float, int]:
    """Apply one odds change per id, each followed by its frame; seconds, bytes."""
    written = 0
    started = time.perf_counter()
    for n, game_id in enumerate(ids):
        game = msgspec.structs.replace(games[game_id], odds_b=2.0 + (n % 9) / 10)
        games[game_id] = game
        await apply(game_id, game)
        written += draw_frame(app, table)
    return time.perf_counter() - started, written


async def bench_game_table(
    games: dict[str, Game], spread: list[str], visible: int
) -> dict[str, tuple[float, int]]:
    app = GameTableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(GameTable)
        started = time.perf_counter()
        table.update_games(games)
        await pilot.pause()
        load = time.perf_counter() - started

        async def apply(game_id: str, game: Game) -> None:
            table.update_games(games, [game_id])

        on_screen = table.shown_game_ids[:visible]
        results = {
            "load": (load, 0),
            "spread": await timed_changes(app, table, games, spread, apply),
            "visible": await timed_changes(
                app,
                table,
                games,
                [on_screen[n % visible] for n in range(len(spread))],
                apply,
            ),
        }
        # Sorted by odds, a price change can move its game within the list.
        table.set_sort("odds")
        draw_frame(app, table)
        results["odds_sorted"] = await timed_changes(app, table, games, spread, apply)
        return results


async def bench_data_table(
    games: dict[str, Game], spread: list[str], visible: int
) -> dict[str, tuple[float, int]]:
    app = DataTableApp()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        started = time.perf_counter()
        table.add_rows(row_of(g) for g in games.values())
        # add_rows gives rows generated keys; map game ids to them by position.
        keys = dict(zip(games, table.rows, strict=True))
        await pilot.pause()
        load = time.perf_counter() - started

        async def apply(game_id: str, game: Game) -> None:
            table.update_cell(keys[game_id], "odds_b", f"{game.odds_b:.2f}")
            # DataTable defers measuring to its idle handler; run it as idle would.
            await table._on_idle(events.Idle())

        on_screen = list(games)[:visible]
        return {
            "load": (load, 0),
            "spread": await timed_changes(app, table, games, spread, apply),
            "visible": await timed_changes(
                app,
                table,
                games,
                [on_screen[n % visible] for n in range(len(spread))],
                apply,
            ),
        }


Run = Callable[
    [dict[str, Game], list[str], int], Awaitable[dict[str, tuple[float, int]]]
]


async def measure(name: str, run: Run, count: int, changes: int, repeats: int) -> None:
    """Run one table's scenarios ``repeats`` times and print the medians."""
    seconds: dict[str, list[float]] = {}
    written: dict[str, int] = {}
    for repeat in range(repeats):
        games = make_games(count)
        spread = random.Random(repeat).sample(sorted(games), changes)
        for key, (took, size) in (await run(games, spread, SIZE[1] - 2)).items():
            seconds.setdefault(key, []).append(took)
            written[key] = size
    ms = {key: statistics.median(values) * 1000 for key, values in seconds.items()}
    print(f"{name}: {count} games, load and first draw {ms['load']:.1f} ms")
    labels = {
        "spread": "spread over the list",
        "visible": "on screen",
        "odds_sorted": "spread, list sorted by odds",
    }
    for key, label in labels.items():
        if key not in ms:
            continue
        print(
            f"{name}: {changes} changes {label}: {ms[key]:.1f} ms "
            f"({ms[key] / changes:.3f} ms each), {written[key]:,} bytes drawn"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(
        measure("GameTable", bench_game_table, args.games, args.changes, args.repeats)
    )
    asyncio.run(
        measure("DataTable", bench_data_table, args.games, args.changes, args.repeats)
    )


if __name__ == "__main__":
    main()
