"""The Validators screen: how each link is doing, and why it fell back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from app.screens.predictions import set_columns
from app.widgets.status_line import StatusLine
from bettensor_core.models import LinkState

if TYPE_CHECKING:
    from app.miner import Changes, MinerApp

STATE_STYLE = {
    LinkState.WEBSOCKET: "green",
    LinkState.HTTP: "yellow",
    LinkState.CONNECTING: "dim",
    LinkState.OFFLINE: "bold red",
}


NARROW_COLUMNS = ("Validator", "Link", "RTT")
WIDE_COLUMNS = (
    "Validator",
    "URL",
    "Link",
    "RTT",
    "Last seq",
    "Reconnects",
    "Fallback reason",
    "Power",
)


class ValidatorsScreen(Screen[None]):
    """One row per validator link: transport, RTT, seq, reconnects, fallback."""

    CSS_PATH = "validators.tcss"
    AUTO_FOCUS = "#links"

    def __init__(self) -> None:
        super().__init__()
        self._shown_once = False

    @property
    def miner(self) -> MinerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="links", cursor_type="row")
        yield table
        yield Static("", id="note")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_all()

    def on_screen_resume(self) -> None:
        if self._shown_once:
            self.refresh_all()
        self._shown_once = True

    def on_resize(self) -> None:
        self.refresh_all()

    def apply_changes(self, changes: Changes) -> None:
        if changes.links or changes.power or changes.session:
            self.refresh_all()

    def refresh_all(self) -> None:
        table = self.query_one("#links", DataTable)
        narrow = self.app.size.width < 60
        set_columns(table, NARROW_COLUMNS if narrow else WIDE_COLUMNS)
        table.clear()
        session = self.miner.session
        links = session.client.links() if session else []
        for link in links:
            state = Text(link.state.value, style=STATE_STYLE.get(link.state, ""))
            rtt = "-" if link.rtt_ms is None else f"{link.rtt_ms:.1f} ms"
            if narrow:
                table.add_row(link.name, state, rtt)
                continue
            table.add_row(
                link.name,
                link.url,
                state,
                rtt,
                "-" if link.last_seq is None else str(link.last_seq),
                str(link.reconnects),
                link.fallback_reason or "",
                link.power_state,
            )
        note = self.query_one("#note", Static)
        if narrow:
            reasons = [
                f"{x.name}: {x.fallback_reason}" for x in links if x.fallback_reason
            ]
            note.update("\n".join(reasons))
        else:
            note.update(f"Power state: {self.miner.power.state.value}")
