"""The local store and the outbox rules, on real SQLite files."""

from __future__ import annotations

import math
import time
from pathlib import Path

import msgspec
import pytest

from bettensor_core.errors import WagerError
from bettensor_core.models import DeliveryState
from bettensor_core.outbox import MAX_BATCH, new_prediction, outbox_message
from bettensor_core.protocol import (
    Confirmation,
    Event,
    Game,
    Prediction,
    PredictionBatch,
    Settlement,
    Snapshot,
)
from bettensor_core.rules import utc_day
from bettensor_core.store import Store

GAME = Game(
    game_id="g1",
    sport="soccer",
    league="EPL",
    team_a="Arsenal",
    team_b="Chelsea",
    kickoff=time.time() + 3600,
    odds_a=2.1,
    odds_b=3.4,
    odds_tie=3.2,
    can_tie=True,
)


def _prediction(wager: float = 10.0) -> Prediction:
    return new_prediction(
        GAME, 0, wager, budget=1000.0, confidence=None, now=time.time()
    )


def _confirmation(pid: str, accepted: bool = True) -> Confirmation:
    return Confirmation(
        prediction_id=pid,
        accepted=accepted,
        reason=None if accepted else "game_started",
        message="ok",
        budget_left=990.0,
        confirmed_at=time.time(),
    )


def test_new_prediction_takes_the_games_current_odds() -> None:
    """A prediction carries the game's teams and odds, tie odds only for tie games."""
    p = _prediction()
    assert (p.team_a, p.team_b, p.odds_a, p.odds_b, p.odds_tie) == (
        "Arsenal",
        "Chelsea",
        2.1,
        3.4,
        3.2,
    )
    assert p.created_at is not None and len(p.prediction_id) == 32


@pytest.mark.parametrize("wager", [0, -5, math.nan, math.inf, 1000.01, 12.345])
def test_new_prediction_refuses_bad_wagers(wager: float) -> None:
    """Wagers that parse_wager would refuse are refused here too."""
    with pytest.raises(WagerError):
        new_prediction(GAME, 0, wager, budget=1000.0, confidence=None, now=0.0)


def test_new_prediction_refuses_a_tie_without_ties_and_bad_confidence() -> None:
    """Impossible outcomes and confidences outside 0..1 are refused."""
    no_tie = _game(can_tie=False, odds_tie=None)
    with pytest.raises(WagerError):
        new_prediction(no_tie, 2, 10.0, budget=1000.0, confidence=None, now=0.0)
    with pytest.raises(WagerError):
        new_prediction(GAME, 0, 10.0, budget=1000.0, confidence=1.5, now=0.0)


def _game(**changes: object) -> Game:
    return msgspec.structs.replace(GAME, **changes)


def test_outbox_batches_many_and_sends_one_alone() -> None:
    """One pending prediction goes alone; many go in batches of MAX_BATCH at most."""
    one = [_prediction()]
    assert outbox_message(one) is one[0]
    many = [_prediction() for _ in range(MAX_BATCH + 5)]
    message = outbox_message(many)
    assert isinstance(message, PredictionBatch)
    assert len(message.predictions) == MAX_BATCH


def test_a_prediction_is_durable_and_pending_until_confirmed(tmp_path: Path) -> None:
    """A stored prediction survives reopening and stays pending until confirmed."""
    path = tmp_path / "miner.sqlite3"
    store = Store(path)
    p = _prediction()
    store.add_prediction(p, ["v1", "v2"])
    assert store.mark_sent("v1", [p.prediction_id], "websocket", 1.0) == {
        p.prediction_id
    }
    store.close()

    store = Store(path)
    assert [q.prediction_id for q in store.pending("v1", 10)] == [p.prediction_id]
    assert store.pending("v1", 10)[0] == p
    assert store.confirm("v1", [_confirmation(p.prediction_id)]) == {p.prediction_id}
    # A second confirmation (a resend's answer) changes nothing.
    assert store.confirm("v1", [_confirmation(p.prediction_id, False)]) == set()
    assert store.pending("v1", 10) == []
    assert len(store.pending("v2", 10)) == 1
    record = store.prediction(p.prediction_id)
    assert record is not None
    assert record.deliveries["v1"].state == DeliveryState.ACCEPTED
    assert record.deliveries["v2"].state == DeliveryState.QUEUED
    store.close()


def test_a_sent_mark_is_written_with_the_next_transaction(tmp_path: Path) -> None:
    """Sending costs no commit: a crash before the answer leaves it queued (and
    resent); the confirmation's transaction writes how and when it was sent."""
    path = tmp_path / "miner.sqlite3"
    store = Store(path)
    p = _prediction()
    store.add_prediction(p, ["v1"])
    store.mark_sent("v1", [p.prediction_id], "websocket", 5.0)
    assert store.prediction(p.prediction_id).deliveries["v1"].via == "websocket"

    # What a process started after a crash right now would find.
    after_crash = Store(path)
    assert after_crash.prediction(p.prediction_id).deliveries["v1"].state == (
        DeliveryState.QUEUED
    )
    assert after_crash.pending("v1", 10) == [p]
    after_crash.close()

    store.confirm("v1", [_confirmation(p.prediction_id)])
    store.close()
    reopened = Store(path)
    delivery = reopened.prediction(p.prediction_id).deliveries["v1"]
    assert (delivery.state, delivery.via, delivery.sent_at) == (
        DeliveryState.ACCEPTED,
        "websocket",
        5.0,
    )
    assert reopened.pending("v1", 10) == []
    reopened.close()


def test_pending_is_oldest_first_and_limited(tmp_path: Path) -> None:
    """The outbox hands out the oldest open predictions first, also after reopening."""
    path = tmp_path / "miner.sqlite3"
    store = Store(path)
    made = [
        msgspec.structs.replace(_prediction(), created_at=1000.0 + k) for k in range(5)
    ]
    for p in reversed(made):
        store.add_prediction(p, ["v1"])
    store.confirm("v1", [_confirmation(made[1].prediction_id)])
    store.close()

    store = Store(path)
    expected = [made[k].prediction_id for k in (0, 2, 3)]
    assert [p.prediction_id for p in store.pending("v1", 3)] == expected
    store.close()


def test_events_apply_in_order_once_and_move_the_cursor(tmp_path: Path) -> None:
    """Events at or below the cursor are skipped; the cursor is the last seq applied."""
    store = Store(tmp_path / "s.sqlite3")
    moved = _game(odds_a=2.5)
    events = [
        Event(seq=2, kind="odds_changed", at=1.0, game=moved),
        Event(seq=1, kind="game_added", at=0.0, game=GAME),
    ]
    applied = store.apply_events("v1", events, head=2)
    assert applied.last_seq == 2 and applied.game_ids == {"g1"}
    assert store.games()["g1"].odds_a == 2.5

    # Replaying the same events (a resume from an older seq) changes nothing.
    applied = store.apply_events("v1", events, head=2)
    assert applied.game_ids == set()
    assert store.cursor("v1") == (2, None)
    store.close()


def test_a_validator_behind_our_cursor_clears_it(tmp_path: Path) -> None:
    """When a validator's head is below our cursor, the cursor is dropped."""
    store = Store(tmp_path / "s.sqlite3")
    store.apply_events("v1", [Event(seq=9, kind="game_added", at=0, game=GAME)], 9)
    applied = store.apply_events("v1", [], head=3)
    assert applied.last_seq is None
    assert store.cursor("v1")[0] is None
    store.close()


def test_a_snapshot_replaces_games_and_records_answers(tmp_path: Path) -> None:
    """A snapshot replaces the validator's games and applies confirmations."""
    store = Store(tmp_path / "s.sqlite3")
    store.apply_events(
        "v1",
        [Event(seq=1, kind="game_added", at=0, game=_game(game_id="old"))],
        head=1,
    )
    p = _prediction()
    store.add_prediction(p, ["v1"])
    settlement = Settlement(
        prediction_id=p.prediction_id,
        game_id="g1",
        outcome=0,
        won=True,
        payout=21.0,
        settled_at=1.0,
    )
    snapshot = Snapshot(
        seq=40,
        games=[GAME],
        confirmations=[_confirmation(p.prediction_id)],
        settlements=[settlement],
    )
    applied = store.apply_snapshot("v1", snapshot)
    assert applied.game_ids == {"old", "g1"}
    assert applied.prediction_ids == {p.prediction_id}
    assert set(store.games()) == {"g1"}
    assert store.cursor("v1")[0] == 40
    record = store.prediction(p.prediction_id)
    assert record is not None and record.settlement == settlement
    store.close()


def test_day_totals_count_pending_and_accepted_not_rejected(tmp_path: Path) -> None:
    """The budget counts today's wagers per validator, minus rejected ones."""
    store = Store(tmp_path / "s.sqlite3")
    a, b = _prediction(100.0), _prediction(50.0)
    store.add_prediction(a, ["v1", "v2"])
    store.add_prediction(b, ["v1", "v2"])
    store.confirm("v1", [_confirmation(a.prediction_id, accepted=False)])
    today = utc_day(time.time())
    assert store.day_totals(today, ["v1", "v2"]) == {"v1": 50.0, "v2": 150.0}

    # A repeated answer changes nothing; the first one stands.
    store.confirm("v1", [_confirmation(a.prediction_id, accepted=False)])
    store.confirm("v1", [_confirmation(a.prediction_id, accepted=True)])
    assert store.day_totals(today, ["v1", "v2"]) == {"v1": 50.0, "v2": 150.0}
    # Other days and unknown validators have spent nothing.
    assert store.day_totals("1999-01-01", ["v1"]) == {"v1": 0.0}
    assert store.day_totals(today, ["v3"]) == {"v3": 0.0}
    store.close()

    # The totals are rebuilt from the file on the next start.
    store = Store(tmp_path / "s.sqlite3")
    assert store.day_totals(today, ["v1", "v2"]) == {"v1": 50.0, "v2": 150.0}
    store.close()


def test_day_totals_add_up_cents_exactly(tmp_path: Path) -> None:
    """Three hundred wagers of 0.10 make exactly 30.00, with no float drift."""
    store = Store(tmp_path / "s.sqlite3")
    for _ in range(300):
        store.add_prediction(_prediction(0.1), ["v1"])
    assert store.day_totals(utc_day(time.time()), ["v1"]) == {"v1": 30.0}
    store.close()
