"""Round-trip clients of the latency scenario; each runs in a worker process.

Every function sends ``n`` requests one after another (after ``warmup``
unmeasured ones), times each from just before the send to the decoded
answer, and returns `bench.common.summarize_ms` of the measured ones. The
payload is always an encoded prediction, so every variant carries the same
bytes; only what sits around them changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import summarize_ms
from bench.proto import (
    MAX_BYTES,
    WsMiner,
    miner_signer,
    new_prediction,
    open_games,
    prediction_message,
)
from bench.worker import Control
from bettensor_core.codec import Signer, decode, encode
from bettensor_core.protocol import Game, Snapshot

_SAMPLE_GAME = Game(
    game_id="bench-game",
    sport="soccer",
    league="Bench League",
    team_a="Home FC",
    team_b="Away FC",
    kickoff=4102444800.0,
    odds_a=1.91,
    odds_b=2.05,
)


async def _timed(
    n: int, warmup: int, once: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    for _ in range(warmup):
        await once()
    samples: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        await once()
        samples.append(time.perf_counter() - started)
    return summarize_ms(samples)


def _echo_payload() -> bytes:
    return encode(new_prediction(_SAMPLE_GAME), Signer.from_uri("//bench/echo"))


# -- floors --


async def ws_echo(
    control: Control, url: str, n: int, warmup: int, signed: bool = False
) -> dict[str, Any]:
    """A websockets client against an echo endpoint; optionally signing both ways."""
    from websockets.asyncio.client import connect

    signer = Signer.from_uri("//bench/echo")
    payload = _echo_payload()
    async with connect(url, max_size=MAX_BYTES) as ws:

        async def once() -> None:
            if signed:
                await ws.send(encode(new_prediction(_SAMPLE_GAME), signer))
                decode(await ws.recv())
            else:
                await ws.send(payload)
                await ws.recv()

        return await _timed(n, warmup, once)


async def http_echo(
    control: Control,
    url: str,
    n: int,
    warmup: int,
    client: str = "aiohttp",
    signed: bool = False,
) -> dict[str, Any]:
    """One keep-alive HTTP client POSTing to an echo endpoint."""
    signer = Signer.from_uri("//bench/echo")
    payload = _echo_payload()

    def body() -> bytes:
        return encode(new_prediction(_SAMPLE_GAME), signer) if signed else payload

    def check(data: bytes) -> None:
        if signed:
            decode(data)

    async with _http_client(client) as post:

        async def once() -> None:
            check(await post(url, body()))

        return await _timed(n, warmup, once)


class _http_client:
    """``post(url, data) -> bytes`` over one keep-alive client of the named kind.

    Kinds: ``aiohttp``; ``httpx`` (its default transport); ``httpx-aiohttp``
    (httpx's API over aiohttp's transport, what our client uses).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._client: Any = None

    async def __aenter__(self) -> Callable[[str, bytes], Awaitable[bytes]]:
        headers = {"content-type": "application/json"}
        if self.kind == "aiohttp":
            import aiohttp

            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0)
            )

            async def post(url: str, data: bytes) -> bytes:
                async with self._client.post(url, data=data, headers=headers) as r:
                    return await r.read()

            return post

        import httpx

        if self.kind == "httpx":
            self._client = httpx.AsyncClient(timeout=60)
        else:
            from httpx_aiohttp import HttpxAiohttpClient

            self._client = HttpxAiohttpClient(timeout=60)

        async def post_httpx(url: str, data: bytes) -> bytes:
            response = await self._client.post(url, content=data, headers=headers)
            return response.content  # type: ignore[no-any-return]

        return post_httpx

    async def __aexit__(self, *exc: object) -> None:
        if self.kind == "aiohttp":
            await self._client.close()
        else:
            await self._client.aclose()


async def socketio_call(
    control: Control, url: str, n: int, warmup: int, transport: str = "websocket"
) -> dict[str, Any]:
    """The peer: python-socketio ``call`` (emit with acknowledgement)."""
    import socketio

    payload = _echo_payload().decode()
    sio = socketio.AsyncClient()
    await sio.connect(url, transports=[transport])
    try:

        async def once() -> None:
            await sio.call("echo", payload, timeout=30)

        return await _timed(n, warmup, once)
    finally:
        # A polling client's disconnect waits for its pending long-poll.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sio.disconnect(), 1.0)


# -- the stub, raw protocol --


async def _games(url: str) -> list[Game]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.get(url.rstrip("/") + "/v1/games") as response,
    ):
        data = await response.read()
    snapshot = decode(data, max_bytes=MAX_BYTES).body
    assert isinstance(snapshot, Snapshot)
    return open_games(snapshot)


async def stub_ws(control: Control, url: str, n: int, warmup: int) -> dict[str, Any]:
    """Prediction to confirmation over the stub's /ws with a bare websockets client."""
    signer = miner_signer("latency-ws", 0)
    miner = await WsMiner(url, signer).connect()
    assert miner.snapshot is not None
    game = open_games(miner.snapshot)[0]
    try:

        async def once() -> None:
            data, _ = prediction_message(game, signer)
            answer = await miner.submit(data)
            if answer.type != "confirmation":
                raise RuntimeError(f"stub answered {answer.type}: {answer.body}")

        return await _timed(n, warmup, once)
    finally:
        await miner.close()


async def stub_http(
    control: Control,
    url: str,
    n: int,
    warmup: int,
    client: str = "aiohttp",
    cold: bool = False,
) -> dict[str, Any]:
    """Prediction to confirmation over POST /v1/predictions.

    ``cold`` opens a new client (so a new TCP connection) for every
    prediction, as a miner that creates a client per request does.
    """
    signer = miner_signer(f"latency-http-{client}-{cold}", 0)
    game = (await _games(url))[0]
    endpoint = url.rstrip("/") + "/v1/predictions"

    async def post_once(post: Callable[[str, bytes], Awaitable[bytes]]) -> None:
        data, _ = prediction_message(game, signer)
        answer = decode(await post(endpoint, data), max_bytes=MAX_BYTES)
        if answer.type != "confirmation":
            raise RuntimeError(f"stub answered {answer.type}: {answer.body}")

    if cold:

        async def once_cold() -> None:
            async with _http_client(client) as post:
                await post_once(post)

        return await _timed(n, warmup, once_cold)

    async with _http_client(client) as post:

        async def once() -> None:
            await post_once(post)

        return await _timed(n, warmup, once)
