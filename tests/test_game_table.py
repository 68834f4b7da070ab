"""Pilot tests for `GameTable`: what it shows, how it narrows, how it is driven."""

from __future__ import annotations

import random
import time

import msgspec
from textual import events
from textual.app import App, ComposeResult
from textual.geometry import Region

from app.widgets.game_table import GameTable
from bettensor_core.protocol import Game

NOW = 1_800_000_000.0

TEAMS = [
    ("Arsenal", "Chelsea", "soccer", "EPL"),
    ("Lakers", "Celtics", "basketball", "NBA"),
    ("Barcelona", "Real Madrid", "soccer", "La Liga"),
    ("Yankees", "Red Sox", "baseball", "MLB"),
    ("Packers", "Bears", "football", "NFL"),
    ("Juventus", "Inter", "soccer", "Serie A"),
]


def make_games(count: int) -> dict[str, Game]:
    """``count`` games, a kickoff every ten minutes, names cycling through TEAMS."""
    games: dict[str, Game] = {}
    for i in range(count):
        team_a, team_b, sport, league = TEAMS[i % len(TEAMS)]
        can_tie = sport == "soccer"
        game = Game(
            game_id=f"g{i:05d}",
            sport=sport,
            league=league,
            team_a=f"{team_a} {i}" if count > len(TEAMS) else team_a,
            team_b=team_b,
            kickoff=NOW + 600 * (i + 1),
            odds_a=1.5 + (i * 37 % 100) / 40,
            odds_b=2.1,
            odds_tie=3.3 if can_tie else None,
            can_tie=can_tie,
        )
        games[game.game_id] = game
    return games


class TableApp(App[None]):
    """A bare app holding one focused GameTable and recording what it posts."""

    def __init__(self) -> None:
        super().__init__()
        self.chosen: list[str] = []

    def compose(self) -> ComposeResult:
        yield GameTable(clock=lambda: NOW)

    def on_mount(self) -> None:
        self.query_one(GameTable).focus()

    def on_game_table_game_chosen(self, message: GameTable.GameChosen) -> None:
        self.chosen.append(message.game_id)


def screen_lines(table: GameTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


async def test_renders_header_and_games() -> None:
    """The table draws a header and one line per game with teams and odds."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        table.update_games(make_games(6))
        await pilot.pause()

        lines = screen_lines(table)
        assert "teams" in lines[0] and "tie" in lines[0]
        assert "Arsenal v Chelsea" in lines[1]
        assert "soccer" in lines[1] and "EPL" in lines[1]
        assert "1.50" in lines[1] and "3.30" in lines[1] and "2.10" in lines[1]
        assert "Lakers v Celtics" in lines[2]
        assert "10m" in lines[1]  # countdown computed from the injected clock
        assert table.cursor_game_id == "g00000"


async def test_empty_table_says_it_is_waiting() -> None:
    """With no games the table says so instead of showing a blank area."""
    app = TableApp()
    async with app.run_test(size=(80, 6)) as pilot:
        await pilot.pause()
        table = app.query_one(GameTable)
        assert "waiting for games" in screen_lines(table)[1]
        assert table.cursor_game_id is None


async def test_filter_by_sport_league_and_status() -> None:
    """set_filter keeps only games of that sport, league and status."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(6)
        games["g00005"] = msgspec.structs.replace(games["g00005"], status="live")
        table.update_games(games)

        table.set_filter(sport="Soccer")
        assert table.shown_game_ids == ["g00000", "g00002", "g00005"]
        table.set_filter(sport="soccer", league="la liga")
        assert table.shown_game_ids == ["g00002"]
        table.set_filter(status="live")
        assert table.shown_game_ids == ["g00005"]
        table.set_filter(sport="cricket")
        assert table.shown_game_ids == []
        assert table.cursor_game_id is None
        await pilot.pause()
        assert "no game matches" in screen_lines(table)[1]

        table.set_filter()
        assert len(table.shown_game_ids) == 6


async def test_search_finds_the_right_game() -> None:
    """set_query matches teams, league or sport case-insensitively."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        table.update_games(make_games(6))

        table.set_query("real MADRID")
        assert table.shown_game_ids == ["g00002"]
        assert table.cursor_game_id == "g00002"
        table.set_query("nfl")
        assert table.shown_game_ids == ["g00004"]
        table.set_query("baseball")
        assert table.shown_game_ids == ["g00003"]
        table.set_query("")
        assert len(table.shown_game_ids) == 6
        await pilot.pause()


async def test_sort_by_kickoff_and_by_odds() -> None:
    """Kickoff sort puts the soonest first; odds sort the shortest favourite."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(6)
        table.update_games(games)
        assert table.shown_game_ids == sorted(games)

        table.set_sort("odds")
        favourites = [
            min(games[g].odds_a, games[g].odds_b) for g in table.shown_game_ids
        ]
        assert favourites == sorted(favourites)
        assert table.shown_game_ids[0] == "g00000"  # 1.50, the shortest price

        # An odds change re-sorts the list while the sort is by odds.
        games["g00003"] = msgspec.structs.replace(games["g00003"], odds_a=1.01)
        table.update_games(games, ["g00003"])
        assert table.shown_game_ids[0] == "g00003"
        await pilot.pause()
        assert "Yankees v Red Sox" in screen_lines(table)[1]


async def test_enter_chooses_the_game_under_the_cursor() -> None:
    """Down, down, Enter posts GameChosen for the third game shown."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        table.update_games(make_games(6))
        await pilot.press("down", "down", "enter")
        await pilot.pause()
        assert app.chosen == ["g00002"]
        assert table.cursor_game_id == "g00002"


async def test_cursor_follows_its_game_through_a_resort() -> None:
    """The cursor stays on the same game when the order changes under it."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        table.update_games(make_games(6))
        await pilot.press("down", "down", "down")
        assert table.cursor_game_id == "g00003"
        table.set_sort("odds")
        assert table.cursor_game_id == "g00003"
        await pilot.press("enter")
        await pilot.pause()
        assert app.chosen == ["g00003"]


async def test_click_chooses_the_clicked_game() -> None:
    """A click on a row moves the cursor there and posts GameChosen."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        table.update_games(make_games(6))
        await pilot.pause()
        await pilot.click(GameTable, offset=(10, 4))  # header is line 0
        await pilot.pause()
        assert app.chosen == ["g00003"]
        assert table.cursor_game_id == "g00003"


async def test_keys_page_and_jump() -> None:
    """Page down/up, End and Home move the cursor and keep it on screen."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(100)
        table.update_games(games)
        await pilot.pause()
        page = table.size.height - 1

        await pilot.press("pagedown")
        assert table.cursor_game_id == table.shown_game_ids[page]
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_game_id == "g00099"
        assert "Yankees 99 v Red Sox" in "".join(screen_lines(table))
        await pilot.press("pageup")
        assert table.cursor_game_id == table.shown_game_ids[99 - page]
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_game_id == "g00000"
        assert round(table.scroll_y) == 0


async def test_mouse_wheel_scrolls() -> None:
    """The mouse wheel scrolls the games without moving the cursor."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(100)
        table.update_games(games)
        await pilot.pause()
        await pilot._post_mouse_events(
            [events.MouseScrollDown], widget=table, offset=(10, 5)
        )
        await pilot.pause()
        top = round(table.scroll_y)
        assert top > 0
        assert table.cursor_game_id == "g00000"
        first_shown = games[table.shown_game_ids[top]]
        assert f"{first_shown.team_a} v" in screen_lines(table)[1]


async def test_narrow_table_drops_columns() -> None:
    """Under 60 columns only the mark, teams, time and odds remain."""
    app = TableApp()
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.query_one(GameTable)
        table.update_games(make_games(6))
        await pilot.pause()
        lines = screen_lines(table)
        assert all(len(line) == table.size.width for line in lines)
        assert "league" not in lines[0] and "sport" not in lines[0]
        assert "Arsenal v Che" in lines[1]
        assert "1.50" in lines[1] and "3.30" in lines[1] and "2.10" in lines[1]
        assert "EPL" not in lines[1]


async def test_predicted_mark_and_odds_arrows() -> None:
    """Predicted games get a mark; a changed price gets an arrow of its move."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(6)
        table.update_games(games)
        table.set_predicted({"g00001"})
        games["g00000"] = msgspec.structs.replace(
            games["g00000"], odds_a=1.9, odds_b=2.0
        )
        table.update_games(games, ["g00000"])
        await pilot.pause()
        lines = screen_lines(table)
        assert "1.90▲" in lines[1] and "2.00▼" in lines[1]
        assert "3.30 " in lines[1]  # the tie price did not move
        assert lines[2].startswith("●")
        assert not lines[1].startswith("●")


async def test_five_thousand_games_and_a_hundred_changes() -> None:
    """5,000 games load; 100 odds changes apply and only visible ones repaint."""
    app = TableApp()
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(5000)
        table.update_games(games)
        await pilot.pause()
        assert len(table.shown_game_ids) == 5000
        visible = set(table.shown_game_ids[: table.size.height - 1])

        # Record what the table asks to repaint while the changes arrive.
        repainted: list[Region] = []
        original_refresh = table.refresh

        def spy(*regions: Region, **kwargs: bool) -> GameTable:
            repainted.extend(regions)
            return original_refresh(*regions, **kwargs)

        table.refresh = spy  # type: ignore[method-assign]
        changed = [f"g{i:05d}" for i in range(0, 5000, 50)]  # 100 games, 1 on screen
        for game_id in changed:
            games[game_id] = msgspec.structs.replace(games[game_id], odds_b=9.99)
        started = time.perf_counter()
        table.update_games(games, changed)
        assert time.perf_counter() - started < 5.0  # generous: behaviour, not speed
        table.refresh = original_refresh  # type: ignore[method-assign]

        on_screen = [g for g in changed if g in visible]
        assert len(on_screen) == 1
        assert len(repainted) == 1 and repainted[0].height == 1
        await pilot.pause()
        assert "9.99▲" in screen_lines(table)[1]

        # A change far off screen asks for no repaint at all.
        repainted.clear()
        table.refresh = spy  # type: ignore[method-assign]
        games["g04999"] = msgspec.structs.replace(games["g04999"], odds_a=7.77)
        table.update_games(games, ["g04999"])
        table.refresh = original_refresh  # type: ignore[method-assign]
        assert repainted == []

        await pilot.press("end")
        await pilot.pause()
        assert "7.77▲" in "".join(screen_lines(table))


async def test_removed_games_leave_the_table() -> None:
    """An id in ``changed`` but missing from the mapping is removed."""
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(6)
        table.update_games(games)
        del games["g00000"]
        table.update_games(games, ["g00000"])
        assert "g00000" not in table.shown_game_ids
        assert table.cursor_game_id == "g00001"
        await pilot.pause()


async def test_one_by_one_placement_matches_a_full_sort() -> None:
    """Random odds, status, new and removed games keep the order a full sort gives."""
    app = TableApp()
    async with app.run_test(size=(100, 20)) as pilot:
        table = app.query_one(GameTable)
        games = make_games(400)
        table.update_games(games)
        table.set_sort("odds")
        table.set_filter(status="scheduled")
        table.set_query("a")
        rng = random.Random(7)

        def expected() -> list[str]:
            shown = [
                g
                for g in games.values()
                if g.status == "scheduled"
                and "a" in f"{g.team_a} {g.team_b} {g.league} {g.sport}".casefold()
            ]
            shown.sort(key=lambda g: (min(g.odds_a, g.odds_b), g.kickoff, g.game_id))
            return [g.game_id for g in shown]

        next_id = 400
        for _ in range(150):
            batch: list[str] = []
            for _ in range(rng.randint(1, 4)):
                roll = rng.random()
                if roll < 0.1 and games:
                    game_id = rng.choice(sorted(games))
                    del games[game_id]
                elif roll < 0.2:
                    game_id = f"n{next_id:05d}"
                    next_id += 1
                    games[game_id] = msgspec.structs.replace(
                        games["g00001"]
                        if "g00001" in games
                        else make_games(1)["g00000"],
                        game_id=game_id,
                        odds_a=round(rng.uniform(1.01, 6), 2),
                    )
                else:
                    game_id = rng.choice(sorted(games))
                    games[game_id] = msgspec.structs.replace(
                        games[game_id],
                        odds_a=round(rng.uniform(1.01, 6), 2),
                        odds_b=round(rng.uniform(1.01, 6), 2),
                        status=rng.choice(["scheduled", "scheduled", "live"]),
                    )
                batch.append(game_id)
            table.update_games(games, batch)
            assert table.shown_game_ids == expected()

        # Every shown game can still be found by id (positions stayed in step).
        for game_id in rng.sample(table.shown_game_ids, 20):
            assert table.move_cursor_to(game_id)
            assert table.cursor_game_id == game_id
        await pilot.pause()
