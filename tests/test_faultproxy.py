"""Each fault of the FaultProxy, against a real WebSocket echo + HTTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from http import HTTPStatus

import httpx
import pytest
from faultproxy import FaultProxy
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Request, Response, Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

pytestmark = pytest.mark.timeout(30)


class EchoServer:
    """WebSocket echo on any path, and ``GET /hello`` answering with its name."""

    def __init__(self, name: str):
        self.name = name
        self.server: Server | None = None
        self.port = 0

    async def start(self) -> EchoServer:
        self.server = await serve(
            self._echo, "127.0.0.1", 0, process_request=self._http
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _echo(self, websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        return connection.respond(HTTPStatus.OK, f"hello from {self.name}\n")


@pytest.fixture
async def upstream() -> AsyncIterator[EchoServer]:
    server = await EchoServer("one").start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(upstream: EchoServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", upstream.port) as running:
        yield running


async def echo(ws: ClientConnection, text: str, timeout: float = 2.0) -> str:
    await ws.send(text)
    answer = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(answer, str)
    return answer


async def hello(url: str) -> str:
    async with httpx.AsyncClient(timeout=3.0) as client:
        response = await client.get(url + "/hello")
        response.raise_for_status()
        return response.text


async def test_relays_websocket_and_http(proxy: FaultProxy) -> None:
    """With no fault on, WebSocket frames and HTTP requests pass both ways."""
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"
    async with connect(proxy.ws_url + "/ws") as ws:
        assert await echo(ws, "ping") == "ping"
        assert proxy.active == 1
    assert await hello(proxy.url) == "hello from one\n"
    assert proxy.stats.accepted == 2
    assert proxy.stats.bytes_up > 0 and proxy.stats.bytes_down > 0


async def test_cut_all_drops_live_connections(proxy: FaultProxy) -> None:
    """cut_all closes every live WebSocket at once; new ones then work."""
    first = await connect(proxy.ws_url)
    second = await connect(proxy.ws_url)
    assert await echo(first, "a") == "a"
    assert await echo(second, "b") == "b"

    assert proxy.cut_all() == 2
    for ws in (first, second):
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2.0)
    assert proxy.active == 0
    assert proxy.stats.cuts == 2

    async with connect(proxy.ws_url) as again:
        assert await echo(again, "c") == "c"


async def test_graceful_cut_closes_with_fin(proxy: FaultProxy) -> None:
    """A graceful cut also ends the WebSocket, without a reset."""
    ws = await connect(proxy.ws_url)
    assert await echo(ws, "a") == "a"
    proxy.cut_all(graceful=True)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 2.0)


async def test_stall_holds_bytes_without_closing(proxy: FaultProxy) -> None:
    """A stalled link keeps the connection open but delivers nothing until released."""
    async with connect(proxy.ws_url, ping_interval=None) as ws:
        assert await echo(ws, "before") == "before"
        proxy.stall(True)
        assert proxy.stalled
        await ws.send("held")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        assert proxy.active == 1

        proxy.stall(False)
        assert await asyncio.wait_for(ws.recv(), 2.0) == "held"


async def test_stall_blocks_new_http_requests_too(proxy: FaultProxy) -> None:
    """While stalled a new HTTP request hangs (connect succeeds, no answer)."""
    proxy.stall(True)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(proxy.url + "/hello", timeout=0.3)
    proxy.stall(False)
    assert await hello(proxy.url) == "hello from one\n"


async def test_refuse_websocket_answers_403_but_lets_http_through(
    proxy: FaultProxy,
) -> None:
    """WebSocket upgrades get 403 Forbidden; plain HTTP still reaches the server."""
    proxy.refuse_websocket(True)
    with pytest.raises(InvalidStatus) as caught:
        await connect(proxy.ws_url + "/ws", open_timeout=2.0)
    assert caught.value.response.status_code == 403
    assert await hello(proxy.url) == "hello from one\n"
    assert proxy.stats.refused_websockets == 1

    proxy.refuse_websocket(False)
    async with connect(proxy.ws_url + "/ws") as ws:
        assert await echo(ws, "back") == "back"


async def test_refusing_leaves_open_websockets_alone(proxy: FaultProxy) -> None:
    """Only new upgrades are refused; a WebSocket already open keeps working."""
    async with connect(proxy.ws_url) as ws:
        proxy.refuse_websocket(True)
        assert await echo(ws, "still") == "still"


async def test_delay_adds_latency_each_way(proxy: FaultProxy) -> None:
    """A 0.2 s delay makes an echo round trip take at least 0.4 s."""
    async with connect(proxy.ws_url) as ws:
        assert await echo(ws, "warm") == "warm"
        proxy.delay(0.2)
        started = time.monotonic()
        assert await echo(ws, "slow") == "slow"
        assert time.monotonic() - started >= 0.4
        proxy.delay(0)
    with pytest.raises(ValueError):
        proxy.delay(-1)


async def test_set_upstream_moves_new_connections(
    proxy: FaultProxy, upstream: EchoServer
) -> None:
    """After set_upstream, new connections reach the new server."""
    other = await EchoServer("two").start()
    try:
        async with connect(proxy.ws_url) as old_ws:
            proxy.set_upstream("127.0.0.1", other.port)
            assert await hello(proxy.url) == "hello from two\n"
            # The connection made before the switch still talks to the first.
            assert await echo(old_ws, "old") == "old"
    finally:
        await other.stop()


async def test_upstream_down_drops_the_client(
    proxy: FaultProxy, upstream: EchoServer
) -> None:
    """With the upstream gone, clients see their connection dropped, not a hang."""
    await upstream.stop()
    with pytest.raises((OSError, ConnectionClosed, TimeoutError, InvalidHandshake)):
        await connect(proxy.ws_url, open_timeout=2.0)
    with pytest.raises(httpx.TransportError):
        await hello(proxy.url)
    assert proxy.stats.upstream_failures >= 2


async def test_reject_connections_resets_new_ones_only(proxy: FaultProxy) -> None:
    """While rejecting, new connections fail at once; open ones and later ones work."""
    async with connect(proxy.ws_url) as ws:
        proxy.reject_connections(True)
        with pytest.raises((OSError, ConnectionClosed, InvalidHandshake)):
            await connect(proxy.ws_url, open_timeout=2.0)
        with pytest.raises(httpx.TransportError):
            await hello(proxy.url)
        assert await echo(ws, "alive") == "alive"
        assert proxy.stats.rejected == 2

        proxy.reject_connections(False)
        assert await hello(proxy.url) == "hello from one\n"


async def test_chaos_cuts_and_stops_by_itself(proxy: FaultProxy) -> None:
    """chaos cuts reconnecting clients at random and ends within its duration."""
    reconnects = 0

    async def reconnecting_client() -> None:
        nonlocal reconnects
        for _ in range(200):
            try:
                async with connect(proxy.ws_url, open_timeout=1.0) as ws:
                    while True:
                        await echo(ws, "x")
                        await asyncio.sleep(0.01)
            except (ConnectionClosed, OSError, TimeoutError):
                reconnects += 1

    client = asyncio.create_task(reconnecting_client())
    started = time.monotonic()
    hits = await proxy.chaos(cut_every=(0.05, 0.15), duration=1.0, seed=7)
    elapsed = time.monotonic() - started
    client.cancel()
    await asyncio.gather(client, return_exceptions=True)

    assert 0.9 <= elapsed < 2.0
    assert hits >= 3
    assert reconnects >= 3
    with pytest.raises(ValueError):
        await proxy.chaos(cut_every=(0.0, 1.0), duration=0.1)


async def test_stop_closes_everything(upstream: EchoServer) -> None:
    """After stop() the port refuses connections and live clients are dropped."""
    proxy = await FaultProxy("127.0.0.1", upstream.port).start()
    ws = await connect(proxy.ws_url)
    await proxy.stop()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 2.0)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
