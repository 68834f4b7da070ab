"""Plain functions that turn games and predictions into the words on screen.

No Textual here: the screens call these, and tests drive them with values.
A prediction's fate is summarised honestly: it is "accepted" only when every
validator that answered accepted it, and "rejected" as soon as one refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bettensor_core.models import (
    Delivery,
    DeliveryState,
    LinkState,
    LinkStatus,
    PredictionRecord,
)
from bettensor_core.protocol import (
    OUTCOME_TEAM_A,
    OUTCOME_TEAM_B,
    OUTCOME_TIE,
    Game,
)
from bettensor_core.rules import utc_day

OUTCOME_KEYS: dict[str, int] = {
    "1": OUTCOME_TEAM_A,
    "a": OUTCOME_TEAM_A,
    "2": OUTCOME_TEAM_B,
    "b": OUTCOME_TEAM_B,
    "3": OUTCOME_TIE,
    "t": OUTCOME_TIE,
}


def outcome_label(game: Game | None, outcome: int | None) -> str:
    """The miner's words for an outcome: a team name, "Tie" or "?"."""
    if outcome == OUTCOME_TIE:
        return "Tie"
    if game is None:
        return {OUTCOME_TEAM_A: "Team A", OUTCOME_TEAM_B: "Team B"}.get(
            outcome or -1, "?"
        )
    if outcome == OUTCOME_TEAM_A:
        return game.team_a
    if outcome == OUTCOME_TEAM_B:
        return game.team_b
    return "?"


def outcome_odds(game: Game, outcome: int) -> float | None:
    """The game's current decimal odds for one outcome (None if not offered)."""
    if outcome == OUTCOME_TEAM_A:
        return game.odds_a
    if outcome == OUTCOME_TEAM_B:
        return game.odds_b
    if outcome == OUTCOME_TIE and game.can_tie:
        return game.odds_tie
    return None


def odds_of(game: Game) -> tuple[float, float, float | None]:
    """The three odds a dialog compares to notice that they moved."""
    return (game.odds_a, game.odds_b, game.odds_tie if game.can_tie else None)


def money(value: float) -> str:
    return f"{value:,.2f}"


def countdown(seconds: float) -> str:
    """A compact time-to-kickoff with minute precision: 3d4h, 2h05, 12m."""
    if seconds <= 0:
        return "started"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def kickoff_text(kickoff: float, now: float | None = None) -> str:
    """Local kickoff time and countdown, e.g. "Sat 14:30 (in 2h05)"."""
    now = time.time() if now is None else now
    local = datetime.fromtimestamp(kickoff).strftime("%a %H:%M")
    left = kickoff - now
    return f"{local} (in {countdown(left)})" if left > 0 else f"{local} (started)"


def duration(seconds: float | None) -> str:
    """A short duration for confirmation times: 38 ms, 1.2 s, 3m10s."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


# --- predictions ----------------------------------------------------------


class Fate:
    """Overall states of a prediction, as the Predictions screen names them."""

    QUEUED = "queued"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WON = "won"
    LOST = "lost"

    ALL = (QUEUED, SENT, ACCEPTED, REJECTED, WON, LOST)


def fate(record: PredictionRecord) -> str:
    """One word for a prediction's fate across all its validators.

    A single rejection makes the whole prediction "rejected" (never shown as
    confirmed); "accepted" needs every delivery accepted.
    """
    if record.settlement is not None:
        return Fate.WON if record.settlement.won else Fate.LOST
    states = [d.state for d in record.deliveries.values()]
    if any(state == DeliveryState.REJECTED for state in states):
        return Fate.REJECTED
    if states and all(state == DeliveryState.ACCEPTED for state in states):
        return Fate.ACCEPTED
    if any(state in (DeliveryState.SENT, DeliveryState.ACCEPTED) for state in states):
        return Fate.SENT
    return Fate.QUEUED


def delivery_text(delivery: Delivery) -> str:
    """One validator's part of a prediction's path, e.g. "ws → accepted"."""
    via = {"websocket": "ws", "http": "http"}.get(delivery.via or "", "")
    parts = [via] if via else []
    if delivery.state == DeliveryState.REJECTED:
        conf = delivery.confirmation
        reason = conf.message if conf is not None else "no reason given"
        parts.append(f"rejected: {reason}")
    else:
        parts.append(delivery.state.value)
    return " → ".join(parts)


def path_text(record: PredictionRecord) -> str:
    """Every validator's path, joined; names shown only with several validators."""
    deliveries = list(record.deliveries.values())
    if not deliveries:
        return "queued"
    if len(deliveries) == 1:
        return delivery_text(deliveries[0])
    return "; ".join(f"{d.validator}: {delivery_text(d)}" for d in deliveries)


def rejection_reason(record: PredictionRecord) -> str | None:
    """The first validator's reason for refusing this prediction, if any did."""
    for delivery in record.deliveries.values():
        conf = delivery.confirmation
        if delivery.state == DeliveryState.REJECTED:
            return conf.message if conf is not None else "rejected"
    return None


def time_to_confirm(record: PredictionRecord) -> float | None:
    """Seconds from creation to the last validator's answer (None while waiting)."""
    answers = [
        d.confirmation.confirmed_at
        for d in record.deliveries.values()
        if d.confirmation is not None
    ]
    if not answers or len(answers) < len(record.deliveries):
        return None
    return max(0.0, max(answers) - record.created_at)


def result_text(record: PredictionRecord) -> str:
    """Once settled: "won 18.50" or "lost"; before that, empty."""
    s = record.settlement
    if s is None:
        return ""
    return f"won {money(s.payout)}" if s.won else "lost"


def matches(record: PredictionRecord, game: Game | None, query: str) -> bool:
    """Case-insensitive search over teams, league, sport, id and path."""
    if not query:
        return True
    p = record.prediction
    words = [p.prediction_id, p.team_a or "", p.team_b or "", path_text(record)]
    if game is not None:
        words += [game.sport, game.league]
    haystack = " ".join(words).lower()
    return all(term in haystack for term in query.lower().split())


# --- dashboard ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    """What the dashboard counts, over every prediction the miner has."""

    wagered: float = 0.0
    returned: float = 0.0
    wins: int = 0
    losses: int = 0
    pending: int = 0
    rejected: int = 0
    wagered_settled: float = 0.0

    @property
    def roi(self) -> float | None:
        """Return on settled wagers, as a fraction (None before any settles)."""
        if self.wagered_settled <= 0:
            return None
        return (self.returned - self.wagered_settled) / self.wagered_settled


def totals(records: Iterable[PredictionRecord]) -> Totals:
    wagered = returned = wagered_settled = 0.0
    wins = losses = pending = rejected = 0
    for record in records:
        state = fate(record)
        wager = record.prediction.wager or 0.0
        if state == Fate.REJECTED:
            rejected += 1
            continue
        wagered += wager
        if state == Fate.WON:
            wins += 1
        elif state == Fate.LOST:
            losses += 1
        else:
            pending += 1
            continue
        wagered_settled += wager
        assert record.settlement is not None
        returned += record.settlement.payout
    return Totals(
        wagered=wagered,
        returned=returned,
        wins=wins,
        losses=losses,
        pending=pending,
        rejected=rejected,
        wagered_settled=wagered_settled,
    )


def daily_profit(
    records: Iterable[PredictionRecord], days: int = 14, now: float | None = None
) -> list[float]:
    """Profit and loss of settled predictions per UTC day, oldest first."""
    now = time.time() if now is None else now
    wanted = [utc_day(now - 86400 * back) for back in range(days - 1, -1, -1)]
    index = {day: i for i, day in enumerate(wanted)}
    result = [0.0] * days
    for record in records:
        s = record.settlement
        if s is None:
            continue
        i = index.get(utc_day(s.settled_at))
        if i is not None:
            result[i] += s.payout - (record.prediction.wager or 0.0)
    return result


# --- links ----------------------------------------------------------------


def badge(links: Iterable[LinkStatus]) -> str:
    """The transport badge: WS, HTTP, a mix like "WS+HTTP", or OFFLINE."""
    states = [link.state for link in links]
    if not states:
        return "NO VALIDATOR"
    names = {
        LinkState.WEBSOCKET: "WS",
        LinkState.HTTP: "HTTP",
        LinkState.CONNECTING: "CONNECTING",
        LinkState.OFFLINE: "OFFLINE",
    }
    seen: list[str] = []
    for state in states:
        name = names.get(state, str(state).upper())
        if name not in seen:
            seen.append(name)
    return "+".join(seen)
