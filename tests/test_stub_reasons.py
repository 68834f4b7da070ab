"""Every rejection reason, as the stub answers it, and what it leaves untouched."""

from __future__ import annotations

import time

import pytest

from bettensor_core.protocol import Confirmation, Game
from validator_stub import StubServer

TIE_GAME = Game(
    game_id="test-tie",
    sport="soccer",
    league="EPL",
    team_a="Arsenal",
    team_b="Chelsea",
    kickoff=time.time() + 3600,
    odds_a=2.5,
    odds_b=2.8,
    odds_tie=3.2,
    can_tie=True,
)
NO_TIE_GAME = Game(
    game_id="test-notie",
    sport="football",
    league="NFL",
    team_a="Chicago Bears",
    team_b="Detroit Lions",
    kickoff=time.time() + 3600,
    odds_a=1.8,
    odds_b=2.1,
)


@pytest.fixture
async def games(stub: StubServer) -> dict[str, Game]:
    await stub.add_game(TIE_GAME)
    await stub.add_game(NO_TIE_GAME)
    started = Game(**{**_fields(NO_TIE_GAME), "game_id": "test-started"})
    await stub.add_game(started)
    await stub.kickoff("test-started")
    return {"tie": TIE_GAME, "notie": NO_TIE_GAME}


def _fields(game: Game) -> dict[str, object]:
    return {f: getattr(game, f) for f in game.__struct_fields__}


CASES = {
    "missing_data": ("notie", {"wager": None}),
    "invalid_wager": ("notie", {"wager": -5.0}),
    "zero_wager": ("notie", {"wager": 0.0}),
    "daily_limit": ("notie", {"wager": 1000.01}),
    "unknown_game": ("notie", {"game_id": "no-such-game"}),
    "game_started": ("notie", {"game_id": "test-started"}),
    "team_mismatch": ("notie", {"team_b": "Green Bay Packers"}),
    "odds_mismatch": ("notie", {"odds_a": 1.82}),
    "tie_odds_given": ("notie", {"odds_tie": 3.0}),
    "tie_odds_missing": ("tie", {"odds_tie": None}),
    "invalid_outcome": ("notie", {"outcome": 2}),
    "invalid_outcome_3": ("tie", {"outcome": 3}),
    "invalid_confidence": ("notie", {"confidence": 1.5}),
}
REASON = {
    "zero_wager": "invalid_wager",
    "tie_odds_given": "tie_odds",
    "tie_odds_missing": "tie_odds",
    "invalid_outcome_3": "invalid_outcome",
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_reason_code(
    case, stub: StubServer, games, post_signed, miner_signer, prediction_for
):
    """Each broken rule is refused with its stable reason and takes no budget."""
    which, changes = CASES[case]
    p = prediction_for(games[which], **changes)
    status, reply = await post_signed("/v1/predictions", p, miner_signer)
    assert status == 200 and isinstance(reply.body, Confirmation)
    assert not reply.body.accepted
    assert reply.body.reason == REASON.get(case, case)
    assert reply.body.message
    assert reply.body.budget_left == 1000
    assert stub.day_total(miner_signer.ss58) == 0


async def test_duplicate_id_reason(
    stub: StubServer, games, post_signed, miner_signer, prediction_for
):
    """Reusing an id for other content is refused with duplicate_id."""
    p = prediction_for(games["notie"], wager=5)
    await post_signed("/v1/predictions", p, miner_signer)
    other = prediction_for(games["notie"], wager=6, prediction_id=p.prediction_id)
    _, reply = await post_signed("/v1/predictions", other, miner_signer)
    assert reply.body.reason == "duplicate_id" and reply.body.budget_left == 995


async def test_budget_exactly_1000_then_refused(
    stub: StubServer, games, post_signed, miner_signer, prediction_for
):
    """Wagers adding up to exactly 1000 are accepted; one cent more is refused."""
    for wager in (600.0, 399.99, 0.01):
        _, reply = await post_signed(
            "/v1/predictions", prediction_for(games["tie"], wager=wager), miner_signer
        )
        assert reply.body.accepted, reply.body
    assert reply.body.budget_left == 0
    _, reply = await post_signed(
        "/v1/predictions", prediction_for(games["tie"], wager=0.01), miner_signer
    )
    assert reply.body.reason == "daily_limit"
    assert stub.day_total(miner_signer.ss58) == pytest.approx(1000)


async def test_budgets_are_per_miner(
    stub: StubServer, games, post_signed, miner_signer, other_signer, prediction_for
):
    """One miner's wagers do not use another miner's daily budget."""
    p = prediction_for(games["tie"], wager=1000)
    assert (await post_signed("/v1/predictions", p, miner_signer))[1].body.accepted
    q = prediction_for(games["tie"], wager=1000)
    assert (await post_signed("/v1/predictions", q, other_signer))[1].body.accepted


async def test_odds_tolerance_follows_current_odds(
    stub: StubServer, games, post_signed, miner_signer, prediction_for
):
    """Odds 0.01 off are accepted; after an odds change the old odds are refused."""
    near = prediction_for(games["notie"], odds_a=1.81, odds_b=2.09)
    assert (await post_signed("/v1/predictions", near, miner_signer))[1].body.accepted
    await stub.push_odds("test-notie", 1.6, 2.4)
    stale = prediction_for(games["notie"])
    _, reply = await post_signed("/v1/predictions", stale, miner_signer)
    assert reply.body.reason == "odds_mismatch"
