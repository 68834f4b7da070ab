"""Raw protocol clients for the stub: our wire contract with nothing in between.

These speak `bettensor_core.codec` envelopes straight over a ``websockets``
connection or an aiohttp/httpx request, so a scenario can measure the
validator side without the miner client's outbox and store. The scenarios that
measure the miner client itself use `bettensor_core.client.MinerClient`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bettensor_core.codec import Signed, Signer, decode, encode
from bettensor_core.protocol import (
    Confirmation,
    ConfirmationBatch,
    Events,
    Game,
    Hello,
    Prediction,
    PredictionBatch,
    Snapshot,
)

MAX_BYTES = 16 * 1024 * 1024
# Each bench miner stakes this per prediction: 1000 a day lasts 100,000 of them.
WAGER = 0.01


def miner_signer(scenario: str, index: int) -> Signer:
    """A development hotkey per bench miner, distinct per scenario and index."""
    return Signer.from_uri(f"//bench/{scenario}/{index}")


def open_games(snapshot: Snapshot, now: float | None = None) -> list[Game]:
    """Games a prediction can still be placed on for the next hour."""
    now = time.time() if now is None else now
    games = [
        g for g in snapshot.games if g.status == "scheduled" and g.kickoff > now + 3600
    ]
    if not games:
        raise RuntimeError("the stub has no open games to predict on")
    return games


def new_prediction(game: Game, outcome: int = 0) -> Prediction:
    """A prediction the stub accepts: current odds, a tiny wager, a fresh id."""
    return Prediction(
        prediction_id=uuid.uuid4().hex,
        game_id=game.game_id,
        outcome=outcome,
        wager=WAGER,
        team_a=game.team_a,
        team_b=game.team_b,
        odds_a=game.odds_a,
        odds_b=game.odds_b,
        odds_tie=game.odds_tie if game.can_tie else None,
        confidence=0.5,
        created_at=time.time(),
    )


def prediction_message(game: Game, signer: Signer, batch: int = 1) -> tuple[bytes, int]:
    """Encoded prediction (or batch of ``batch``) and how many predictions it holds."""
    if batch <= 1:
        return encode(new_prediction(game), signer), 1
    body = PredictionBatch(predictions=[new_prediction(game) for _ in range(batch)])
    return encode(body, signer), batch


def count_confirmed(msg: Signed) -> int:
    """How many predictions a decoded answer confirms (accepted or rejected)."""
    if isinstance(msg.body, Confirmation):
        return 1
    if isinstance(msg.body, ConfirmationBatch):
        return len(msg.body.confirmations)
    return 0


class WsMiner:
    """One miner on the stub's ``/ws``: hello, welcome, then frames."""

    def __init__(self, url: str, signer: Signer, **connect_options: Any):
        self.url = url.replace("http://", "ws://").rstrip("/") + "/ws"
        self.signer = signer
        # As our WebSocketTransport connects: no compression, no library pings.
        self.options = {"compression": None, "ping_interval": None, **connect_options}
        self.ws: Any = None
        self.snapshot: Snapshot | None = None
        self.head = 0

    async def connect(self, heartbeat_interval: float = 20.0) -> WsMiner:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            self.url, max_size=MAX_BYTES, open_timeout=60, **self.options
        )
        await self.ws.send(
            encode(Hello(heartbeat_interval=heartbeat_interval), self.signer).decode()
        )
        welcome = decode(await self.ws.recv(), max_bytes=MAX_BYTES)
        self.head = getattr(welcome.body, "head", 0)
        # The welcome is followed at once by a snapshot (we asked for none).
        first = decode(await self.ws.recv(), max_bytes=MAX_BYTES)
        if isinstance(first.body, Snapshot):
            self.snapshot = first.body
        return self

    async def submit(self, data: bytes) -> Signed:
        """Send an encoded prediction and return the decoded confirmation(s)."""
        await self.ws.send(data.decode())
        while True:
            msg = decode(await self.ws.recv(), max_bytes=MAX_BYTES)
            if msg.type in ("confirmation", "confirmation_batch", "error"):
                return msg

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def events_of(msg: Signed) -> list[Any]:
    return msg.body.events if isinstance(msg.body, Events) else []
