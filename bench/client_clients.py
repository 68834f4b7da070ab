"""Clients built from our own library: the transports and `MinerClient`.

These measure what a miner actually runs: `WebSocketTransport` and
`HttpTransport` (over httpx's default transport or over aiohttp) for one
round trip each, and `MinerClient` from ``submit`` to ``confirmations``
(outbox write, send, confirmation, store update). Each runs in a worker.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.latency_clients import _timed
from bench.proto import WAGER, miner_signer, new_prediction, open_games
from bench.worker import Control
from bettensor_core.protocol import Hello, Snapshot


async def transport_latency(
    control: Control, url: str, n: int, warmup: int, kind: str
) -> dict[str, Any]:
    """One round trip per prediction through our transport ``kind``.

    Kinds: ``websocket``; ``http-aiohttp`` (httpx API over aiohttp, the
    default); ``http-httpx`` (httpx's own transport).
    """
    from bettensor_core.transport.http import HttpTransport, make_http_client
    from bettensor_core.transport.websocket import WebSocketTransport

    signer = miner_signer(f"transport-{kind}", 0)
    transport: Any
    if kind == "websocket":
        transport = WebSocketTransport(url.replace("http", "ws", 1) + "/ws", signer)
    else:
        client = make_http_client(url, aiohttp=kind == "http-aiohttp")
        transport = HttpTransport(client, signer)
    await transport.open(Hello(), timeout=10)
    # A WebSocket pushes the snapshot after its welcome; HTTP is asked for it.
    snapshot = (await transport.next_push(None, 0.0)).body
    assert isinstance(snapshot, Snapshot)
    game = open_games(snapshot)[0]
    try:

        async def once() -> None:
            answer = await transport.request(new_prediction(game), timeout=10)
            if answer.type != "confirmation":
                raise RuntimeError(f"answered {answer.type}")

        return await _timed(n, warmup, once)
    finally:
        await transport.close()
        if kind != "websocket":
            await client.aclose()


async def _started_client(
    url: str,
    store: str,
    scenario: str,
    expect: str,
    timeout: float = 60.0,
    durable_sync: bool = True,
) -> Any:
    """A started `MinerClient` whose link is in state ``expect`` with games."""
    from bettensor_core.client import MinerClient
    from bettensor_core.config import ValidatorConfig

    client = MinerClient(
        miner_signer(scenario, 0),
        [ValidatorConfig(url)],
        store_path=Path(store),
        durable_sync=durable_sync,
    )
    await client.start()
    deadline = time.monotonic() + timeout
    while True:
        status = client.links()[0]
        if status.state.value == expect and client.games:
            return client
        if time.monotonic() > deadline:
            await client.close()
            raise TimeoutError(f"link stayed {status.state.value}, wanted {expect}")
        await asyncio.sleep(0.05)


async def client_latency(
    control: Control,
    url: str,
    n: int,
    warmup: int,
    store: str,
    expect: str,
    ready_first: bool = False,
    durable_sync: bool = True,
) -> dict[str, Any]:
    """`MinerClient.submit` to `MinerClient.confirmations`, one after another.

    ``ready_first`` reports ``ready`` and waits for ``go`` before the first
    prediction (so a profiler can attach first). ``durable_sync`` is
    `MinerClient`'s: off, a new prediction is not synced to disk in full.
    """
    client = await _started_client(
        url, store, f"client-{expect}", expect, durable_sync=durable_sync
    )
    try:
        snapshot = Snapshot(seq=0, games=list(client.games.values()))
        game = open_games(snapshot)[0]
        if ready_first:
            control.notify("ready")
            await control.command()

        async def once() -> None:
            record = await client.submit(game.game_id, 0, WAGER)
            found = await client.confirmations(
                record.prediction.prediction_id, timeout=30
            )
            if not all(c.accepted for c in found.values()):
                raise RuntimeError(f"rejected: {found}")

        result = await _timed(n, warmup, once)
        result["link"] = client.links()[0].state.value
        return result
    finally:
        await client.close()


async def client_idle(
    control: Control, url: str, store: str, expect: str, power: str, max_seconds: float
) -> dict[str, Any]:
    """A `MinerClient` that sits connected and idle until told to stop."""
    from bettensor_core.power import PowerState

    client = await _started_client(url, store, f"idle-{expect}-{power}", expect)
    client.set_power_state(PowerState(power))
    control.notify("ready", link=expect)
    await control.sleep_or_stop(max_seconds)
    status = client.links()[0]
    await client.close()
    return {"link": status.state.value, "reconnects": status.reconnects}


async def naive_poller(
    control: Control, url: str, interval: float, max_seconds: float
) -> dict[str, Any]:
    """The study's baseline: GET the games every ``interval`` seconds.

    One keep-alive httpx client (over aiohttp, as ours), decoding and checking
    each snapshot, so it does the least a poller must.
    """
    from bettensor_core.codec import decode
    from bettensor_core.transport.http import make_http_client

    client = make_http_client(url)
    polls = 0
    await client.get("/v1/games")
    control.notify("ready")
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        if await control.sleep_or_stop(interval):
            break
        response = await client.get("/v1/games")
        decode(response.content, max_bytes=16 * 1024 * 1024)
        polls += 1
    await client.aclose()
    return {"polls": polls}
