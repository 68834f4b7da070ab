"""Protocol messages shared by the miner and the validator.

Every message travels inside a signed `Envelope` (see `bettensor_core.codec`);
the envelope's ``type`` names which body struct below it carries. The same
bytes go over a WebSocket frame and an HTTP body. `docs/protocol.md` shows an
example of each message.

Times are Unix seconds (float, UTC). Odds are decimal odds. Outcomes follow the
real validator: 0 = team A wins, 1 = team B wins, 2 = tie, 3 = unfinished.
"""

from __future__ import annotations

from typing import Literal

import msgspec

PROTOCOL_VERSION = 1

# The HTTP header in which a client names its session (at most
# MAX_SESSION_CHARS characters): a hint that spares its long-poll a wake-up for
# confirmations it was just answered with. Not signed, since it grants nothing.
SESSION_HEADER = "x-bettensor-session"
MAX_SESSION_CHARS = 64

OUTCOME_TEAM_A = 0
OUTCOME_TEAM_B = 1
OUTCOME_TIE = 2
OUTCOME_UNFINISHED = 3

GameStatus = Literal["scheduled", "live", "final"]
EventKind = Literal[
    "game_added",
    "odds_changed",
    "kickoff",
    "result",
    "settlement",
    "confirmation",
]


class Game(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A game a miner can predict on, as the validator currently sees it."""

    game_id: str
    sport: str
    league: str
    team_a: str
    team_b: str
    kickoff: float
    odds_a: float
    odds_b: float
    odds_tie: float | None = None
    can_tie: bool = False
    status: GameStatus = "scheduled"
    outcome: int = OUTCOME_UNFINISHED


class Prediction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A miner's prediction on one game.

    Every field but ``prediction_id`` may be absent on the wire so that the
    validator can answer a missing field with the ``missing_data`` reason, as
    the real validator does, rather than with a decoding error.
    """

    prediction_id: str
    game_id: str | None = None
    outcome: int | None = None
    wager: float | None = None
    team_a: str | None = None
    team_b: str | None = None
    odds_a: float | None = None
    odds_b: float | None = None
    odds_tie: float | None = None
    confidence: float | None = None
    created_at: float | None = None


class PredictionBatch(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Several predictions in one message; each gets its own confirmation."""

    predictions: list[Prediction]


class Confirmation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The validator's answer to one prediction.

    ``reason`` is a stable code from `bettensor_core.rules.Reason` when the
    prediction was rejected, ``None`` when it was accepted. ``budget_left`` is
    what the miner may still wager today (UTC) after this answer.
    """

    prediction_id: str
    accepted: bool
    reason: str | None
    message: str
    budget_left: float
    confirmed_at: float


class ConfirmationBatch(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Confirmations answering a `PredictionBatch`, in the same order."""

    confirmations: list[Confirmation]


class Settlement(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The outcome of an accepted prediction once its game has ended."""

    prediction_id: str
    game_id: str
    outcome: int
    won: bool
    payout: float
    settled_at: float


class Event(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One pushed event, numbered by the validator's increasing ``seq``.

    Game events carry ``game``; a settlement or confirmation event carries
    its own field and reaches only the miner it concerns.
    """

    seq: int
    kind: EventKind
    at: float
    game: Game | None = None
    confirmation: Confirmation | None = None
    settlement: Settlement | None = None


class Events(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Pushed events in order; ``head`` is the newest seq the validator has."""

    events: list[Event]
    head: int


class Hello(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """First message of a miner on a WebSocket.

    ``resume_after`` is the last seq the miner applied (``None`` asks for a
    snapshot). ``heartbeat_interval`` is how often the miner will send a
    heartbeat, in seconds, so the validator can fit its idle timeout.
    """

    client: str = "bettensor-miner"
    resume_after: int | None = None
    heartbeat_interval: float = 20.0


class Welcome(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The validator's answer to `Hello`: a session id and its limits."""

    session_id: str
    head: int
    server_time: float
    idle_timeout: float
    max_message_bytes: int


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A liveness probe; the peer answers with the same ``n`` and ``ack=True``.

    ``interval`` (from the miner) updates the heartbeat interval the validator
    expects, for example when the miner goes idle.
    """

    n: int
    ack: bool = False
    interval: float | None = None


class ResumeRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Ask for every event after ``after_seq`` (``None`` for a snapshot).

    Over HTTP this is the long-poll: the validator holds the request up to
    ``hold`` seconds when nothing newer exists yet.
    """

    after_seq: int | None = None
    hold: float = 0.0


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The whole state a miner needs, as of ``seq``.

    Sent when a miner asks for it or resumes from a seq older than the
    validator's event log. The miner replaces its games with ``games`` and
    continues from ``seq``. ``confirmations`` and ``settlements`` are the
    asking miner's own.
    """

    seq: int
    games: list[Game]
    confirmations: list[Confirmation] = []
    settlements: list[Settlement] = []


class Error(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A request was refused; ``code`` is stable, ``message`` is for people.

    ``ref`` is the nonce of the refused message when it could be read.
    """

    code: str
    message: str
    ref: str | None = None


Body = (
    Prediction
    | PredictionBatch
    | Confirmation
    | ConfirmationBatch
    | Events
    | Hello
    | Welcome
    | Heartbeat
    | ResumeRequest
    | Snapshot
    | Error
)

# The envelope ``type`` of each body. One name for one message everywhere.
MESSAGE_TYPES: dict[str, type[Body]] = {
    "prediction": Prediction,
    "prediction_batch": PredictionBatch,
    "confirmation": Confirmation,
    "confirmation_batch": ConfirmationBatch,
    "events": Events,
    "hello": Hello,
    "welcome": Welcome,
    "heartbeat": Heartbeat,
    "resume": ResumeRequest,
    "snapshot": Snapshot,
    "error": Error,
}
TYPE_NAMES: dict[type[Body], str] = {cls: name for name, cls in MESSAGE_TYPES.items()}
