"""A TCP proxy that breaks links on purpose, for tests and benchmarks.

Put it between a miner and a validator stub; every connection the miner opens
to ``proxy.port`` is relayed to the upstream, until a fault is switched on:

- `FaultProxy.cut_all` drops every live connection at once (a reset, like a
  lost Wi-Fi link; ``graceful=True`` closes them with FIN instead);
- `FaultProxy.stall` stops relaying bytes without closing anything, the
  half-open link that only heartbeats detect;
- `FaultProxy.refuse_websocket` answers WebSocket upgrades with ``403`` and
  lets plain HTTP through, like a proxy that forbids WebSockets;
- `FaultProxy.reject_connections` resets every new connection at once, as
  if the validator were down, while the port stays open;
- `FaultProxy.delay` adds latency to every chunk, both ways;
- `FaultProxy.set_upstream` sends new connections elsewhere (the validator
  restarted on another port);
- `FaultProxy.chaos` cuts at random intervals for a bounded time.

Only loopback: it listens on 127.0.0.1, port 0 (a free port).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024
_HEAD_TIMEOUT = 5.0

FORBIDDEN = (
    b"HTTP/1.1 403 Forbidden\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 29\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"WebSockets are not allowed.\r\n"
)


@dataclass
class ProxyStats:
    """What the proxy has seen, for assertions."""

    accepted: int = 0
    refused_websockets: int = 0
    rejected: int = 0
    cuts: int = 0
    upstream_failures: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream twin."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self, graceful: bool) -> None:
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if graceful:
                writer.close()
            else:
                writer.transport.abort()


class FaultProxy:
    """An asyncio TCP relay with switchable faults."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._refuse_websocket = False
        self._reject = False
        self._delay = 0.0
        self.port = 0

    # -- life cycle ---------------------------------------------------------

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info(
            "fault proxy on %d -> %s:%d",
            self.port,
            self.upstream_host,
            self.upstream_port,
        )
        return self

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; WebSocket clients use `ws_url`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def active(self) -> int:
        """Connections open through the proxy right now."""
        return len(self._links)

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        self.cut_all()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults -------------------------------------------------------------

    def cut_all(self, graceful: bool = False) -> int:
        """Close every live connection now; returns how many were cut."""
        links = list(self._links)
        for link in links:
            link.close(graceful)
        self._links.clear()
        if links:
            self.stats.cuts += len(links)
            logger.info("fault proxy cut %d connection(s)", len(links))
        return len(links)

    def stall(self, on: bool = True) -> None:
        """Hold every byte (both ways) without closing, or let them flow again."""
        if on:
            self._flowing.clear()
        else:
            self._flowing.set()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def refuse_websocket(self, on: bool = True) -> None:
        """Answer new WebSocket upgrades with 403; plain HTTP still passes."""
        self._refuse_websocket = on

    def reject_connections(self, on: bool = True) -> None:
        """Reset new connections as soon as they arrive; live ones stay."""
        self._reject = on

    def delay(self, seconds: float) -> None:
        """Hold each chunk this long before relaying it (0 for none)."""
        if seconds < 0:
            raise ValueError("delay must not be negative")
        self._delay = seconds

    def set_upstream(self, host: str, port: int) -> None:
        """Relay new connections to another address; live ones stay put."""
        self.upstream_host, self.upstream_port = host, port

    async def chaos(
        self,
        cut_every: tuple[float, float] = (0.5, 2.0),
        duration: float = 5.0,
        *,
        seed: int | None = None,
        max_cuts: int = 1000,
    ) -> int:
        """Cut all connections at random intervals until ``duration`` ends.

        Bounded in time and in count; returns how many cuts found something
        to cut. ``seed`` makes the intervals repeatable.
        """
        low, high = cut_every
        if not 0 < low <= high:
            raise ValueError("cut_every must be (low, high) with 0 < low <= high")
        rng = random.Random(seed)
        deadline = time.monotonic() + duration
        hits = 0
        for _ in range(max_cuts):
            pause = rng.uniform(low, high)
            left = deadline - time.monotonic()
            if pause >= left:
                await asyncio.sleep(max(left, 0.0))
                break
            await asyncio.sleep(pause)
            if self.cut_all():
                hits += 1
        return hits

    # -- relaying -----------------------------------------------------------

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.stats.accepted += 1
        link = _Link(client=writer)
        self._links.add(link)
        try:
            await self._serve(link, reader)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._links.discard(link)
            link.close(graceful=True)
            self._handlers.discard(task)

    async def _serve(self, link: _Link, reader: asyncio.StreamReader) -> None:
        if self._reject:
            self.stats.rejected += 1
            link.client.transport.abort()
            return
        head = b""
        if self._refuse_websocket:
            head = await self._read_head(reader)
            if _is_websocket_upgrade(head):
                self.stats.refused_websockets += 1
                link.client.write(FORBIDDEN)
                with contextlib.suppress(ConnectionError):
                    await link.client.drain()
                return

        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            # The upstream is down: the client sees its connection dropped.
            self.stats.upstream_failures += 1
            link.client.transport.abort()
            return
        link.upstream = up_writer
        if link not in self._links:
            # Cut while connecting.
            up_writer.transport.abort()
            return
        if head:
            await self._relay_chunk(head, up_writer, up=True)

        up = asyncio.create_task(self._pump(reader, up_writer, up=True))
        down = asyncio.create_task(self._pump(up_reader, link.client, up=False))
        link.tasks = [up, down]
        try:
            # Each side's EOF is passed on and the other side may still talk
            # (a half-close); an error on either side ends the connection.
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in link.tasks:
                task.cancel()
            await asyncio.gather(*link.tasks, return_exceptions=True)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        # Enough of the request to see its headers; a client that sends
        # nothing first (not HTTP) is relayed after a short wait.
        head = b""
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(_HEAD_TIMEOUT):
                while b"\r\n\r\n" not in head and len(head) < _MAX_HEAD:
                    chunk = await reader.read(_CHUNK)
                    if not chunk:
                        break
                    head += chunk
        return head

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        while True:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                # Half-close the other side so EOF travels on.
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            await self._relay_chunk(chunk, writer, up=up)

    async def _relay_chunk(
        self, chunk: bytes, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        await self._flowing.wait()
        if self._delay:
            await asyncio.sleep(self._delay)
            # A stall switched on during the delay holds this chunk too.
            await self._flowing.wait()
        writer.write(chunk)
        await writer.drain()
        if up:
            self.stats.bytes_up += len(chunk)
        else:
            self.stats.bytes_down += len(chunk)


def _is_websocket_upgrade(head: bytes) -> bool:
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    for line in text.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "upgrade" and "websocket" in value:
            return True
    return False
