"""The Predict dialog: choose an outcome, type a wager, see the payout, submit.

Nothing is sent until the wager passes `bettensor_core.rules.parse_wager`
against today's budget, the game is still open as far as the miner can see,
and the miner has seen the odds the prediction will carry: when they move
while the dialog is open, the first Enter accepts the new odds and the next
one submits.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, NoBinding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from app.format import (
    kickoff_text,
    money,
    odds_of,
    outcome_label,
    outcome_odds,
)
from bettensor_core.errors import BettensorError, WagerError
from bettensor_core.protocol import OUTCOME_TEAM_A, OUTCOME_TEAM_B, OUTCOME_TIE, Game
from bettensor_core.rules import REASON_TEXT, Reason, parse_wager

if TYPE_CHECKING:
    from app.miner import Changes, MinerApp

log = logging.getLogger("app.predict")


class OutcomeList(OptionList):
    """The outcomes; unlike a plain option list, the footer shows what Enter does."""

    BINDINGS = [Binding("enter", "select", "Choose", id="predict.choose")]


class WagerInput(Input):
    """The wager field; the footer shows that Enter submits (no button on phones)."""

    BINDINGS = [Binding("enter", "submit", "Submit", id="predict.submit")]


class PredictDialog(ModalScreen[str | None]):
    """Place one prediction on one game; dismisses with its id, or None."""

    CSS_PATH = "predict.tcss"
    AUTO_FOCUS = "#outcomes"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="predict.cancel"),
        Binding("1,a", "choose(0)", "Team A", id="predict.team_a"),
        Binding("2,b", "choose(1)", "Team B", id="predict.team_b"),
        Binding("3,t", "choose(2)", "Tie", id="predict.tie"),
        Binding("enter", "submit", "Submit", id="predict.submit"),
    ]

    def __init__(self, game_id: str) -> None:
        super().__init__()
        self.game_id = game_id
        self.outcome: int | None = None
        self.shown_game: Game | None = None
        self.moved_to: Game | None = None
        self.sending = False
        self._wager_pending = False

    @property
    def miner(self) -> MinerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("", id="title")
            yield Static("", id="when")
            yield OutcomeList(id="outcomes")
            yield Static("", id="moved")
            with Horizontal(id="wager-row"):
                yield Label("Wager", id="wager-label")
                yield WagerInput(placeholder="e.g. 25.00", id="wager")
            yield Static("", id="error")
            yield Static("", id="payout")
            with Horizontal(id="buttons"):
                yield Button("Submit", variant="primary", id="submit")
                yield Button("Cancel", id="cancel")
            yield Footer(compact=True)

    def on_mount(self) -> None:
        self.miner.apply_cursor_blink(self)
        session = self.miner.session
        game = session.client.games.get(self.game_id) if session else None
        self.shown_game = game
        self._show_game()
        self._check()

    # --- what is shown -----------------------------------------------------

    def _show_game(self) -> None:
        game = self.shown_game
        if game is None:
            self.query_one("#title", Static).update("This game is no longer listed.")
            return
        self.query_one("#title", Static).update(
            f"[b]{game.team_a}[/b] v [b]{game.team_b}[/b]  {game.sport} · {game.league}"
        )
        self._show_when()
        options = self.query_one("#outcomes", OptionList)
        highlighted = options.highlighted
        options.clear_options()
        rows = [
            (OUTCOME_TEAM_A, "1/a"),
            (OUTCOME_TEAM_B, "2/b"),
        ] + ([(OUTCOME_TIE, "3/t")] if game.can_tie else [])
        for outcome, keys in rows:
            odds = outcome_odds(game, outcome)
            mark = "●" if outcome == self.outcome else " "
            label = outcome_label(game, outcome)
            options.add_option(
                Option(f"{mark} {keys}  {label}  @ {odds:.2f}", id=str(outcome))
            )
        if highlighted is not None:
            options.highlighted = highlighted

    def _show_when(self) -> None:
        game = self.shown_game
        if game is None:
            return
        if game.status == "scheduled":
            text = f"Kickoff {kickoff_text(game.kickoff, self.miner.clock())}"
        else:
            text = f"[b]{game.status}[/b]: no more predictions"
        self.query_one("#when", Static).update(text)

    def minute_passed(self) -> None:
        self._show_when()

    def _budget(self) -> float:
        session = self.miner.session
        return session.client.budget_left() if session else 0.0

    def _wager(self) -> tuple[float | None, str | None]:
        """The typed wager, or why it is refused (None, None while empty)."""
        text = self.query_one("#wager", Input).value
        if not text.strip():
            return None, None
        try:
            return parse_wager(text, self._budget()), None
        except WagerError as exc:
            return None, str(exc)

    def _check(self) -> None:
        """Refresh the payout line and the inline refusal as the miner types."""
        wager, problem = self._wager()
        budget = self._budget()
        self.query_one("#error", Static).update(f"[b]{problem}[/b]" if problem else "")
        game = self.shown_game
        odds = (
            outcome_odds(game, self.outcome)
            if game and self.outcome is not None
            else None
        )
        parts = []
        if wager is not None and odds is not None:
            parts.append(f"Payout if it wins: [b]{money(wager * odds)}[/b]")
        after = f" → {money(budget - wager)}" if wager is not None else ""
        parts.append(f"Budget left today: {money(budget)}{after}")
        self.query_one("#payout", Static).update("   ".join(parts))

    # --- odds and game changes --------------------------------------------

    def apply_changes(self, changes: Changes) -> None:
        session = self.miner.session
        if session is None:
            return
        if changes.games is not None and self.game_id not in changes.games:
            if changes.predictions or changes.power:
                self._check()
            return
        game = session.client.games.get(self.game_id)
        if game is None:
            return
        self._take(game)
        self._check()

    def _take(self, game: Game) -> None:
        """Show a newer view of the game; moved odds wait for the miner's yes."""
        shown = self.shown_game
        if shown is not None and odds_of(shown) != odds_of(game):
            self.moved_to = game
            self._show_moved()
            # Status and kickoff still update at once; the odds do not.
            self.shown_game = _with_odds(game, shown)
        else:
            # The odds came back to what the miner saw: nothing to agree to.
            self.moved_to = None
            self._show_moved()
            self.shown_game = game
        self._show_game()

    def _show_moved(self) -> None:
        moved = self.query_one("#moved", Static)
        if self.moved_to is None or self.shown_game is None:
            moved.update("")
            moved.display = False
            return
        old, new = self.shown_game, self.moved_to
        changes = []
        for outcome in (OUTCOME_TEAM_A, OUTCOME_TEAM_B, OUTCOME_TIE):
            before, after = outcome_odds(old, outcome), outcome_odds(new, outcome)
            if before is not None and after is not None and before != after:
                label = outcome_label(new, outcome)
                changes.append(f"{label} {before:.2f} → {after:.2f}")
        moved.update(
            "[b]Odds moved[/b]: "
            + ", ".join(changes)
            + ". Enter accepts the new odds; Esc cancels."
        )
        moved.display = True

    def accept_new_odds(self) -> None:
        if self.moved_to is not None:
            self.shown_game = self.moved_to
            self.moved_to = None
            self._show_moved()
            self._show_game()
            self._check()

    # --- actions -----------------------------------------------------------

    def action_choose(self, outcome: int) -> None:
        game = self.shown_game
        if game is None or (outcome == OUTCOME_TIE and not game.can_tie):
            self._refuse("This game cannot end in a tie.")
            return
        self.outcome = outcome
        self._show_game()
        self.query_one("#outcomes", OptionList).highlighted = outcome
        self._check()
        wager = self.query_one("#wager", Input)
        if self.focused is not wager:
            # Until the wager has focus, typed characters belong to it.
            self._wager_pending = True
            wager.focus()

    async def on_key(self, event: events.Key) -> None:
        """Outcome keys and type-ahead, decided in the order they were typed.

        Keys reach here from the outcomes list and the buttons (the wager
        takes its own). Over SSH a burst like "1", "1", "2" can arrive before
        the wager has focus: after an outcome key the rest is the wager, not
        another choice of outcome.
        """
        if self._wager_pending and event.is_printable and event.character:
            event.stop()
            event.prevent_default()
            self.query_one("#wager", Input).insert_text_at_cursor(event.character)
            return
        try:
            bindings = self._bindings.get_bindings_for_key(event.key)
        except NoBinding:
            return
        for binding in bindings:
            if binding.action.startswith("choose("):
                event.stop()
                event.prevent_default()
                await self.run_action(binding.action)
                return

    @on(events.DescendantFocus)
    def _focus_moved(self, event: events.DescendantFocus) -> None:
        # Moving to the outcomes or a button is deliberate: keys choose again.
        if event.widget is not self.query_one("#wager"):
            self._wager_pending = False

    @on(OptionList.OptionSelected, "#outcomes")
    def _outcome_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.action_choose(int(event.option.id))

    @on(Input.Changed, "#wager")
    def _wager_changed(self) -> None:
        self._check()

    @on(Input.Submitted, "#wager")
    async def _wager_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_submit()

    @on(Button.Pressed, "#submit")
    async def _submit_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        await self.action_submit()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _refuse(self, reason: str) -> None:
        self.query_one("#error", Static).update(f"[b]{reason}[/b]")

    async def action_submit(self) -> None:
        """Check everything the miner can see; only then hand it to the client."""
        if self.sending:
            return
        session = self.miner.session
        game = self.shown_game
        if session is None or game is None:
            self._refuse("Not connected yet.")
            return
        if self.outcome is None:
            self._refuse("Choose an outcome first: 1/a, 2/b or 3/t.")
            self.query_one("#outcomes", OptionList).focus()
            return
        if game.status != "scheduled" or game.kickoff <= self.miner.clock():
            self._refuse(REASON_TEXT[Reason.GAME_STARTED])
            return
        wager, problem = self._wager()
        if problem is not None or wager is None:
            self._refuse(problem or "Enter a wager.")
            self.query_one("#wager", Input).focus()
            return

        # The client sends its current odds: the miner must have seen them.
        if self.moved_to is not None:
            self.accept_new_odds()
            self._refuse("New odds accepted. Press Enter again to submit.")
            return
        current = session.client.games.get(self.game_id)
        if current is not None and odds_of(current) != odds_of(game):
            self._take(current)
            return

        self.sending = True
        try:
            record = await session.client.submit(self.game_id, self.outcome, wager)
        except WagerError as exc:
            self._refuse(str(exc))
            return
        except BettensorError as exc:
            log.warning("submit failed: %s", exc)
            self._refuse(f"Not sent: {exc}")
            return
        finally:
            self.sending = False
        pick = outcome_label(game, self.outcome)
        self.notify(
            # Stored, not necessarily sent: the validator may be unreachable.
            f"{pick} for {money(wager)} is in the outbox; waiting for the validator.",
            title="Prediction queued",
        )
        self.dismiss(record.prediction.prediction_id)


def _with_odds(game: Game, odds_from: Game) -> Game:
    """``game`` as it is now, but carrying the odds the miner last agreed to."""
    return msgspec.structs.replace(
        game,
        odds_a=odds_from.odds_a,
        odds_b=odds_from.odds_b,
        odds_tie=odds_from.odds_tie,
    )
