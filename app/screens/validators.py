"""The Validators screen: how each link is doing, and why it fell back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from app.screens.predictions import set_columns
from app.widgets.status_line import StatusLine
from bettensor_core.models import LinkState, LinkStatus

if TYPE_CHECKING:
    from app.miner import Changes, MinerApp

STATE_STYLE = {
    LinkState.WEBSOCKET: "green",
    LinkState.HTTP: "yellow",
    LinkState.CONNECTING: "dim",
    LinkState.OFFLINE: "bold red",
}


NARROW_COLUMNS = ("Validator", "Link", "RTT")
MEDIUM_COLUMNS = ("Validator", "Link", "RTT", "Last seq", "Reconnects", "Power")
WIDE_COLUMNS = (
    "Validator",
    "URL",
    "Link",
    "RTT",
    "Last seq",
    "Reconnects",
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
        yield Footer(compact=True)

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
        width = self.app.size.width
        columns: tuple[str, ...] = WIDE_COLUMNS
        if width < 60:
            columns = NARROW_COLUMNS
        elif width < 110:
            columns = MEDIUM_COLUMNS
        set_columns(table, columns)
        table.clear()
        session = self.miner.session
        links = session.client.links() if session else []
        for link in links:
            cells = _cells(link)
            table.add_row(*(cells[name] for name in columns))

        # Fallback reasons are long sentences: below the table, where they can
        # wrap, so that no column is pushed off the screen.
        lines = [f"Power state: {self.miner.power.state.value}"]
        lines += [
            f"{link.name}, last fallback to HTTP: {link.fallback_reason}"
            for link in links
            if link.fallback_reason
        ]
        self.query_one("#note", Static).update("\n".join(lines))


def _cells(link: LinkStatus) -> dict[str, str | Text]:
    """Every column's cell for one link; layouts pick the ones they show."""
    return {
        "Validator": link.name,
        "URL": link.url,
        "Link": Text(link.state.value, style=STATE_STYLE.get(link.state, "")),
        "RTT": "-" if link.rtt_ms is None else f"{link.rtt_ms:.1f} ms",
        "Last seq": "-" if link.last_seq is None else str(link.last_seq),
        "Reconnects": str(link.reconnects),
        "Power": link.power_state,
    }
