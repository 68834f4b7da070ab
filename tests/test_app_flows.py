"""Pilot tests of the miner app's flows against a real embedded validator stub.

Every test runs a real `StubServer` on 127.0.0.1 port 0 (SQLite in tmp_path,
simulator frozen with speed 0) and a real `MinerClient` with a fresh sr25519
hotkey; the app is driven with keys through Textual's Pilot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Footer, Input, Select, Static
from textual.widgets._footer import FooterKey
from textual.widgets._toast import Toast

from app.format import Fate, fate
from app.miner import MinerApp
from app.screens.predict import PredictDialog
from app.session import Session
from app.widgets.status_line import StatusLine
from bettensor_core.client import MinerClient
from bettensor_core.codec import Signer
from bettensor_core.config import ValidatorConfig
from bettensor_core.link import LinkOptions
from bettensor_core.power import PowerPolicy, PowerProfile, PowerState
from bettensor_core.protocol import Game
from validator_stub.config import StubConfig
from validator_stub.server import StubServer

FAST_LINKS = LinkOptions(
    websocket_timeout=1.0,
    backoff_base=0.05,
    backoff_cap=0.5,
    stable_after=0.5,
    probe_interval=120.0,
)


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[StubServer]:
    server = StubServer(
        StubConfig(
            host="127.0.0.1",
            port=0,
            db=tmp_path / "stub.sqlite",
            games=12,
            speed=0,
            seed=11,
        )
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def make_app(stub: StubServer, tmp_path: Path) -> Callable[..., MinerApp]:
    """Builds an app whose session is a real client of ``stub``."""

    def build(**options: Any) -> MinerApp:
        signer = Signer.from_uri(f"//app-test-{uuid.uuid4().hex}")
        power = options.pop("power", None) or PowerPolicy()

        async def opener() -> Session:
            client = MinerClient(
                signer,
                [ValidatorConfig(url=stub.url, ss58=stub.ss58, name="stub")],
                store_path=tmp_path / f"miner-{uuid.uuid4().hex}.sqlite",
                power=power,
                link_options=FAST_LINKS,
            )
            await client.start()
            return Session(client=client, config_path=tmp_path / "miner.toml")

        return MinerApp(opener, power=power, cursor_blink=False, **options)

    return build


async def until(
    pilot: Pilot[Any], check: Callable[[], object], timeout: float = 8.0
) -> None:
    """Let the app run until ``check()`` is true (bounded in time)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await pilot.pause(0.05)


async def ready(pilot: Pilot[Any]) -> MinerApp:
    """Wait until the app is connected over WebSocket with games listed."""
    app: MinerApp = pilot.app  # type: ignore[assignment]
    await until(pilot, lambda: app.session is not None and app.session.client.games)
    await until(pilot, lambda: "WS" in app.screen.query_one(StatusLine).plain)
    await until(pilot, lambda: table(app).shown_game_ids)
    return app


def table(app: MinerApp) -> Any:
    return app.screen.query_one("#games")


def text(app: MinerApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def open_games(stub: StubServer) -> list[Game]:
    return [g for g in stub.games() if g.status == "scheduled"]


async def open_dialog(pilot: Pilot[Any], game_id: str) -> PredictDialog:
    app: MinerApp = pilot.app  # type: ignore[assignment]
    app.screen.open_game(game_id)  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, PredictDialog))
    return app.screen  # type: ignore[return-value]


async def type_wager(pilot: Pilot[Any], value: str) -> None:
    field = pilot.app.screen.query_one("#wager", Input)
    field.focus()
    field.value = ""
    field.insert_text_at_cursor(value)
    await pilot.pause()


def assert_status_line_at_bottom(app: MinerApp) -> None:
    """The status line sits just above the footer, at the foot of the screen."""
    line = app.screen.query_one(StatusLine)
    assert line.region.y == app.size.height - 2, line.region


def columns_width(rows: DataTable[Any]) -> int:
    """How wide a table's columns are, padding included."""
    return sum(column.get_render_width(rows) for column in rows.columns.values())


def shown_columns(rows: DataTable[Any]) -> set[str]:
    """The labels of the columns that end inside the table's width."""
    shown, right = set(), 0
    for column in rows.columns.values():
        right += column.get_render_width(rows)
        if right <= rows.size.width:
            shown.add(str(column.label))
    return shown


def footer_keys(screen: Any) -> list[tuple[str, str]]:
    """The keys a screen's footer shows, with their descriptions."""
    return [
        (key.key_display, key.description)
        for key in screen.query_one(Footer).query(FooterKey)
    ]


def sent_count(stub: StubServer) -> int:
    stats = stub.stats()
    return int(stats["accepted"]) + int(stats["rejected"])


async def test_browse_lists_every_open_game(make_app: Any, stub: StubServer) -> None:
    """The Games screen lists every open game of the validator, soonest first."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        expected = [
            g.game_id for g in sorted(open_games(stub), key=lambda g: g.kickoff)
        ]
        assert table(app).shown_game_ids == expected
        assert "budget 1,000.00 left" in app.screen.query_one(StatusLine).plain


async def test_filters_by_sport_league_and_status(
    make_app: Any, stub: StubServer
) -> None:
    """The sport, league and status keys narrow the table; x shows every game."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        games = {g.game_id: g for g in stub.games()}

        await pilot.press("f")
        sport = app.screen.sport  # type: ignore[attr-defined]
        shown = table(app).shown_game_ids
        assert shown and all(games[gid].sport == sport for gid in shown)

        await pilot.press("l")
        league = app.screen.league  # type: ignore[attr-defined]
        shown = table(app).shown_game_ids
        assert shown and all(games[gid].league == league for gid in shown)

        # Kick one game off: the "open" filter hides it, "live" shows only it.
        live = open_games(stub)[0]
        await stub.kickoff(live.game_id)
        await pilot.press("x")
        await until(
            pilot, lambda: app.session.client.games[live.game_id].status == "live"
        )
        app.flush_now()
        await pilot.press("t")  # all -> scheduled
        assert live.game_id not in table(app).shown_game_ids
        await pilot.press("t")  # scheduled -> live
        assert table(app).shown_game_ids == [live.game_id]


async def test_search_opens_the_right_game(make_app: Any, stub: StubServer) -> None:
    """Searching a team and pressing Enter opens the dialog of that very game."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        games = open_games(stub)
        words = [w for g in games for w in (g.team_a, g.team_b, g.league, g.sport)]
        target = next(g for g in reversed(games) if words.count(g.team_a) == 1)

        await pilot.press("slash")
        app.screen.query_one("#search", Input).insert_text_at_cursor(target.team_a)
        await pilot.pause()
        assert table(app).shown_game_ids == [target.game_id]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PredictDialog))
        assert app.screen.game_id == target.game_id  # type: ignore[attr-defined]
        assert target.team_a in text(app, "#title")


@pytest.mark.parametrize(
    ("wager", "reason"),
    [
        ("abc", "not a number"),
        ("-5", "more than 0"),
        ("NaN", "finite"),
        ("1.234", "two decimals"),
        ("1000.01", "left in today's budget"),
    ],
)
async def test_bad_wager_is_refused_inline_and_nothing_sent(
    make_app: Any, stub: StubServer, wager: str, reason: str
) -> None:
    """A bad wager is refused inline with its reason; nothing is stored or sent."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        game = open_games(stub)[0]
        await open_dialog(pilot, game.game_id)
        await pilot.press("1")
        await type_wager(pilot, wager)
        assert reason in text(app, "#error")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, PredictDialog)
        assert reason in text(app, "#error")
        assert app.session.client.predictions() == []
        assert sent_count(stub) == 0


async def test_prediction_is_accepted_and_shown(
    make_app: Any, stub: StubServer
) -> None:
    """A good prediction is sent, confirmed, toasted and listed as accepted."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        game = open_games(stub)[0]
        await open_dialog(pilot, game.game_id)
        await pilot.press("2")
        await type_wager(pilot, "25")
        assert "Payout if it wins" in text(app, "#payout")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PredictDialog))

        client = app.session.client
        await until(pilot, lambda: fate(client.predictions()[0]) == Fate.ACCEPTED)
        await until(pilot, lambda: "975.00" in app.screen.query_one(StatusLine).plain)
        assert stub.stats()["accepted"] == 1
        assert any(n.title == "Confirmed" for n in app._notifications)
        assert game.game_id in app.predicted_games

        await pilot.press("p")
        await until(pilot, lambda: app.screen.query("#predictions"))
        rows = app.screen.query_one("#predictions", DataTable)
        await until(pilot, lambda: rows.row_count == 1)
        assert "accepted" in str(rows.get_row_at(0))
        assert "ws" in text(app, "#detail")


async def test_rejection_is_shown_with_its_reason(
    make_app: Any, stub: StubServer
) -> None:
    """A game that kicks off while the prediction travels is rejected, with why."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        game = open_games(stub)[0]
        await open_dialog(pilot, game.game_id)
        await pilot.press("1")
        await type_wager(pilot, "10")

        # The validator sits on the prediction long enough for the kickoff.
        stub.set_latency(400)
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PredictDialog))
        await stub.kickoff(game.game_id)
        stub.set_latency(0)

        client = app.session.client
        await until(pilot, lambda: fate(client.predictions()[0]) == Fate.REJECTED)
        app.flush_now()
        await pilot.pause()
        assert stub.stats()["accepted"] == 0
        toast = [n for n in app._notifications if n.title == "Rejected"]
        assert toast and "already started" in toast[0].message

        await pilot.press("p")
        rows = app.screen.query_one("#predictions", DataTable)
        await until(pilot, lambda: rows.row_count == 1)
        assert "rejected" in str(rows.get_row_at(0))
        assert "accepted" not in str(rows.get_row_at(0)).replace("rejected", "")
        assert "already started" in text(app, "#detail")
        assert "budget 1,000.00 left" in app.screen.query_one(StatusLine).plain

        # The long reason does not push the other columns off the screen.
        shown = shown_columns(rows)
        assert {"Fate", "Answered in", "Result"} <= shown, shown


async def test_moved_odds_need_the_miners_yes(make_app: Any, stub: StubServer) -> None:
    """Odds that move while the dialog is open are shown and used only after Enter."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        game = next(g for g in open_games(stub) if not g.can_tie)
        dialog = await open_dialog(pilot, game.game_id)
        await pilot.press("1")
        await type_wager(pilot, "10")

        new_a = round(game.odds_a + 0.5, 2)
        await stub.push_odds(game.game_id, new_a, game.odds_b)
        await until(pilot, lambda: dialog.moved_to is not None)
        assert "Odds moved" in text(app, "#moved")
        assert f"{new_a:.2f}" in text(app, "#moved")

        # First Enter agrees to the new odds, nothing is sent yet.
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PredictDialog)
        assert app.session.client.predictions() == []
        assert dialog.shown_game is not None and dialog.shown_game.odds_a == new_a

        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PredictDialog))
        client = app.session.client
        await until(pilot, lambda: fate(client.predictions()[0]) == Fate.ACCEPTED)
        assert client.predictions()[0].prediction.odds_a == new_a


async def test_badge_shows_the_switch_to_http(make_app: Any, stub: StubServer) -> None:
    """When the validator refuses WebSocket and drops links, the badge says HTTP."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        await pilot.press("v")
        rows = app.screen.query_one("#links", DataTable)
        await until(pilot, lambda: "websocket" in str(rows.get_row_at(0)))

        stub.set_websocket_enabled(False)
        stub.drop_connections()
        await until(pilot, lambda: "HTTP" in app.screen.query_one(StatusLine).plain)
        await until(pilot, lambda: "http" in str(rows.get_row_at(0)))

        # Every column fits at 120 columns; the reason is spelled out below.
        await pilot.pause()
        assert columns_width(rows) <= rows.size.width
        assert "last fallback to HTTP: websocket" in text(app, "#note")
        assert_status_line_at_bottom(app)


async def test_settlement_and_kickoff_are_announced(
    make_app: Any, stub: StubServer
) -> None:
    """A predicted game's kickoff and settlement reach toasts, list and dashboard."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        game = open_games(stub)[0]
        await open_dialog(pilot, game.game_id)
        await pilot.press("1")
        await type_wager(pilot, "20")
        await pilot.press("enter")
        client = app.session.client
        await until(pilot, lambda: client.predictions())
        await until(pilot, lambda: fate(client.predictions()[0]) == Fate.ACCEPTED)
        app.flush_now()

        await stub.kickoff(game.game_id)
        await until(
            pilot, lambda: any(n.title == "Kickoff" for n in app._notifications)
        )
        await stub.settle(game.game_id, 0)
        await until(pilot, lambda: fate(client.predictions()[0]) == Fate.WON)
        app.flush_now()
        await pilot.pause()
        settled = [n for n in app._notifications if n.title == "Settled"]
        payout = round(20 * game.odds_a, 2)
        assert settled and f"{payout:,.2f}" in settled[0].message

        await pilot.press("p")
        rows = app.screen.query_one("#predictions", DataTable)
        await until(pilot, lambda: rows.row_count == 1)
        assert "won" in str(rows.get_row_at(0))

        await pilot.press("d")
        await until(pilot, lambda: app.screen.query("#wins"))
        assert "1" in text(app, "#wins")
        assert "+" in text(app, "#roi")


@pytest.mark.parametrize("size", [(120, 40), (80, 24), (40, 20)])
async def test_dashboard_numbers_fit_at_every_size(
    make_app: Any, stub: StubServer, size: tuple[int, int]
) -> None:
    """No dashboard number is cut off, and the chart's figures stay on screen."""
    async with make_app().run_test(size=size) as pilot:
        app = await ready(pilot)
        client = app.session.client
        game = open_games(stub)[0]
        await client.submit(game.game_id, 0, 20)
        await until(pilot, lambda: fate(client.predictions()[0]) == Fate.ACCEPTED)
        await stub.kickoff(game.game_id)
        await stub.settle(game.game_id, 0)
        await until(pilot, lambda: fate(client.predictions()[0]) == Fate.WON)

        await pilot.press("d")
        await until(pilot, lambda: "+" in text(app, "#roi"))
        await pilot.pause()
        for cell in app.screen.query(".number"):
            box = cell.content_region
            needed = cell.get_content_height(box.size, app.size, box.width)
            assert needed <= box.height, (cell.id, text(app, f"#{cell.id}"))
        line = app.screen.query_one(StatusLine).region
        assert app.screen.query_one("#pnl-range").region.bottom <= line.y


async def test_idle_and_background_stop_the_cursor_blink(make_app: Any) -> None:
    """Idle and lost focus change the power state, the status line and the blink."""
    power = PowerPolicy(idle_after=0.4)
    app = make_app(power=power)
    app._cursor_blink = True
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("slash")
        search = app.screen.query_one("#search", Input)
        assert search.cursor_blink
        await until(pilot, lambda: "idle" in app.screen.query_one(StatusLine).plain)
        assert not search.cursor_blink
        assert app.session.client._power_state.value == "idle"

        await pilot.press("a")
        await until(pilot, lambda: "active" in app.screen.query_one(StatusLine).plain)
        assert search.cursor_blink

        app.post_message(__import__("textual.events", fromlist=["AppBlur"]).AppBlur())
        await until(
            pilot, lambda: "background" in app.screen.query_one(StatusLine).plain
        )
        assert not search.cursor_blink


async def test_narrow_screen_predict_dialog_is_full_screen(
    make_app: Any, stub: StubServer
) -> None:
    """On a 40-column phone the dialog takes the whole screen and still works."""
    async with make_app().run_test(size=(40, 20), notifications=True) as pilot:
        app = await ready(pilot)
        game = open_games(stub)[0]
        dialog = await open_dialog(pilot, game.game_id)
        await pilot.pause()
        box = dialog.query_one("#dialog")
        assert box.region.width == 40
        assert ("⏎", "Choose") in footer_keys(dialog)
        await pilot.press("1")
        await type_wager(pilot, "5")

        # There is no Submit button here: the footer says what Enter does.
        await until(pilot, lambda: ("⏎", "Submit") in footer_keys(dialog))
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PredictDialog))
        assert len(app.session.client.predictions()) == 1

        # Its toasts stack above the status line: the badge stays in view.
        await until(pilot, lambda: app.screen.query(Toast))
        await pilot.pause(0.2)
        line = app.screen.query_one(StatusLine).region
        for toast in app.screen.query(Toast):
            assert toast.region.bottom <= line.y, (toast.region, line)


async def test_keys_typed_ahead_go_to_the_wager(
    make_app: Any, stub: StubServer
) -> None:
    """A burst of "1", "1", "2" (fast typing over SSH) is team A with a wager of 12."""
    async with make_app().run_test(size=(80, 24)) as pilot:
        app = await ready(pilot)
        game = open_games(stub)[0]
        dialog = await open_dialog(pilot, game.game_id)
        await pilot.pause()

        # All three arrive before the wager has taken the focus.
        for key in "112":
            app.post_message(events.Key(key, key))
        wager = dialog.query_one("#wager", Input)
        await until(pilot, lambda: wager.value == "12", timeout=3)
        assert dialog.outcome == 0

        # Going back to the outcomes, a digit chooses again.
        dialog.query_one("#outcomes").focus()
        await pilot.pause()
        await pilot.press("2")
        assert dialog.outcome == 1 and wager.value == "12"


async def test_offline_prediction_is_queued_not_sent(
    make_app: Any, stub: StubServer
) -> None:
    """With the validator gone, the prediction waits in the outbox, said so."""
    async with make_app().run_test(size=(80, 24)) as pilot:
        app = await ready(pilot)
        game = open_games(stub)[0]
        await stub.stop()
        await until(pilot, lambda: "OFFLINE" in app.screen.query_one(StatusLine).plain)

        await open_dialog(pilot, game.game_id)
        await pilot.press("1")
        await type_wager(pilot, "10")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, PredictDialog))
        record = app.session.client.predictions()[0]
        assert fate(record) == Fate.QUEUED
        toast = [n for n in app._notifications if n.title == "Prediction queued"]
        assert toast and "outbox" in toast[0].message
        assert "sent" not in toast[0].message


async def test_footer_shows_help_and_quit_at_80_columns(make_app: Any) -> None:
    """On an SSH-sized terminal every screen's footer shows "? Keys" and "q Quit"."""
    async with make_app().run_test(size=(80, 24)) as pilot:
        app = await ready(pilot)
        for key in "gpdvs":
            await pilot.press(key)
            await pilot.pause(0.2)
            footer = app.screen.query_one(Footer)
            # The palette key docks on the right, over whatever lies under it.
            edge = min(
                [80]
                + [
                    k.region.x
                    for k in footer.query(FooterKey)
                    if k.has_class("-command-palette") and k.display
                ]
            )
            shown = {
                k.key_display
                for k in footer.query(FooterKey)
                if k.display and k.region.width and k.region.right <= edge
            }
            assert {"?", "q"} <= shown, (key, shown)


async def test_settings_are_checked_and_saved(make_app: Any, tmp_path: Path) -> None:
    """A bad setting is refused with its reason; a good one is written to the file."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        await pilot.press("s")
        await until(pilot, lambda: app.screen.query("#idle_after"))
        # Nothing was saved yet, and the screen does not pretend it was.
        assert "Saved" not in text(app, "#where")
        assert "not written yet" in text(app, "#where")
        field = app.screen.query_one("#idle_after", Input)
        field.value = "abc"
        await pilot.press("ctrl+s")
        assert "Not saved" in text(app, "#settings-error")
        assert not (tmp_path / "miner.toml").exists()

        field.value = "120"
        app.screen.query_one("#idle-heartbeat_interval", Input).value = "50"
        await pilot.press("ctrl+s")
        await pilot.pause()
        saved = (tmp_path / "miner.toml").read_text()
        assert "idle_after = 120" in saved and "heartbeat_interval = 50" in saved
        assert "not written yet" not in text(app, "#where")
        assert app.power.idle_after == 120
        assert app.power.profiles[PowerState.IDLE].heartbeat_interval == 50


async def test_settings_revert_takes_back_a_tried_theme(make_app: Any) -> None:
    """A theme picked in Settings applies at once; ctrl+r puts the saved one back."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        before = app.theme
        await pilot.press("s")
        await until(pilot, lambda: app.screen.query("#theme"))
        other = next(t for t in sorted(app.available_themes) if t != before)
        app.screen.query_one("#theme", Select).value = other
        await until(pilot, lambda: app.theme == other)

        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.theme == before
        assert app.screen.query_one("#theme", Select).value == before


async def test_nothing_is_redrawn_while_nothing_changes(make_app: Any) -> None:
    """With the simulator frozen and no input, heartbeats come and go unpainted."""
    fast = PowerProfile(
        heartbeat_interval=0.3, long_poll_hold=25, ui_flush_interval=0.1
    )
    power = PowerPolicy(profiles=dict.fromkeys(PowerState, fast))
    async with make_app(power=power).run_test(size=(80, 24)) as pilot:
        app = await ready(pilot)
        await pilot.pause(0.5)
        paints: list[object] = []
        display = app._display

        def counting(screen: Any, renderable: Any) -> None:
            if renderable is not None:
                paints.append(renderable)
            display(screen, renderable)

        app._display = counting  # type: ignore[method-assign]
        link = app.session.client.links()[0]
        await pilot.pause(2.0)
        assert paints == []
        assert app.session.client.links()[0].rtt_ms != link.rtt_ms

        # The counter does see paints: a change of sort repaints the table.
        await pilot.press("o")
        await pilot.pause(0.2)
        assert paints


async def test_mouse_filters_and_opens_a_game(make_app: Any, stub: StubServer) -> None:
    """Clicking a filter chip filters; clicking a game row opens that game."""
    async with make_app().run_test(size=(120, 40)) as pilot:
        app = await ready(pilot)
        await pilot.click("#sport")
        sport = app.screen.sport  # type: ignore[attr-defined]
        assert sport is not None
        games = {g.game_id: g for g in stub.games()}
        shown = table(app).shown_game_ids
        assert shown and all(games[gid].sport == sport for gid in shown)

        # Row 0 is the header; the third game sits on line 3.
        await pilot.click("#games", offset=(10, 3))
        await until(pilot, lambda: isinstance(app.screen, PredictDialog))
        assert app.screen.game_id == shown[2]  # type: ignore[attr-defined]
        await pilot.click("#cancel")
        await until(pilot, lambda: not isinstance(app.screen, PredictDialog))
