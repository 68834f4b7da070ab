"""The Games screen: every game, filtered, searched and sorted; Enter predicts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from textual import events, on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from app.screens.predict import PredictDialog
from app.widgets.game_table import GameTable, SortKey
from app.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from app.miner import Changes, MinerApp

# The status filter cycles through these; None shows every game.
STATUSES: list[str | None] = ["scheduled", "live", "final", None]
STATUS_NAMES = {"scheduled": "open", "live": "live", "final": "final", None: "all"}


class FilterLabel(Label):
    """A clickable filter chip; a click runs the same action as its key."""

    def __init__(self, action: str, *, id: str) -> None:
        super().__init__("", id=id)
        self.action = action

    async def on_click(self, event: events.Click) -> None:
        event.stop()
        await self.screen.run_action(self.action)


class GamesScreen(Screen[None]):
    """Every game with odds and countdowns; a mark where the miner predicted."""

    CSS_PATH = "games.tcss"
    AUTO_FOCUS = "GameTable"
    BINDINGS = [
        Binding("slash", "search", "Search", id="games.search"),
        Binding("escape", "clear_search", "Clear", show=False, id="games.clear"),
        Binding("f", "cycle_sport", "Sport", id="games.sport"),
        Binding("l", "cycle_league", "League", id="games.league"),
        Binding("t", "cycle_status", "Status", id="games.status"),
        Binding("o", "toggle_sort", "Sort", id="games.sort"),
        Binding("x", "clear_filters", "All games", show=False, id="games.reset"),
        Binding("b", "hide_banner", "Hide banner", show=False, id="games.banner"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sport: str | None = None
        self.league: str | None = None
        self.status: str | None = "scheduled"
        self.sort: SortKey = "kickoff"
        self._shown_once = False

    @property
    def miner(self) -> MinerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static("", id="banner")
        with Horizontal(id="filters"):
            yield FilterLabel("cycle_sport", id="sport")
            yield FilterLabel("cycle_league", id="league")
            yield FilterLabel("cycle_status", id="status")
            yield FilterLabel("toggle_sort", id="sort")
        yield Input(placeholder="search teams, league, sport", id="search")
        yield GameTable(id="games", clock=self.miner.clock)
        yield StatusLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.miner.apply_cursor_blink(self)
        self._apply_filters()
        self.refresh_all()

    def on_screen_resume(self) -> None:
        if self._shown_once:
            self.refresh_all()
        self._shown_once = True

    # --- data --------------------------------------------------------------

    @property
    def table(self) -> GameTable:
        return self.query_one("#games", GameTable)

    def refresh_all(self) -> None:
        session = self.miner.session
        banner = self.query_one("#banner", Static)
        if session is None:
            error = self.miner.startup_error
            banner.update(
                f"Could not start: {error}" if error else "Starting the validator link…"
            )
            banner.display = True
            return
        banner.display = session.demo and not getattr(self, "_banner_hidden", False)
        if session.demo:
            banner.update(self._banner_text(session))
        self.table.update_games(session.client.games)
        self.table.set_predicted(set(self.miner.predicted_games))

    def _banner_text(self, session: Any) -> str:
        if self.app.size.width < 60:
            return (
                "Local demo validator, demo games. Real one: --validator URL. (b hides)"
            )
        where = session.config_path or "the config file"
        return (
            f"Local demo validator at {session.demo_url}: demo games and a "
            "development hotkey, nothing real at stake. To mine for real, run "
            f"with --validator URL or set validators in {where}.  (b hides this)"
        )

    def on_resize(self) -> None:
        self._show_filters()
        session = self.miner.session
        if session is not None and session.demo:
            self.query_one("#banner", Static).update(self._banner_text(session))

    def apply_changes(self, changes: Changes) -> None:
        if changes.session:
            self.refresh_all()
            return
        session = self.miner.session
        if session is None:
            return
        if changes.games is None or changes.games:
            self.table.update_games(session.client.games, changes.games)
        if changes.predictions:
            self.table.set_predicted(set(self.miner.predicted_games))

    def minute_passed(self) -> None:
        # Countdowns are drawn from the clock; one repaint a minute moves them.
        self.table.refresh()

    # --- filters -----------------------------------------------------------

    def _games(self) -> Iterable[Any]:
        session = self.miner.session
        return session.client.games.values() if session else []

    def _show_filters(self) -> None:
        # Phones get the values alone; the footer and help name the keys.
        if self.app.size.width < 60:
            names = ("", "", "", "by ")
        else:
            names = ("Sport: ", "League: ", "Status: ", "Sort: ")
        status = STATUS_NAMES[self.status]
        self.query_one("#sport", Label).update(f"{names[0]}{self.sport or 'all'}")
        self.query_one("#league", Label).update(f"{names[1]}{self.league or 'all'}")
        self.query_one("#status", Label).update(f"{names[2]}{status}")
        self.query_one("#sort", Label).update(f"{names[3]}{self.sort}")

    def _apply_filters(self) -> None:
        self.table.set_filter(sport=self.sport, league=self.league, status=self.status)
        self._show_filters()

    def action_cycle_sport(self) -> None:
        sports = sorted({g.sport for g in self._games()})
        self.sport = _next(sports, self.sport)
        self.league = None
        self._apply_filters()

    def action_cycle_league(self) -> None:
        leagues = sorted(
            {g.league for g in self._games() if self.sport in (None, g.sport)}
        )
        self.league = _next(leagues, self.league)
        self._apply_filters()

    def action_cycle_status(self) -> None:
        i = STATUSES.index(self.status)
        self.status = STATUSES[(i + 1) % len(STATUSES)]
        self._apply_filters()

    def action_toggle_sort(self) -> None:
        self.sort = "odds" if self.sort == "kickoff" else "kickoff"
        self.table.set_sort(self.sort)
        self._show_filters()

    def action_clear_filters(self) -> None:
        self.sport = self.league = None
        self.status = None
        self._apply_filters()

    def action_hide_banner(self) -> None:
        self._banner_hidden = True
        self.query_one("#banner", Static).display = False

    # --- search ------------------------------------------------------------

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        if search.value or search.display:
            search.value = ""
            search.display = False
            self.table.set_query("")
            self.table.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.table.set_query(event.value)

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        # One match opens it at once; several leave the cursor on the first.
        shown = self.table.shown_game_ids
        if len(shown) == 1:
            self.open_game(shown[0])
            return
        self.table.focus()

    # --- predict -----------------------------------------------------------

    @on(GameTable.GameChosen)
    def _game_chosen(self, event: GameTable.GameChosen) -> None:
        event.stop()
        self.open_game(event.game_id)

    def open_game(self, game_id: str) -> None:
        session = self.miner.session
        if session is None or game_id not in session.client.games:
            self.notify("That game is no longer listed.", severity="warning")
            return
        self.app.push_screen(PredictDialog(game_id))

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Games: search", "Search teams", self.action_search)
        yield SystemCommand(
            "Games: sort by kickoff or odds", "Toggle the sort", self.action_toggle_sort
        )
        yield SystemCommand(
            "Games: next sport", "Filter by sport", self.action_cycle_sport
        )
        yield SystemCommand(
            "Games: next league", "Filter by league", self.action_cycle_league
        )
        yield SystemCommand(
            "Games: next status", "Open, live, final or all", self.action_cycle_status
        )
        yield SystemCommand(
            "Games: show all", "Clear every filter", self.action_clear_filters
        )


def _next(options: list[str], current: str | None) -> str | None:
    """The option after ``current``; after the last one comes None (all)."""
    if current is None:
        return options[0] if options else None
    try:
        i = options.index(current)
    except ValueError:
        return None
    return options[i + 1] if i + 1 < len(options) else None
