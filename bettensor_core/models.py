"""What the miner's core tells its callers: link status, prediction records, events.

These are the shapes the app and scripts read from `MinerClient`; they hold
no I/O and no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bettensor_core.protocol import Confirmation, Prediction, Settlement


class LinkState(StrEnum):
    """Where one validator link stands."""

    CONNECTING = "connecting"
    WEBSOCKET = "websocket"
    HTTP = "http"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A snapshot of one validator link, for the screens and for scripts."""

    name: str
    url: str
    state: LinkState
    rtt_ms: float | None = None
    last_seq: int | None = None
    reconnects: int = 0
    fallback_reason: str | None = None
    validator_ss58: str | None = None
    power_state: str = "active"
    # Why the link last failed or was refused (for example an untrusted
    # validator hotkey); None while all is well.
    last_error: str | None = None


class DeliveryState(StrEnum):
    """A prediction's fate at one validator. Rejected is never confirmed."""

    QUEUED = "queued"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(slots=True)
class Delivery:
    """One prediction at one validator: how it went and what came back."""

    validator: str
    state: DeliveryState = DeliveryState.QUEUED
    via: str | None = None  # "websocket" or "http", once sent
    sent_at: float | None = None
    confirmation: Confirmation | None = None


@dataclass(slots=True)
class PredictionRecord:
    """A prediction as the miner's store knows it, across all validators."""

    prediction: Prediction
    created_at: float
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    settlement: Settlement | None = None


@dataclass(frozen=True, slots=True)
class GamesChanged:
    """Games were added or changed; ``snapshot`` means the whole set was replaced."""

    game_ids: frozenset[str]
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class PredictionChanged:
    """A prediction was queued, sent, confirmed, rejected or settled."""

    prediction_id: str


@dataclass(frozen=True, slots=True)
class LinkChanged:
    """A validator link changed state, round-trip time or sequence number."""

    status: LinkStatus


ClientEvent = GamesChanged | PredictionChanged | LinkChanged
