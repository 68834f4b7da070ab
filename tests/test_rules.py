"""The validator's acceptance rules and the wager parser, rule by rule."""

from __future__ import annotations

import math

import pytest

from bettensor_core.errors import WagerError
from bettensor_core.protocol import Game, Prediction
from bettensor_core.rules import (
    DAILY_BUDGET,
    REASON_TEXT,
    Reason,
    budget_left,
    check_prediction,
    exceeds_budget,
    odds_taken,
    parse_wager,
    same_content,
    utc_day,
)

NOW = 1_800_000_000.0
TIE = Game(
    game_id="g-tie",
    sport="soccer",
    league="EPL",
    team_a="Arsenal",
    team_b="Chelsea",
    kickoff=NOW + 3600,
    odds_a=2.5,
    odds_b=2.8,
    odds_tie=3.2,
    can_tie=True,
)
NO_TIE = Game(
    game_id="g-nfl",
    sport="football",
    league="NFL",
    team_a="Chicago Bears",
    team_b="Detroit Lions",
    kickoff=NOW + 3600,
    odds_a=1.8,
    odds_b=2.1,
)


def pick(game: Game = NO_TIE, **changes: object) -> Prediction:
    fields: dict[str, object] = {
        "prediction_id": "p",
        "game_id": game.game_id,
        "outcome": 0,
        "wager": 10.0,
        "team_a": game.team_a,
        "team_b": game.team_b,
        "odds_a": game.odds_a,
        "odds_b": game.odds_b,
        "odds_tie": game.odds_tie,
    }
    fields.update(changes)
    return Prediction(**fields)  # type: ignore[arg-type]


def reason(
    p: Prediction, game: Game | None = NO_TIE, day_total: float = 0.0
) -> Reason | None:
    return check_prediction(p, game, now=NOW, day_total=day_total).reason


def test_valid_predictions_are_accepted():
    """A complete prediction matching the game is accepted, tie or not."""
    assert reason(pick()) is None
    assert reason(pick(TIE, outcome=2), TIE) is None
    verdict = check_prediction(pick(), NO_TIE, now=NOW, day_total=0)
    assert verdict.accepted and verdict.message == "Accepted."


@pytest.mark.parametrize(
    "field", ["game_id", "outcome", "wager", "team_a", "team_b", "odds_a", "odds_b"]
)
def test_missing_data(field: str):
    """Any missing required field is missing_data, and the message names it."""
    verdict = check_prediction(pick(**{field: None}), NO_TIE, now=NOW, day_total=0)
    assert verdict.reason == Reason.MISSING_DATA and field in verdict.message


@pytest.mark.parametrize("wager", [0.0, -5.0, math.nan, math.inf, -math.inf])
def test_invalid_wager(wager: float):
    """Zero, negative, NaN and infinite wagers are invalid_wager."""
    assert reason(pick(wager=wager)) == Reason.INVALID_WAGER


def test_daily_limit_boundary():
    """Exactly 1000 a day is allowed; 1000.01 is refused; totals count."""
    assert reason(pick(wager=1000.0)) is None
    assert reason(pick(wager=1000.01)) == Reason.DAILY_LIMIT
    assert reason(pick(wager=400.0), day_total=600.0) is None
    assert reason(pick(wager=0.01), day_total=1000.0) == Reason.DAILY_LIMIT
    # Float sums of cents are not refused for rounding noise.
    total = sum([0.1] * 10) + 998.99
    assert reason(pick(wager=0.01), day_total=total) is None
    verdict = check_prediction(pick(wager=50.0), NO_TIE, now=NOW, day_total=980.0)
    assert "20 is left" in verdict.message


def test_unknown_and_started_games():
    """No such game is unknown_game; a live game or one past kickoff is started."""
    assert reason(pick(), None) == Reason.UNKNOWN_GAME
    live = Game(**{**_fields(NO_TIE), "status": "live"})
    assert reason(pick(), live) == Reason.GAME_STARTED
    at_kickoff = Game(**{**_fields(NO_TIE), "kickoff": NOW})
    assert reason(pick(), at_kickoff) == Reason.GAME_STARTED
    just_before = Game(**{**_fields(NO_TIE), "kickoff": NOW + 0.001})
    assert reason(pick(), just_before) is None


def _fields(game: Game) -> dict[str, object]:
    return {f: getattr(game, f) for f in game.__struct_fields__}


def test_team_mismatch():
    """Team names must equal the game's, either side, exactly."""
    assert reason(pick(team_a="Chicago bears")) == Reason.TEAM_MISMATCH
    assert reason(pick(team_b="Green Bay Packers")) == Reason.TEAM_MISMATCH


@pytest.mark.parametrize("field", ["odds_a", "odds_b"])
def test_odds_tolerance(field: str):
    """Odds 0.01 off either way are allowed; 0.02 off are odds_mismatch."""
    current = getattr(NO_TIE, field)
    assert reason(pick(**{field: round(current + 0.01, 2)})) is None
    assert reason(pick(**{field: round(current - 0.01, 2)})) is None
    assert reason(pick(**{field: round(current + 0.02, 2)})) == Reason.ODDS_MISMATCH
    assert reason(pick(**{field: round(current - 0.02, 2)})) == Reason.ODDS_MISMATCH
    assert reason(pick(**{field: math.nan})) == Reason.ODDS_MISMATCH


def test_tie_odds_rules():
    """Tie odds: required with ties, within 0.01; refused for games without ties."""
    assert reason(pick(TIE, odds_tie=None), TIE) == Reason.TIE_ODDS
    assert reason(pick(TIE, odds_tie=3.21), TIE) is None
    assert reason(pick(TIE, odds_tie=3.22), TIE) == Reason.ODDS_MISMATCH
    assert reason(pick(odds_tie=3.0)) == Reason.TIE_ODDS


@pytest.mark.parametrize("outcome", [2, 3, -1, 7])
def test_invalid_outcome_without_ties(outcome: int):
    """Only 0 and 1 are outcomes of a game without ties."""
    assert reason(pick(outcome=outcome)) == Reason.INVALID_OUTCOME


def test_outcomes_with_ties():
    """0, 1 and 2 are outcomes of a game with ties; 3 (unfinished) is not."""
    for outcome in (0, 1, 2):
        assert reason(pick(TIE, outcome=outcome), TIE) is None
    assert reason(pick(TIE, outcome=3), TIE) == Reason.INVALID_OUTCOME


@pytest.mark.parametrize(
    "confidence,ok",
    [(0.0, True), (1.0, True), (0.5, True), (-0.01, False), (1.01, False)],
)
def test_confidence_range(confidence: float, ok: bool):
    """Confidence 0..1 inclusive is fine; outside is invalid_confidence."""
    expected = None if ok else Reason.INVALID_CONFIDENCE
    assert reason(pick(confidence=confidence)) == expected


def test_rules_apply_in_order():
    """The first broken rule answers: the wager before the game, and so on."""
    assert reason(pick(wager=-1, team_a="x"), None) == Reason.INVALID_WAGER
    assert reason(pick(wager=2000), None) == Reason.DAILY_LIMIT
    assert reason(pick(team_a="x", odds_a=9.0)) == Reason.TEAM_MISMATCH


def test_every_reason_has_a_sentence():
    """Each reason code has a human sentence."""
    assert set(REASON_TEXT) == set(Reason)
    assert all(text.endswith(".") for text in REASON_TEXT.values())


def test_budget_helpers():
    """budget_left never goes below 0; exceeds_budget allows exactly the budget."""
    assert budget_left(0) == DAILY_BUDGET
    assert budget_left(999.99) == pytest.approx(0.01)
    assert budget_left(1200) == 0
    assert not exceeds_budget(1000, 0) and exceeds_budget(1000.01, 0)


def test_odds_taken_and_content():
    """odds_taken reads the game's odds for the outcome; same_content compares all."""
    assert odds_taken(pick(outcome=1), NO_TIE) == NO_TIE.odds_b
    assert odds_taken(pick(TIE, outcome=2), TIE) == TIE.odds_tie
    assert same_content(pick(), pick())
    assert not same_content(pick(), pick(wager=11.0))
    assert not same_content(pick(created_at=1.0), pick(created_at=2.0))


def test_utc_day():
    """utc_day is the UTC calendar day, whatever the local zone."""
    assert utc_day(0) == "1970-01-01"
    assert utc_day(86399.9) == "1970-01-01"
    assert utc_day(86400) == "1970-01-02"


@pytest.mark.parametrize(
    "text,value",
    [
        ("12", 12.0),
        ("12.5", 12.5),
        (" 0.01 ", 0.01),
        ("1000", 1000.0),
        ("999.99", 999.99),
    ],
)
def test_parse_wager_accepts(text: str, value: float):
    """Plain positive numbers with at most two decimals within budget are wagers."""
    assert parse_wager(text, 1000) == value


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("", "Enter a wager"),
        ("   ", "Enter a wager"),
        ("abc", "not a number"),
        ("nan", "finite"),
        ("inf", "finite"),
        ("-5", "more than 0"),
        ("0", "more than 0"),
        ("1e2", "two decimals"),
        ("1.234", "two decimals"),
        ("+5", "two decimals"),
        ("1_000", "two decimals"),
        ("1000.01", "left in today's budget"),
    ],
)
def test_parse_wager_refuses(text: str, fragment: str):
    """Every kind of bad wager text is refused with a sentence saying why."""
    with pytest.raises(WagerError) as refused:
        parse_wager(text, 1000)
    assert fragment in str(refused.value)


def test_parse_wager_uses_what_is_left():
    """The budget passed in is today's remainder: above it is refused."""
    assert parse_wager("25", 25.0) == 25.0
    with pytest.raises(WagerError):
        parse_wager("25.01", 25.0)
