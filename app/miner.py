"""`MinerApp`: the Textual application around one `MinerClient`.

The app owns three quiet-by-design loops:

- the client's events are collected and flushed to the screen at most once
  per power profile's ``ui_flush_interval`` (one timer per batch, none while
  nothing happens);
- the power policy is fed with input and focus; one timer fires when idle
  would begin, never a poll;
- countdowns repaint once a minute while the miner is active, never when idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input

from app.format import Fate, badge, fate, money, outcome_label, rejection_reason
from app.screens.dashboard import DashboardScreen
from app.screens.games import GamesScreen
from app.screens.predictions import PredictionsScreen
from app.screens.settings import SettingsScreen
from app.screens.validators import ValidatorsScreen
from app.session import Session, SessionOpener
from app.widgets.status_line import StatusLine
from bettensor_core.models import (
    GamesChanged,
    LinkChanged,
    PredictionChanged,
    PredictionRecord,
)
from bettensor_core.power import PowerPolicy, PowerState

log = logging.getLogger("app")

# What counts as the miner being at the keyboard (mouse moves do not).
_INPUT_EVENTS = (
    events.Key,
    events.MouseDown,
    events.MouseScrollDown,
    events.MouseScrollUp,
)

# The five screen keys share one footer slot ("gpdvs Screens"), so that
# "? Keys" and "q Quit" still fit on an 80-column footer.
SCREEN_KEYS = Binding.Group("Screens", compact=True)


@dataclass
class Changes:
    """What changed since the last flush; ``games`` None means all of them."""

    games: set[str] | None = field(default_factory=set)
    predictions: set[str] = field(default_factory=set)
    links: bool = False
    power: bool = False
    session: bool = False

    @property
    def empty(self) -> bool:
        return (
            self.games is not None
            and not self.games
            and not self.predictions
            and not self.links
            and not self.power
            and not self.session
        )

    @classmethod
    def everything(cls) -> Changes:
        return cls(games=None, links=True, power=True, session=True)


class MinerApp(App[None]):
    """The miner's terminal app: games, predict, predictions, dashboard, links.

    Args:
        opener: starts and returns the `Session` (client, demo validator); it
            runs in the app's event loop once the app is mounted.
        power: the power policy the app feeds with input and focus; the
            client should be given the same one.
        cursor_blink: whether text cursors may blink at all (tests say no);
            they never blink while idle or in the background.
        clock: wall-clock time for countdowns (tests freeze it).
    """

    CSS_PATH = "miner.tcss"
    TITLE = "Bettensor Miner"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (60, "-medium"), (110, "-wide")]
    MODES = {
        "games": GamesScreen,
        "predictions": PredictionsScreen,
        "dashboard": DashboardScreen,
        "validators": ValidatorsScreen,
        "settings": SettingsScreen,
    }
    DEFAULT_MODE = "games"
    BINDINGS = [
        Binding("g", "switch_mode('games')", "Games", id="go.games", group=SCREEN_KEYS),
        Binding(
            "p",
            "switch_mode('predictions')",
            "Predictions",
            id="go.predictions",
            group=SCREEN_KEYS,
        ),
        Binding(
            "d",
            "switch_mode('dashboard')",
            "Dashboard",
            id="go.dashboard",
            group=SCREEN_KEYS,
        ),
        Binding(
            "v",
            "switch_mode('validators')",
            "Validators",
            id="go.validators",
            group=SCREEN_KEYS,
        ),
        Binding(
            "s",
            "switch_mode('settings')",
            "Settings",
            id="go.settings",
            group=SCREEN_KEYS,
        ),
        Binding("question_mark", "toggle_help", "Keys", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        opener: SessionOpener,
        *,
        power: PowerPolicy | None = None,
        cursor_blink: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._opener = opener
        self.power = power or PowerPolicy()
        self.session: Session | None = None
        self.startup_error: str | None = None
        self.clock = clock
        self._cursor_blink = cursor_blink
        self._pending = Changes()
        self._flush_timer: Timer | None = None
        self._idle_timer: Timer | None = None
        self._minute_timer: Timer | None = None
        self._status_lines: list[StatusLine] = []
        self._fates: dict[str, str] = {}
        self._game_status: dict[str, str] = {}
        self._power_state = self.power.state
        self.predicted_games: set[str] = set()

    # --- lifecycle ---------------------------------------------------------

    def on_mount(self) -> None:
        self._arm_idle_timer()
        self._minute_timer = self.set_interval(60, self._minute_passed)
        self._open_session()

    @work(exclusive=True, group="session")
    async def _open_session(self) -> None:
        try:
            session = await self._opener()
        except Exception as exc:
            log.exception("could not start")
            self.startup_error = str(exc) or exc.__class__.__name__
            self.notify(
                f"Could not start: {self.startup_error}",
                title="Startup failed",
                severity="error",
                timeout=30,
            )
            self._mark(Changes(session=True))
            return
        self.session = session
        session.client.set_power_state(self.power.state)
        self._seed_memory()
        # The demo says so in the Games screen's banner, not in a toast over
        # the first games and the status line.
        self._mark(Changes.everything())
        await self._follow(session)

    async def _follow(self, session: Session) -> None:
        try:
            await self._follow_events(session)
        except Exception as exc:
            # The screens would silently freeze; say so instead.
            log.exception("following the client's events failed")
            self.notify(
                f"Live updates stopped: {exc}. Restart the app.",
                title="Updates stopped",
                severity="error",
                timeout=60,
            )

    async def _follow_events(self, session: Session) -> None:
        # Each event only marks what changed; the flush timer does the work.
        async for event in session.client.subscribe():
            if isinstance(event, GamesChanged):
                if event.snapshot:
                    self._mark(Changes(games=None))
                else:
                    self._mark(Changes(games=set(event.game_ids)))
            elif isinstance(event, PredictionChanged):
                self._mark(Changes(predictions={event.prediction_id}))
            elif isinstance(event, LinkChanged):
                self._mark(Changes(links=True))

    async def action_quit(self) -> None:
        await self._close_session()
        self.exit()

    async def _close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            self.workers.cancel_group(self, "session")
            try:
                await asyncio.wait_for(session.close(), timeout=5)
            except Exception:
                log.exception("closing the session failed")

    async def on_unmount(self) -> None:
        await self._close_session()

    # --- batching ----------------------------------------------------------

    def _mark(self, changes: Changes) -> None:
        pending = self._pending
        if changes.games is None or pending.games is None:
            pending.games = None
        else:
            pending.games |= changes.games
        pending.predictions |= changes.predictions
        pending.links |= changes.links
        pending.power |= changes.power
        pending.session |= changes.session
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(self.flush_interval, self._apply_pending)

    @property
    def flush_interval(self) -> float:
        """How long pushed changes wait, batched, before they reach the screen."""
        return self.power.profile.ui_flush_interval

    def _apply_pending(self) -> None:
        self._flush_timer = None
        changes, self._pending = self._pending, Changes()
        if changes.empty:
            return
        self._announce(changes)
        self.refresh_status()
        for screen in self.screen_stack:
            apply = getattr(screen, "apply_changes", None)
            if apply is not None:
                apply(changes)

    def flush_now(self) -> None:
        """Apply pending changes at once instead of at the next flush (tests)."""
        if self._flush_timer is not None:
            self._flush_timer.stop()
        self._apply_pending()

    # --- toasts ------------------------------------------------------------

    def _seed_memory(self) -> None:
        assert self.session is not None
        client = self.session.client
        for record in client.predictions():
            self._fates[record.prediction.prediction_id] = fate(record)
        self.predicted_games = _predicted_games(client.predictions())
        self._game_status = {
            gid: client.games[gid].status
            for gid in self.predicted_games
            if gid in client.games
        }

    def _announce(self, changes: Changes) -> None:
        if self.session is None:
            return
        client = self.session.client
        for pid in sorted(changes.predictions):
            record = client.prediction(pid)
            if record is None:
                continue
            self._announce_prediction(record)
        if changes.predictions:
            self.predicted_games = _predicted_games(client.predictions())
        watched = (
            self.predicted_games
            if changes.games is None
            else self.predicted_games & changes.games
        )
        for gid in sorted(watched):
            game = client.games.get(gid)
            if game is None:
                continue
            before = self._game_status.get(gid, "scheduled")
            self._game_status[gid] = game.status
            if before == "scheduled" and game.status == "live":
                self.notify(
                    f"{game.team_a} v {game.team_b} kicked off.", title="Kickoff"
                )

    def _announce_prediction(self, record: PredictionRecord) -> None:
        pid = record.prediction.prediction_id
        new = fate(record)
        old = self._fates.get(pid)
        self._fates[pid] = new
        if new == old or new in (Fate.QUEUED, Fate.SENT):
            return
        p = record.prediction
        game = self.session.client.games.get(p.game_id or "") if self.session else None
        pick = outcome_label(game, p.outcome)
        wager = money(p.wager or 0.0)
        if new == Fate.ACCEPTED:
            self.notify(f"{pick} for {wager} accepted.", title="Confirmed")
        elif new == Fate.REJECTED:
            reason = rejection_reason(record) or "no reason given"
            self.notify(
                f"{pick} for {wager} refused: {reason}",
                title="Rejected",
                severity="error",
                timeout=10,
            )
        elif new == Fate.WON:
            assert record.settlement is not None
            payout = money(record.settlement.payout)
            self.notify(f"{pick} won: payout {payout}.", title="Settled")
        elif new == Fate.LOST:
            self.notify(f"{pick} for {wager} lost.", title="Settled")

    # --- status line -------------------------------------------------------

    def register_status_line(self, line: StatusLine) -> None:
        self._status_lines.append(line)
        line.show(self.status_text())

    def unregister_status_line(self, line: StatusLine) -> None:
        if line in self._status_lines:
            self._status_lines.remove(line)

    def status_text(self) -> Text:
        text = Text()
        if self.session is None:
            if self.startup_error:
                text.append(" FAILED ", style="bold reverse red")
                text.append(f" {self.startup_error}")
            else:
                text.append(" STARTING ", style="bold reverse")
            return text
        client = self.session.client
        shown = badge(client.links())
        style = "bold reverse green" if shown == "WS" else "bold reverse yellow"
        if "OFFLINE" in shown:
            style = "bold reverse red"
        text.append(f" {shown} ", style=style)
        text.append(f"  {self.power.state.value}")
        text.append(f"  budget {money(client.budget_left())} left")
        if self.session.demo:
            text.append("  demo", style="italic")
        return text

    def refresh_status(self) -> None:
        text = self.status_text()
        for line in list(self._status_lines):
            line.show(text)

    # --- power -------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, _INPUT_EVENTS):
            self._note_input()
        await super().on_event(event)

    def _note_input(self) -> None:
        self.power.on_input()
        self._power_changed()
        self._arm_idle_timer()

    def on_app_blur(self) -> None:
        self.power.on_focus(False)
        self._power_changed()

    def on_app_focus(self) -> None:
        self.power.on_focus(True)
        self._power_changed()
        self._arm_idle_timer()

    def _arm_idle_timer(self) -> None:
        # One timer for when idle begins; input only moves the deadline, and
        # the timer re-arms itself for the new deadline when it fires early.
        if self._idle_timer is not None:
            return
        at = self.power.next_change_at()
        if at is None:
            return
        delay = max(0.05, at - time.monotonic())
        self._idle_timer = self.set_timer(delay, self._idle_due)

    def _idle_due(self) -> None:
        self._idle_timer = None
        self.power.update()
        self._power_changed()
        self._arm_idle_timer()

    def _power_changed(self) -> None:
        # Compared with what the app last applied: others may update the policy.
        state = self.power.state
        if state == self._power_state:
            return
        self._power_state = state
        log.debug("screen follows power state %s", state.value)
        if self.session is not None:
            self.session.client.set_power_state(state)
        self.apply_cursor_blink()
        if self._minute_timer is not None:
            if state == PowerState.ACTIVE:
                self._minute_timer.resume()
                self._minute_passed()
            else:
                self._minute_timer.pause()
        self._mark(Changes(power=True))

    @property
    def cursor_blink_allowed(self) -> bool:
        return self._cursor_blink and self.power.state == PowerState.ACTIVE

    def apply_cursor_blink(self, root: Screen[Any] | None = None) -> None:
        """No blinking cursor unless the miner is here (and blinking is wanted)."""
        blink = self.cursor_blink_allowed
        screens = [root] if root is not None else self.screen_stack
        for screen in screens:
            for field_ in screen.query(Input):
                field_.cursor_blink = blink

    def _minute_passed(self) -> None:
        for screen in self.screen_stack:
            tick = getattr(screen, "minute_passed", None)
            if tick is not None:
                tick()

    # --- help and commands -------------------------------------------------

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, label in (
            ("games", "games"),
            ("predictions", "predictions"),
            ("dashboard", "dashboard"),
            ("validators", "validators"),
            ("settings", "settings"),
        ):
            yield SystemCommand(
                f"Go: {label}",
                f"Open the {label} screen",
                lambda mode=mode: self.switch_mode(mode),
            )
        yield from getattr(screen, "screen_commands", lambda: [])()


def _predicted_games(records: Iterable[PredictionRecord]) -> set[str]:
    """Games with a prediction that was not refused (the table's mark)."""
    return {
        r.prediction.game_id
        for r in records
        if r.prediction.game_id and fate(r) != Fate.REJECTED
    }
