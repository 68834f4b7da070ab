"""Shared fixtures: a real validator stub on port 0, real hotkeys, real clients.

Other test modules reuse these names; keep them stable:

- ``stub_config``: a `StubConfig` on port 0 with a SQLite file in ``tmp_path``,
  the simulator frozen (speed 0) and 12 games.
- ``stub``: a started `StubServer` for ``stub_config``.
- ``miner_signer`` / ``other_signer``: fresh sr25519 hotkeys (`Signer`).
- ``http``: an ``httpx.AsyncClient`` whose base URL is the stub's.
- ``ws_miner``: a factory opening a `WsMiner` (hello sent, welcome and the
  first resume answer read) for a signer.
- ``prediction_for``: builds a valid `Prediction` for a game.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from bittensor_wallet import Keypair
from websockets.asyncio.client import ClientConnection, connect

# The checkout first on the path: an editable install made before a package had
# its __init__.py maps it as a namespace package, which hides its names.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bettensor_core.codec import Signed, Signer, decode, encode
from bettensor_core.protocol import Body, Game, Hello, Prediction, Welcome
from validator_stub import Limits, StubConfig, StubServer


def fresh_signer() -> Signer:
    """A new random sr25519 hotkey."""
    return Signer(Keypair.create_from_mnemonic(Keypair.generate_mnemonic()))


@pytest.fixture
def miner_signer() -> Signer:
    return fresh_signer()


@pytest.fixture
def other_signer() -> Signer:
    return fresh_signer()


@pytest.fixture
def stub_config(tmp_path: Path) -> StubConfig:
    return StubConfig(
        port=0,
        db=tmp_path / "stub.sqlite",
        seed=11,
        games=12,
        speed=0,
        limits=Limits(),
    )


@pytest.fixture
async def stub(stub_config: StubConfig) -> AsyncIterator[StubServer]:
    async with StubServer(stub_config) as server:
        yield server


@pytest.fixture
async def http(stub: StubServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stub.url, timeout=10) as client:
        yield client


def prediction_for(
    game: Game, *, wager: float = 10.0, outcome: int = 0, **changes: Any
) -> Prediction:
    """A prediction the stub accepts for ``game``, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "prediction_id": uuid.uuid4().hex,
        "game_id": game.game_id,
        "outcome": outcome,
        "wager": wager,
        "team_a": game.team_a,
        "team_b": game.team_b,
        "odds_a": game.odds_a,
        "odds_b": game.odds_b,
        "odds_tie": game.odds_tie,
        "created_at": 1_700_000_000.0,
    }
    fields.update(changes)
    return Prediction(**fields)


@pytest.fixture(name="prediction_for")
def prediction_for_fixture() -> Callable[..., Prediction]:
    return prediction_for


class WsMiner:
    """A miner's WebSocket to the stub, speaking signed envelopes."""

    def __init__(self, ws: ClientConnection, signer: Signer):
        self.ws = ws
        self.signer = signer
        self.welcome: Welcome | None = None
        self.first: Signed | None = None

    async def send(self, body: Body, **kwargs: Any) -> None:
        await self.ws.send(encode(body, self.signer, **kwargs).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send(data)

    async def recv(self, timeout: float = 5.0) -> Signed:
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        return decode(data, max_bytes=1 << 24)

    async def recv_type(self, type_: str, timeout: float = 5.0) -> Signed:
        """The next message of ``type_``, skipping pushed events in between."""
        while True:
            msg = await self.recv(timeout)
            if msg.type == type_:
                return msg
            assert msg.type == "events", f"expected {type_}, got {msg.type}"

    async def ask(self, body: Body, type_: str) -> Signed:
        await self.send(body)
        return await self.recv_type(type_)

    async def close(self) -> None:
        await self.ws.close()


WsMinerFactory = Callable[..., Awaitable[WsMiner]]


@pytest.fixture
async def ws_miner(stub: StubServer) -> AsyncIterator[WsMinerFactory]:
    opened: list[WsMiner] = []

    async def open_miner(
        signer: Signer,
        *,
        resume_after: int | None = None,
        heartbeat_interval: float = 20.0,
        url: str | None = None,
    ) -> WsMiner:
        ws = await connect(url or stub.ws_url, max_size=1 << 24)
        miner = WsMiner(ws, signer)
        opened.append(miner)
        await miner.send(
            Hello(resume_after=resume_after, heartbeat_interval=heartbeat_interval)
        )
        welcome = await miner.recv()
        assert welcome.type == "welcome", welcome
        assert isinstance(welcome.body, Welcome)
        miner.welcome = welcome.body
        miner.first = await miner.recv()
        return miner

    yield open_miner
    for miner in opened:
        await miner.ws.close()


PostSigned = Callable[..., Awaitable[tuple[int, Signed]]]


@pytest.fixture
def post_signed(http: httpx.AsyncClient) -> PostSigned:
    """POST ``body`` signed by ``signer`` to ``path``; return status and answer."""

    async def post(
        path: str, body: Body, signer: Signer, **kwargs: Any
    ) -> tuple[int, Signed]:
        response = await http.post(path, content=encode(body, signer, **kwargs))
        return response.status_code, decode(response.content, max_bytes=1 << 24)

    return post
