"""How a validator stub is set up: address, storage, simulator and limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from bettensor_core.codec import DEFAULT_MAX_MESSAGE_BYTES, Signer

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8091
DEFAULT_HOTKEY_URI = "//bettensor-validator-stub"
MEMORY = ":memory:"


def default_db_path() -> Path:
    """Where the stub keeps its SQLite file unless told otherwise."""
    return Path(platformdirs.user_data_dir("bettensor")) / "validator-stub.sqlite"


@dataclass(frozen=True, slots=True)
class Limits:
    """What the stub tolerates before it answers with an error.

    ``rate`` and ``burst`` shape a token bucket per miner hotkey (messages per
    second); ``idle_factor`` times the miner's declared heartbeat interval,
    kept between ``min_idle_timeout`` and ``max_idle_timeout``, is how long a
    silent WebSocket stays open.
    """

    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_connections: int = 512
    rate: float = 200.0
    burst: float = 400.0
    idle_factor: float = 2.5
    min_idle_timeout: float = 5.0
    max_idle_timeout: float = 600.0
    hello_timeout: float = 10.0
    max_long_poll: float = 25.0
    event_log_age: float = 3600.0
    event_log_size: int = 20_000
    send_queue_frames: int = 2048
    events_per_frame: int = 200
    snapshot_items: int = 500


@dataclass(slots=True)
class StubConfig:
    """Everything `StubServer` needs; the defaults match the command line's.

    ``db`` is a file path or ``":memory:"``; ``None`` means the default file
    under the user data directory. ``speed`` 0 freezes the simulator: nothing
    drifts, kicks off or settles unless a control asks. ``signer`` defaults to
    the development hotkey ``//bettensor-validator-stub``.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db: str | Path | None = None
    seed: int = 7
    games: int = 60
    speed: float = 1.0
    websocket_enabled: bool = True
    limits: Limits = field(default_factory=Limits)
    signer: Signer | None = None
    durable_sync: bool = False

    def db_target(self) -> str:
        """The SQLite path to open, creating its folder when needed."""
        if self.db == MEMORY:
            return MEMORY
        path = default_db_path() if self.db is None else Path(self.db)
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    def make_signer(self) -> Signer:
        return self.signer or Signer.from_uri(DEFAULT_HOTKEY_URI)
