"""A small, faithful validator for local testing: WebSocket and HTTP on one port.

`StubServer` runs inside any asyncio loop; ``python -m validator_stub`` runs it
from the command line. `docs/validator_stub.md` explains flags, controls and
limits; `docs/protocol.md` the messages.
"""

from validator_stub.config import (
    DEFAULT_HOTKEY_URI,
    DEFAULT_PORT,
    Limits,
    StubConfig,
    default_db_path,
)
from validator_stub.server import StubServer

__all__ = [
    "DEFAULT_HOTKEY_URI",
    "DEFAULT_PORT",
    "Limits",
    "StubConfig",
    "StubServer",
    "default_db_path",
]
