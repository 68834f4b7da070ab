"""Child-process entry point for every server the harness measures.

``python -m bench.serve KIND [options]`` listens on 127.0.0.1, a free port,
prints ``READY <port> <json info>`` and serves until SIGTERM. Kinds:

- ``ws-echo``: a bare ``websockets`` server, the floor. It echoes every
  message; a text message ``broadcast <n>`` from a control connection sends a
  payload of ``n`` bytes to every other connection with
  ``websockets.broadcast`` and answers how long that call took.
- ``asgi-echo``: uvicorn + Starlette with the same settings as the stub:
  ``/ws`` echoes, ``/ws-signed`` decodes and verifies each envelope and
  answers with a signed one (the cost of our signing on this stack),
  ``POST /echo`` and ``POST /echo-signed`` do the same over HTTP.
- ``socketio``: the peer, python-socketio's ASGI server under the same
  uvicorn; event ``echo`` acknowledges with its argument.
- ``stub``: our validator stub (`validator_stub.server.StubServer`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import HOST, raise_nofile

# The stub's uvicorn settings, mirrored so the floors share its stack.
UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "lifespan": "off",
    "date_header": False,
    "ws_ping_interval": None,
    "ws_ping_timeout": None,
    "backlog": 4096,
    "timeout_graceful_shutdown": 1,
}


def _ready(port: int, **info: Any) -> None:
    info.setdefault("pid", os.getpid())
    sys.stdout.write(f"READY {port} {json.dumps(info)}\n")
    sys.stdout.flush()


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# -- the bare websockets floor --


async def ws_echo(compression: bool) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    server_ref: dict[str, Any] = {}

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if isinstance(message, str) and message.startswith("broadcast "):
                size = int(message.split()[1])
                payload = b"x" * size
                others = [c for c in server_ref["server"].connections if c is not ws]
                started = time.perf_counter()
                broadcast(others, payload)
                took = time.perf_counter() - started
                await ws.send(json.dumps({"call_s": took, "receivers": len(others)}))
            else:
                await ws.send(message)

    async with serve(
        handler,
        HOST,
        0,
        compression="deflate" if compression else None,
        max_queue=32,
        ping_interval=20,
        ping_timeout=20,
    ) as server:
        server_ref["server"] = server
        port = next(iter(server.sockets)).getsockname()[1]
        _ready(port, compression=compression)
        await _until_terminated()


# -- uvicorn + Starlette floor --


def _asgi_echo_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from bettensor_core.codec import Signer, decode, encode

    signer = Signer.from_uri("//bench/echo-server")

    def signed_reply(data: bytes) -> bytes:
        # Verify the miner's envelope and answer with our own signed copy.
        msg = decode(data)
        return encode(msg.body, signer)

    async def ws_plain(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await ws.send_bytes(message["bytes"])
                else:
                    await ws.send_text(message["text"])
        except WebSocketDisconnect:
            return

    async def ws_signed(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes") or message["text"].encode()
                await ws.send_bytes(signed_reply(data))
        except WebSocketDisconnect:
            return

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    async def echo_signed(request: Request) -> Response:
        return Response(
            signed_reply(await request.body()), media_type="application/json"
        )

    return Starlette(
        routes=[
            WebSocketRoute("/ws", ws_plain),
            WebSocketRoute("/ws-signed", ws_signed),
            Route("/echo", echo, methods=["POST"]),
            Route("/echo-signed", echo_signed, methods=["POST"]),
        ]
    )


def _socketio_app() -> Any:
    import socketio

    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")

    @sio.on("echo")  # type: ignore[untyped-decorator]
    async def echo(sid: str, data: Any) -> Any:
        return data

    return socketio.ASGIApp(sio)


async def run_uvicorn(app: Any, **info: Any) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=HOST, port=0, **UVICORN_OPTIONS)
    server = uvicorn.Server(config)
    # uvicorn installs its own signal handlers only from run(); serve() with a
    # task lets us read the bound port and stop on SIGTERM ourselves.
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    _ready(port, **info)
    await _until_terminated()
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(task, 5)


# -- our stub --


_STUB_SOCKET: dict[str, Any] = {}


def _patch_bind(nodelay: bool | None) -> None:
    """Record whether the stub's listening socket sets TCP_NODELAY; maybe force it.

    Without TCP_NODELAY, Nagle's algorithm holds a small answer back until the
    peer's delayed ACK (about 40 ms on Linux); Linux copies the option from a
    listening socket to the sockets it accepts. ``nodelay`` True or False
    forces it on or off so the latency scenario can show the difference;
    None leaves the stub as committed.
    """
    import socket

    from validator_stub import server

    original = server._bind

    def bind(host: str, port: int) -> socket.socket:
        sock = original(host, port)
        option = (socket.IPPROTO_TCP, socket.TCP_NODELAY)
        _STUB_SOCKET["nodelay_in_stub"] = bool(sock.getsockopt(*option))
        if nodelay is not None:
            sock.setsockopt(*option, int(nodelay))
        _STUB_SOCKET["nodelay"] = bool(sock.getsockopt(*option))
        return sock

    server._bind = bind


def _trace_memory(path: str) -> None:
    """Trace allocations; on SIGUSR1 write the top allocation sites to ``path``."""
    import tracemalloc

    tracemalloc.start(4)

    def dump() -> None:
        snapshot = tracemalloc.take_snapshot()
        lines = []
        for stat in snapshot.statistics("traceback")[:30]:
            lines.append(f"{stat.size / 1024:10.0f} KiB {stat.count:8d} blocks")
            lines += [f"        {frame}" for frame in stat.traceback.format()]
        Path(path).write_text("\n".join(lines) + "\n")

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump)


async def run_stub(
    db: str,
    games: int,
    max_connections: int,
    rate: float,
    nodelay: bool | None,
    commit_gap: float | None,
) -> None:
    from validator_stub import store
    from validator_stub.config import Limits, StubConfig
    from validator_stub.server import StubServer

    _patch_bind(nodelay)
    if os.environ.get("BENCH_TRACEMALLOC"):
        _trace_memory(os.environ["BENCH_TRACEMALLOC"])
    info: dict[str, Any] = {"commit_gap_in_stub": getattr(store, "COMMIT_GAP", None)}
    if commit_gap is not None:
        store.COMMIT_GAP = commit_gap
    info["commit_gap"] = getattr(store, "COMMIT_GAP", None)

    # Bench load comes from few hotkeys at high rates: lift the per-miner rate
    # limit and the connection cap, and say so in every scenario's setup.
    limits = Limits(max_connections=max_connections, rate=rate, burst=rate)
    config = StubConfig(port=0, db=db, speed=0, games=games, limits=limits)
    stub = StubServer(config)
    await stub.start()
    _ready(stub.port or 0, ss58=stub.ss58, **info, **_STUB_SOCKET)
    await _until_terminated()
    await stub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("kind", choices=["ws-echo", "asgi-echo", "socketio", "stub"])
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--db", default=":memory:")
    parser.add_argument("--games", type=int, default=60)
    parser.add_argument("--max-connections", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1_000_000.0)
    parser.add_argument(
        "--nodelay", choices=["as-committed", "on", "off"], default="as-committed"
    )
    parser.add_argument("--commit-gap", type=float, default=None)
    args = parser.parse_args()
    raise_nofile()

    if args.kind == "ws-echo":
        coro = ws_echo(compression=not args.no_compression)
    elif args.kind == "asgi-echo":
        coro = run_uvicorn(_asgi_echo_app())
    elif args.kind == "socketio":
        coro = run_uvicorn(_socketio_app())
    else:
        nodelay = {"as-committed": None, "on": True, "off": False}[args.nodelay]
        coro = run_stub(
            args.db,
            args.games,
            args.max_connections,
            args.rate,
            nodelay,
            args.commit_gap,
        )
    asyncio.run(coro)


if __name__ == "__main__":
    main()
