"""The Predictions screen: every prediction and its honest fate, per validator."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Static

from app.format import (
    Fate,
    delivery_text,
    duration,
    fate,
    matches,
    money,
    outcome_label,
    path_text,
    result_text,
    time_to_confirm,
)
from app.widgets.status_line import StatusLine
from bettensor_core.models import PredictionRecord
from bettensor_core.protocol import Game

if TYPE_CHECKING:
    from app.miner import Changes, MinerApp

FILTERS: list[str | None] = [None, *Fate.ALL]
FATE_STYLE = {
    Fate.QUEUED: "dim",
    Fate.SENT: "yellow",
    Fate.ACCEPTED: "green",
    Fate.REJECTED: "bold red",
    Fate.WON: "bold green",
    Fate.LOST: "magenta",
}


class PredictionsScreen(Screen[None]):
    """A table of predictions, newest first, and the selected one's full path."""

    CSS_PATH = "predictions.tcss"
    AUTO_FOCUS = "#predictions"
    BINDINGS = [
        Binding("slash", "search", "Search", id="predictions.search"),
        Binding("escape", "clear_search", "Clear", show=False, id="predictions.clear"),
        Binding("f", "cycle_filter", "Filter", id="predictions.filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.fate_filter: str | None = None
        self.query_text = ""
        self._shown_once = False

    @property
    def miner(self) -> MinerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Horizontal(id="bar"):
            yield Label("", id="filter")
            yield Label("", id="count")
        yield Input(placeholder="search teams, league, id, reason", id="search")
        table: DataTable[str | Text] = DataTable(
            id="predictions", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static("", id="detail")
        yield StatusLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#search", Input).display = False
        self.miner.apply_cursor_blink(self)
        self.refresh_all()

    def on_screen_resume(self) -> None:
        if self._shown_once:
            self.refresh_all()
        self._shown_once = True

    def on_resize(self) -> None:
        self.refresh_all()

    def apply_changes(self, changes: Changes) -> None:
        if changes.predictions or changes.session:
            self.refresh_all()

    # --- table -------------------------------------------------------------

    def _columns(self) -> tuple[str, ...]:
        width = self.app.size.width
        if width < 60:
            return NARROW_COLUMNS
        return MEDIUM_COLUMNS if width < 110 else WIDE_COLUMNS

    def _records(self) -> list[PredictionRecord]:
        session = self.miner.session
        if session is None:
            return []
        games = session.client.games
        shown = []
        for record in session.client.predictions():
            if self.fate_filter and fate(record) != self.fate_filter:
                continue
            game = games.get(record.prediction.game_id or "")
            if not matches(record, game, self.query_text):
                continue
            shown.append(record)
        return shown

    def refresh_all(self) -> None:
        table = self.query_one("#predictions", DataTable)
        keep = _cursor_key(table)
        columns = self._columns()
        set_columns(table, columns)
        table.clear()
        session = self.miner.session
        games = session.client.games if session else {}
        records = self._records()
        for record in records:
            cells = _cells(record, games.get(record.prediction.game_id or ""))
            table.add_row(
                *(cells[name] for name in columns), key=record.prediction.prediction_id
            )
        if keep is not None and keep in {k.value for k in table.rows}:
            table.move_cursor(row=table.get_row_index(keep))
        label = f"Fate: {self.fate_filter or 'all'}"
        if self.query_text:
            label += f"  search: {self.query_text!r}"
        self.query_one("#filter", Label).update(label)
        total = len(session.client.predictions()) if session else 0
        self.query_one("#count", Label).update(f"  {len(records)} of {total}")
        self._show_detail()

    @on(DataTable.RowHighlighted, "#predictions")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        session = self.miner.session
        key = _cursor_key(self.query_one("#predictions", DataTable))
        record = session.client.prediction(key) if session and key else None
        if record is None:
            detail.update("No prediction selected." if session else "")
            return
        p = record.prediction
        game = session.client.games.get(p.game_id or "") if session else None
        lines = [
            f"[b]{p.team_a} v {p.team_b}[/b]  {outcome_label(game, p.outcome)}"
            f" for {money(p.wager or 0.0)}  (id {p.prediction_id[:12]})",
            f"Fate: [b]{fate(record)}[/b]   answered in "
            f"{duration(time_to_confirm(record))}   {result_text(record)}",
        ]
        for delivery in record.deliveries.values():
            lines.append(f"  {delivery.validator}: {delivery_text(delivery)}")
        detail.update("\n".join(lines))

    # --- filter and search -------------------------------------------------

    def action_cycle_filter(self) -> None:
        i = FILTERS.index(self.fate_filter)
        self.fate_filter = FILTERS[(i + 1) % len(FILTERS)]
        self.refresh_all()

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def action_clear_search(self) -> None:
        search = self.query_one("#search", Input)
        search.value = ""
        search.display = False
        self.query_text = ""
        self.refresh_all()
        self.query_one("#predictions", DataTable).focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        self.refresh_all()

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self.query_one("#predictions", DataTable).focus()

    def screen_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand(
            "Predictions: search", "Search predictions", self.action_search
        )
        yield SystemCommand(
            "Predictions: next filter",
            "All, queued, sent, accepted, rejected, won, lost",
            self.action_cycle_filter,
        )


NARROW_COLUMNS = ("Pick", "Wager", "Fate")
MEDIUM_COLUMNS = ("Game", "Pick", "Wager", "Fate", "Result")
# The path holds the validators' reasons, which can be long: it comes last, so
# that it never pushes the other columns off the screen.
WIDE_COLUMNS = (
    "Placed",
    "Game",
    "Pick",
    "Wager",
    "Fate",
    "Answered in",
    "Result",
    "Path",
)


def _cells(record: PredictionRecord, game: Game | None) -> dict[str, str | Text]:
    """Every column's cell for one prediction; layouts pick the ones they show."""
    p = record.prediction
    state = fate(record)
    return {
        "Placed": datetime.fromtimestamp(record.created_at).strftime("%m-%d %H:%M"),
        "Game": f"{p.team_a} v {p.team_b}",
        "Pick": outcome_label(game, p.outcome),
        "Wager": money(p.wager or 0.0),
        "Fate": Text(state, style=FATE_STYLE.get(state, "")),
        "Path": path_text(record),
        "Answered in": duration(time_to_confirm(record)),
        "Result": result_text(record),
    }


def set_columns(table: DataTable[str | Text], labels: tuple[str, ...]) -> None:
    """Replace the columns only when the layout changed (rows keep their widths)."""
    current = tuple(str(column.label) for column in table.columns.values())
    if current == labels:
        return
    table.clear(columns=True)
    layout = len(labels)
    for label in labels:
        table.add_column(label, key=f"{layout}:{label}")


def _cursor_key(table: DataTable[str | Text]) -> str | None:
    if table.row_count == 0:
        return None
    try:
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    except Exception:
        return None
    return str(key.value) if key.value is not None else None
