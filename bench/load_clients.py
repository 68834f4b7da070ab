"""Many-miner clients: throughput, push receivers, idle holders, steady state.

Each function runs in a worker process (`bench.worker`) for a slice of the
miners, reports ``ready`` once its miners are connected, and for the timed
ones waits for the parent's ``go`` so that every worker starts together.
Every loop is bounded by a duration or a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bench.proto import (
    MAX_BYTES,
    WsMiner,
    count_confirmed,
    miner_signer,
    new_prediction,
    open_games,
    prediction_message,
)
from bench.worker import Control
from bettensor_core.codec import Signer, decode, encode
from bettensor_core.protocol import (
    Events,
    Game,
    ResumeRequest,
    Snapshot,
)
from bettensor_core.transport.http import KEEPALIVE_EXPIRY


async def _gather_bounded(
    factories: list[Callable[[], Awaitable[Any]]], limit: int
) -> list[Any]:
    """Run coroutines with at most ``limit`` at a time (connection storms)."""
    gate = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            try:
                return await factory()
            except Exception as exc:
                return exc

    return await asyncio.gather(*(one(f) for f in factories))


async def _snapshot(session: aiohttp.ClientSession, url: str) -> Snapshot:
    async with session.get(url.rstrip("/") + "/v1/games") as response:
        body = decode(await response.read(), max_bytes=MAX_BYTES).body
    assert isinstance(body, Snapshot)
    return body


# -- throughput --


async def throughput(
    control: Control,
    url: str,
    mode: str,
    scenario: str,
    indices: list[int],
    batch: int,
    duration: float,
) -> dict[str, Any]:
    """Closed-loop submitters: each miner sends, awaits its confirmation, repeats."""
    signers = [miner_signer(scenario, i) for i in indices]
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    session = aiohttp.ClientSession(connector=connector)
    games = open_games(await _snapshot(session, url))
    endpoint = url.rstrip("/") + "/v1/predictions"
    headers = {"content-type": "application/json"}

    miners: list[WsMiner] = []
    if mode == "ws":
        connected = await _gather_bounded(
            [lambda s=s: WsMiner(url, s).connect() for s in signers], 50
        )
        failures = [c for c in connected if isinstance(c, Exception)]
        if failures:
            raise RuntimeError(f"{len(failures)} miners failed: {failures[0]!r}")
        miners = connected
    # One keep-alive session per HTTP miner: each miner is its own machine.
    sessions = (
        [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            for _ in signers
        ]
        if mode == "http"
        else []
    )

    control.notify("ready", miners=len(signers))
    await control.command()
    confirmed = 0
    messages = 0
    errors: dict[str, int] = {}
    deadline = time.monotonic() + duration

    async def miner_loop(k: int) -> None:
        nonlocal confirmed, messages
        game = games[k % len(games)]
        while time.monotonic() < deadline:
            data, _ = prediction_message(game, signers[k], batch)
            if mode == "ws":
                answer = await miners[k].submit(data)
            else:
                async with sessions[k].post(endpoint, data=data, headers=headers) as r:
                    answer = decode(await r.read(), max_bytes=MAX_BYTES)
            if answer.type == "error":
                code = getattr(answer.body, "code", "error")
                errors[code] = errors.get(code, 0) + 1
                await asyncio.sleep(0.01)
                continue
            # Count only answers that arrived inside the window.
            if time.monotonic() <= deadline:
                confirmed += count_confirmed(answer)
                messages += 1

    started = time.monotonic()
    await asyncio.wait_for(
        asyncio.gather(*(miner_loop(k) for k in range(len(signers)))),
        duration + 60,
    )
    elapsed = min(time.monotonic(), deadline) - started
    for m in miners:
        with contextlib.suppress(Exception):
            await m.close()
    for s in sessions:
        await s.close()
    await session.close()
    return {
        "confirmed": confirmed,
        "messages": messages,
        "seconds": elapsed,
        "errors": errors,
    }


# -- push receivers --


async def push_receivers(
    control: Control,
    url: str,
    mode: str,
    scenario: str,
    indices: list[int],
    max_seconds: float,
) -> dict[str, Any]:
    """Connected miners that timestamp every pushed frame as it arrives.

    ``mode`` is ``ws`` (our stub's /ws after a hello), ``floor`` (a bare
    websockets connection to `bench.serve` ws-echo) or ``longpoll`` (POST
    /v1/events held by the stub, re-posted as soon as it answers). Returns,
    per miner, the wall-clock arrival times of pushes (``time.time()``).
    """
    arrivals: list[list[float]] = [[] for _ in indices]
    stop_at = time.monotonic() + max_seconds

    if mode == "longpoll":
        return await _longpoll_receivers(
            control, url, scenario, indices, arrivals, stop_at
        )

    from websockets.asyncio.client import connect

    async def open_one(k: int) -> Any:
        if mode == "ws":
            miner = await WsMiner(url, miner_signer(scenario, indices[k])).connect(
                heartbeat_interval=600.0
            )
            return miner.ws
        return await connect(url, compression=None, ping_interval=None, open_timeout=60)

    sockets = await _gather_bounded(
        [lambda k=k: open_one(k) for k in range(len(indices))], 100
    )
    failures = [s for s in sockets if isinstance(s, Exception)]
    if failures:
        raise RuntimeError(f"{len(failures)} receivers failed: {failures[0]!r}")

    async def read(k: int, ws: Any) -> None:
        marker = '"type":"events"'
        with contextlib.suppress(Exception):
            async for frame in ws:
                at = time.time()
                if mode == "floor" or marker in (
                    frame if isinstance(frame, str) else frame.decode()
                ):
                    arrivals[k].append(at)

    readers = [asyncio.create_task(read(k, ws)) for k, ws in enumerate(sockets)]
    control.notify("ready", miners=len(sockets))
    await control.sleep_or_stop(max(0.0, stop_at - time.monotonic()))
    for ws in sockets:
        ws.transport.abort()
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {"arrivals": arrivals}


async def _longpoll_receivers(
    control: Control,
    url: str,
    scenario: str,
    indices: list[int],
    arrivals: list[list[float]],
    stop_at: float,
) -> dict[str, Any]:
    signers = [miner_signer(scenario, i) for i in indices]
    endpoint = url.rstrip("/") + "/v1/events"
    headers = {"content-type": "application/json"}
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=60),
    )
    polling = 0
    ready = asyncio.Event()

    async def poll(k: int) -> None:
        nonlocal polling
        after: int | None = None
        counted = False
        while time.monotonic() < stop_at:
            body = encode(ResumeRequest(after_seq=after, hold=25.0), signers[k])
            if after is not None and not counted:
                counted = True
                polling += 1
                if polling == len(signers):
                    ready.set()
            async with session.post(endpoint, data=body, headers=headers) as r:
                data = await r.read()
            at = time.time()
            answer = decode(data, max_bytes=MAX_BYTES).body
            if isinstance(answer, Snapshot):
                after = answer.seq
            elif isinstance(answer, Events):
                if answer.events and after is not None:
                    arrivals[k].append(at)
                after = answer.head

    tasks = [asyncio.create_task(poll(k)) for k in range(len(signers))]
    await asyncio.wait_for(ready.wait(), 120)
    # Give the last requests time to reach the stub and be held.
    await asyncio.sleep(0.5)
    control.notify("ready", miners=len(signers))
    await control.sleep_or_stop(max(0.0, stop_at - time.monotonic()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    return {"arrivals": arrivals}


# -- idle holders (capacity) --


async def hold_idle(
    control: Control,
    url: str,
    mode: str,
    scenario: str,
    indices: list[int],
    max_seconds: float,
) -> dict[str, Any]:
    """Open idle WebSockets (``ws``: our hello; ``floor``: a bare connection)."""
    from websockets.asyncio.client import connect

    started = time.monotonic()
    signers = [miner_signer(scenario, i) for i in indices] if mode == "ws" else []
    keys_s = time.monotonic() - started

    async def open_one(k: int) -> Any:
        if mode == "ws":
            miner = await WsMiner(url, signers[k]).connect(heartbeat_interval=3600.0)
            return miner.ws
        return await connect(
            url, compression=None, ping_interval=None, open_timeout=120
        )

    started = time.monotonic()
    sockets = await asyncio.wait_for(
        _gather_bounded([lambda k=k: open_one(k) for k in range(len(indices))], 100),
        max_seconds,
    )
    connect_s = time.monotonic() - started
    held = [s for s in sockets if not isinstance(s, Exception)]
    failed = [repr(s) for s in sockets if isinstance(s, Exception)]
    control.notify("ready", held=len(held), failed=len(failed))
    await control.sleep_or_stop(max_seconds)
    still_open = sum(1 for ws in held if ws.state.name == "OPEN")
    for ws in held:
        ws.transport.abort()
    return {
        "held": len(held),
        "still_open": still_open,
        "failed": len(failed),
        "first_failure": failed[0] if failed else None,
        "connect_s": connect_s,
        "keys_s": keys_s,
    }


# -- steady state --


async def steady(
    control: Control,
    url: str,
    mode: str,
    scenario: str,
    indices: list[int],
    duration: float,
    mean_gap: float,
) -> dict[str, Any]:
    """Miners that keep games current from pushes and predict now and then.

    Each miner submits one prediction on a random open game at exponential
    gaps of ``mean_gap`` seconds, with the odds it last heard, and keeps
    receiving pushes: over its WebSocket (``ws``) or by long-polling
    (``http``, keep-alive, one session per miner).
    """
    rng = random.Random(7)
    signers = [miner_signer(scenario, i) for i in indices]
    headers = {"content-type": "application/json"}
    base = url.rstrip("/")
    setup = aiohttp.ClientSession()
    games: dict[str, Game] = {
        g.game_id: g for g in open_games(await _snapshot(setup, url))
    }
    await setup.close()
    stats = {"submitted": 0, "accepted": 0, "rejected": 0, "errors": 0, "pushes": 0}
    deadline = time.monotonic() + duration

    def apply(events: Events) -> None:
        stats["pushes"] += 1
        for event in events.events:
            if event.game is not None:
                games[event.game.game_id] = event.game

    def tally(answer: Any) -> None:
        accepted = getattr(answer.body, "accepted", None)
        if accepted is None:
            stats["errors"] += 1
        else:
            stats["accepted" if accepted else "rejected"] += 1

    async def ws_miner(signer: Signer) -> None:
        miner = await WsMiner(url, signer).connect(heartbeat_interval=20.0)
        answers: asyncio.Queue[Any] = asyncio.Queue()

        async def read() -> None:
            async for frame in miner.ws:
                msg = decode(frame, max_bytes=MAX_BYTES)
                if isinstance(msg.body, Events):
                    apply(msg.body)
                elif msg.type != "heartbeat":
                    answers.put_nowait(msg)

        reader = asyncio.create_task(read())
        await ready.wait()
        try:
            while await _wait_gap(rng, mean_gap, deadline):
                game = rng.choice(list(games.values()))
                await miner.ws.send(encode(new_prediction(game), signer).decode())
                stats["submitted"] += 1
                tally(await asyncio.wait_for(answers.get(), 30))
        finally:
            reader.cancel()
            with contextlib.suppress(Exception):
                await miner.close()

    async def http_miner(signer: Signer) -> None:
        # Kept alive as long as our client keeps its connections (aiohttp's
        # own default, 15 s, would reconnect after every longer quiet spell).
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=2, keepalive_timeout=KEEPALIVE_EXPIRY),
            timeout=aiohttp.ClientTimeout(total=60),
        )

        async def long_poll() -> None:
            after: int | None = None
            while time.monotonic() < deadline:
                body = encode(ResumeRequest(after_seq=after, hold=25.0), signer)
                async with session.post(
                    base + "/v1/events", data=body, headers=headers
                ) as r:
                    answer = decode(await r.read(), max_bytes=MAX_BYTES).body
                if isinstance(answer, Snapshot):
                    after = answer.seq
                elif isinstance(answer, Events):
                    apply(answer)
                    after = answer.head

        poller = asyncio.create_task(long_poll())
        await ready.wait()
        try:
            while await _wait_gap(rng, mean_gap, deadline):
                game = rng.choice(list(games.values()))
                data = encode(new_prediction(game), signer)
                async with session.post(
                    base + "/v1/predictions", data=data, headers=headers
                ) as r:
                    answer = decode(await r.read(), max_bytes=MAX_BYTES)
                stats["submitted"] += 1
                tally(answer)
        finally:
            poller.cancel()
            with contextlib.suppress(BaseException):
                await poller
            await session.close()

    ready = asyncio.Event()
    run = ws_miner if mode == "ws" else http_miner
    tasks = [asyncio.create_task(run(s)) for s in signers]
    await asyncio.sleep(1.0)
    control.notify("ready", miners=len(signers))
    await control.command()
    deadline = time.monotonic() + duration
    ready.set()
    results = await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), duration + 60
    )
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    return {**stats, "failures": len(failures), "first_failure": failures[:1]}


async def _wait_gap(rng: random.Random, mean_gap: float, deadline: float) -> bool:
    """Sleep an exponential gap; False once the deadline has passed."""
    gap = rng.expovariate(1.0 / mean_gap)
    left = deadline - time.monotonic()
    if left <= gap:
        await asyncio.sleep(max(0.0, left))
        return False
    await asyncio.sleep(gap)
    return True
