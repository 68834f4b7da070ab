"""The power policy: how busy the miner is allowed to be, as plain state."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PowerState(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    BACKGROUND = "background"


@dataclass(frozen=True, slots=True)
class PowerProfile:
    """What one power state allows (all in seconds)."""

    heartbeat_interval: float
    long_poll_hold: float
    ui_flush_interval: float
