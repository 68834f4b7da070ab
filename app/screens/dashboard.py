"""The Dashboard: today's budget, wagers, wins, losses, ROI and daily P&L."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, Sparkline, Static

from app.format import daily_profit, money, totals
from app.widgets.status_line import StatusLine
from bettensor_core.rules import DAILY_BUDGET, utc_day

if TYPE_CHECKING:
    from app.miner import Changes, MinerApp

BAR_WIDTH = 30

# The number cells, in reading order; each is a heading and one short value,
# so that none is cut off by its two-line cell.
NUMBERS = ("today", "wagered", "pending", "wins", "losses", "roi", "rejected")


def budget_bar(left: float, width: int = BAR_WIDTH) -> str:
    """Today's budget as a text bar: filled for what is used, then what is left."""
    used = max(0.0, min(DAILY_BUDGET, DAILY_BUDGET - left))
    filled = round(width * used / DAILY_BUDGET)
    return "█" * filled + "░" * (width - filled)


class DashboardScreen(Screen[None]):
    """Numbers that sum up the miner's day and season."""

    CSS_PATH = "dashboard.tcss"

    def __init__(self) -> None:
        super().__init__()
        self._shown_once = False

    @property
    def miner(self) -> MinerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with Vertical(id="dashboard"):
            yield Label("Today's budget", classes="heading")
            yield Static("", id="budget")
            with Grid(id="numbers"):
                for name in NUMBERS:
                    yield Static("", id=name, classes="number")
            yield Label("Daily profit and loss, last 14 days", classes="heading")
            yield Sparkline([0.0], id="pnl")
            yield Static("", id="pnl-range")
        yield StatusLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.refresh_all()

    def on_screen_resume(self) -> None:
        if self._shown_once:
            self.refresh_all()
        self._shown_once = True

    def apply_changes(self, changes: Changes) -> None:
        if changes.predictions or changes.session:
            self.refresh_all()

    def refresh_all(self) -> None:
        session = self.miner.session
        if session is None:
            self.query_one("#budget", Static).update("Not connected yet.")
            return
        client = session.client
        records = client.predictions()
        left = client.budget_left()
        self.query_one("#budget", Static).update(
            f"{budget_bar(left)}  {money(DAILY_BUDGET - left)} used, "
            f"[b]{money(left)}[/b] left of {DAILY_BUDGET:,.0f}"
        )
        t = totals(records)
        roi = "-" if t.roi is None else f"{t.roi * 100:+.1f}%"
        today = totals(
            r for r in records if utc_day(r.created_at) == utc_day(self.miner.clock())
        )
        numbers = {
            "today": f"Today\n[b]{money(today.wagered)}[/b] on "
            f"{today.pending + today.wins + today.losses}",
            "wagered": f"All time\n[b]{money(t.wagered)}[/b]",
            "pending": f"Pending\n[b]{t.pending}[/b]",
            "wins": f"Wins\n[b]{t.wins}[/b]",
            "losses": f"Losses\n[b]{t.losses}[/b]",
            "roi": f"ROI\n[b]{roi}[/b]",
            "rejected": f"Rejected\n[b]{t.rejected}[/b]",
        }
        for name, text in numbers.items():
            self.query_one(f"#{name}", Static).update(text)
        pnl = daily_profit(records, now=self.miner.clock())
        self.query_one("#pnl", Sparkline).data = pnl
        self.query_one("#pnl-range", Static).update(
            f"worst day {money(min(pnl))}   best day {money(max(pnl))}"
            f"   today {money(pnl[-1])}"
        )
