"""The outbox rules, as plain functions: what a new prediction holds, how
pending ones are grouped for sending, and how answers are read back.

The outbox itself is the ``deliveries`` table of `bettensor_core.store`: a
prediction is committed there, queued for every validator, before anything
is sent, and stays pending at a validator until that validator confirms it.
A resend carries the same prediction (same id, same content, including
``created_at``) in a new signed envelope, so the validator answers with its
original confirmation and counts it once.
"""

from __future__ import annotations

import math
import operator
import uuid
from collections.abc import Sequence
from typing import SupportsIndex

import msgspec

from bettensor_core.codec import DEFAULT_MAX_MESSAGE_BYTES
from bettensor_core.errors import WagerError
from bettensor_core.protocol import (
    OUTCOME_TEAM_A,
    OUTCOME_TEAM_B,
    OUTCOME_TIE,
    Body,
    Confirmation,
    ConfirmationBatch,
    Game,
    Prediction,
    PredictionBatch,
)
from bettensor_core.rules import parse_wager

# Pending predictions sent together in one prediction_batch at most.
MAX_BATCH = 100
# Bytes kept free for the signed envelope around a batch's body.
ENVELOPE_ROOM = 1024

_encoder = msgspec.json.Encoder()


def new_prediction(
    game: Game,
    outcome: int,
    wager: float,
    *,
    budget: float,
    confidence: float | None,
    now: float,
) -> Prediction:
    """A prediction on ``game`` at its current odds, or `WagerError` saying why not.

    The wager goes through the same checks as a typed one
    (`bettensor_core.rules.parse_wager`): positive, finite, at most two
    decimals, and within ``budget``.
    """
    if isinstance(wager, bool) or not isinstance(wager, int | float):
        raise WagerError("The wager must be a number.")
    if not math.isfinite(wager):
        raise WagerError("The wager must be a finite number.")
    if wager <= 0:
        raise WagerError("The wager must be more than 0.")
    value = parse_wager(f"{wager:.2f}", budget)
    if abs(value - wager) > 1e-9:
        raise WagerError("Use at most two decimals (for example 12.50).")

    # True == 1 and 1.0 == 1 would pass a set test, but stored as they are
    # they no longer decode as a prediction and stop the whole outbox.
    allowed = {OUTCOME_TEAM_A, OUTCOME_TEAM_B} | (
        {OUTCOME_TIE} if game.can_tie else set()
    )
    if isinstance(outcome, bool) or not isinstance(outcome, SupportsIndex):
        raise WagerError(f"Outcome {outcome!r} is not possible for this game.")
    outcome = operator.index(outcome)
    if outcome not in allowed:
        raise WagerError(f"Outcome {outcome} is not possible for this game.")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, int | float):
            raise WagerError("The confidence score must be a number from 0 to 1.")
        if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            raise WagerError("The confidence score must be between 0 and 1.")
        confidence = float(confidence)

    return Prediction(
        prediction_id=uuid.uuid4().hex,
        game_id=game.game_id,
        outcome=outcome,
        wager=value,
        team_a=game.team_a,
        team_b=game.team_b,
        odds_a=game.odds_a,
        odds_b=game.odds_b,
        odds_tie=game.odds_tie if game.can_tie else None,
        confidence=confidence,
        created_at=now,
    )


def outbox_message(
    pending: Sequence[Prediction],
    *,
    max_batch: int = MAX_BATCH,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Prediction | PredictionBatch:
    """One prediction alone, several in a batch that fits the validator's limit.

    The batch takes the oldest pending predictions, at most ``max_batch`` of
    them, halved until its body fits in ``max_bytes`` with room for the
    envelope.
    """
    if not pending:
        raise ValueError("nothing to send")
    batch = list(pending[: max(1, max_batch)])
    room = max_bytes - ENVELOPE_ROOM
    while (
        len(batch) > 1
        and len(_encoder.encode(PredictionBatch(predictions=batch))) > room
    ):
        batch = batch[: len(batch) // 2]
    if len(batch) == 1:
        return batch[0]
    return PredictionBatch(predictions=batch)


def predictions_in(message: Prediction | PredictionBatch) -> list[Prediction]:
    """The predictions a message carries."""
    if isinstance(message, Prediction):
        return [message]
    return list(message.predictions)


def confirmations_in(body: Body) -> list[Confirmation]:
    """The confirmations an answer carries (none for other messages)."""
    if isinstance(body, Confirmation):
        return [body]
    if isinstance(body, ConfirmationBatch):
        return list(body.confirmations)
    return []
