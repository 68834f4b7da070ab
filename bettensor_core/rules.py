"""The validator's acceptance rules, in one place for the stub and the app.

The stub applies `check_prediction` to every prediction it receives; the app
applies `parse_wager` and the same budget arithmetic while the miner types, so
a wager the validator would refuse is refused before it is sent.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum

from bettensor_core.errors import WagerError
from bettensor_core.protocol import (
    OUTCOME_TEAM_A,
    OUTCOME_TEAM_B,
    OUTCOME_TIE,
    Game,
    Prediction,
)

DAILY_BUDGET = 1000.0
ODDS_TOLERANCE = 0.01
# Float sums of cents drift by ~1e-13; anything below this is equality.
_EPSILON = 1e-6


class Reason(StrEnum):
    """Stable rejection codes; `REASON_TEXT` holds the sentence for each."""

    MISSING_DATA = "missing_data"
    DUPLICATE_ID = "duplicate_id"
    INVALID_WAGER = "invalid_wager"
    DAILY_LIMIT = "daily_limit"
    UNKNOWN_GAME = "unknown_game"
    GAME_STARTED = "game_started"
    TEAM_MISMATCH = "team_mismatch"
    ODDS_MISMATCH = "odds_mismatch"
    TIE_ODDS = "tie_odds"
    INVALID_OUTCOME = "invalid_outcome"
    INVALID_CONFIDENCE = "invalid_confidence"


REASON_TEXT: dict[Reason, str] = {
    Reason.MISSING_DATA: "The prediction is missing required data.",
    Reason.DUPLICATE_ID: "This prediction id was already used for another prediction.",
    Reason.INVALID_WAGER: "The wager must be a positive number.",
    Reason.DAILY_LIMIT: "This wager would take today's total above the daily limit.",
    Reason.UNKNOWN_GAME: "The game is not known to this validator.",
    Reason.GAME_STARTED: "The game has already started.",
    Reason.TEAM_MISMATCH: "The team names do not match the game's.",
    Reason.ODDS_MISMATCH: "The odds differ from the current odds by more than 0.01.",
    Reason.TIE_ODDS: "Tie odds do not fit this game (given without ties, or missing).",
    Reason.INVALID_OUTCOME: "The outcome is not one this game allows.",
    Reason.INVALID_CONFIDENCE: "The confidence score must be between 0 and 1.",
}


class Verdict:
    """The result of checking one prediction: accepted, or a reason and sentence."""

    __slots__ = ("message", "reason")

    def __init__(self, reason: Reason | None = None, message: str | None = None):
        self.reason = reason
        self.message = message or (REASON_TEXT[reason] if reason else "Accepted.")

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def __repr__(self) -> str:
        return f"Verdict({self.reason}, {self.message!r})"


ACCEPTED = Verdict()

_REQUIRED = ("game_id", "outcome", "wager", "team_a", "team_b", "odds_a", "odds_b")


def utc_day(ts: float) -> str:
    """The UTC calendar day of a Unix time, as the daily budget counts it."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def budget_left(day_total: float) -> float:
    """What a miner may still wager today, given the day's accepted total."""
    return max(0.0, round(DAILY_BUDGET - day_total, 6))


def exceeds_budget(wager: float, day_total: float) -> bool:
    """True if ``wager`` would take the day's total above the budget (1000 is fine)."""
    return day_total + wager > DAILY_BUDGET + _EPSILON


def odds_taken(prediction: Prediction, game: Game) -> float:
    """The game's current decimal odds for the predicted outcome."""
    if prediction.outcome == OUTCOME_TEAM_A:
        return game.odds_a
    if prediction.outcome == OUTCOME_TEAM_B:
        return game.odds_b
    return game.odds_tie or 0.0


def same_content(a: Prediction, b: Prediction) -> bool:
    """Whether two predictions with one id say the same thing (resends do).

    ``created_at`` is part of the content: a resend carries the original.
    """
    return a == b


def check_prediction(
    p: Prediction, game: Game | None, *, now: float, day_total: float
) -> Verdict:
    """Apply the validator's rules in order; the first broken one is the answer.

    ``game`` is the validator's current view of ``p.game_id`` (None if
    unknown); ``day_total`` is the miner's accepted wagers for today (UTC).
    """
    if any(getattr(p, name) is None for name in _REQUIRED):
        missing = [name for name in _REQUIRED if getattr(p, name) is None]
        return Verdict(Reason.MISSING_DATA, f"Missing: {', '.join(missing)}.")
    assert p.wager is not None and p.outcome is not None

    if not math.isfinite(p.wager) or p.wager <= 0:
        return Verdict(Reason.INVALID_WAGER)
    if exceeds_budget(p.wager, day_total):
        return Verdict(
            Reason.DAILY_LIMIT,
            f"This wager of {p.wager:g} would take today's total above "
            f"{DAILY_BUDGET:g}; {budget_left(day_total):g} is left today.",
        )

    if game is None:
        return Verdict(Reason.UNKNOWN_GAME)
    if game.status != "scheduled" or now >= game.kickoff:
        return Verdict(Reason.GAME_STARTED)
    if p.team_a != game.team_a or p.team_b != game.team_b:
        return Verdict(Reason.TEAM_MISMATCH)

    assert p.odds_a is not None and p.odds_b is not None
    if not _odds_close(p.odds_a, game.odds_a) or not _odds_close(p.odds_b, game.odds_b):
        return Verdict(Reason.ODDS_MISMATCH)
    if game.can_tie:
        if p.odds_tie is None:
            return Verdict(
                Reason.TIE_ODDS, "Tie odds are missing for a game with ties."
            )
        if game.odds_tie is None or not _odds_close(p.odds_tie, game.odds_tie):
            return Verdict(Reason.ODDS_MISMATCH)
    elif p.odds_tie is not None:
        return Verdict(Reason.TIE_ODDS, "Tie odds were given for a game without ties.")

    allowed = {OUTCOME_TEAM_A, OUTCOME_TEAM_B} | (
        {OUTCOME_TIE} if game.can_tie else set()
    )
    if p.outcome not in allowed:
        return Verdict(Reason.INVALID_OUTCOME)
    if p.confidence is not None and not (0.0 <= p.confidence <= 1.0):
        return Verdict(Reason.INVALID_CONFIDENCE)
    return ACCEPTED


def _odds_close(given: float, current: float) -> bool:
    return math.isfinite(given) and abs(given - current) <= ODDS_TOLERANCE + _EPSILON


_WAGER_TEXT = re.compile(r"^\d+(\.\d{1,2})?$")


def parse_wager(text: str, budget: float) -> float:
    """Turn what the miner typed into a wager, or raise `WagerError` saying why.

    Refuses anything that is not a plain positive number with at most two
    decimals, and anything above ``budget`` (what is left today).
    """
    text = text.strip()
    if not text:
        raise WagerError("Enter a wager.")
    try:
        value = float(text)
    except ValueError:
        raise WagerError(f"{text!r} is not a number.") from None
    if not math.isfinite(value):
        raise WagerError("The wager must be a finite number.")
    if value <= 0:
        raise WagerError("The wager must be more than 0.")
    if not _WAGER_TEXT.match(text):
        raise WagerError("Use at most two decimals, digits only (for example 12.50).")
    if value > budget + _EPSILON:
        raise WagerError(f"Only {budget:,.2f} is left in today's budget.")
    return value
