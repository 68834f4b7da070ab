"""The scenarios: each starts its servers, runs its clients, returns a table.

A scenario returns ``{"title", "setup", "rows", "targets", "notes"}``: rows
are variants side by side (``kind`` is ``ours``, ``floor`` or ``peer``),
targets are ``{"target", "value", "limit", "met", "by"}``. `bench.report`
turns them into ``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    ChildServer,
    CountingProxy,
    Worker,
    median,
    percentile,
    proc_sample,
    run_worker,
    serve,
)

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Sizes:
    """How big each scenario runs; `FULL` for the published run, `SMOKE` to test."""

    smoke: bool
    latency_n: int
    latency_warmup: int
    cold_n: int
    throughput_miners: tuple[int, ...]
    throughput_seconds: float
    batch: int
    push_miners: tuple[int, ...]
    push_rounds: int
    push_gap: float
    capacity_miners: tuple[int, ...]
    idle_seconds: float
    app_idle_seconds: float
    bytes_round_trips: int
    steady_miners: int
    steady_seconds: float
    steady_gap: float
    steady_odds_per_s: float


FULL = Sizes(
    smoke=False,
    latency_n=2000,
    latency_warmup=200,
    cold_n=200,
    throughput_miners=(10, 50, 100),
    throughput_seconds=5.0,
    batch=50,
    push_miners=(50, 1000),
    push_rounds=5,
    push_gap=2.0,
    capacity_miners=(1000, 5000),
    # Five minutes, so the window holds several heartbeats: with one or two in
    # 60 s, the idle client's CPU swung 6x between runs.
    idle_seconds=300.0,
    app_idle_seconds=60.0,
    bytes_round_trips=200,
    steady_miners=50,
    steady_seconds=120.0,
    steady_gap=5.0,
    steady_odds_per_s=2.0,
)

SMOKE = Sizes(
    smoke=True,
    latency_n=20,
    latency_warmup=2,
    cold_n=5,
    throughput_miners=(2,),
    throughput_seconds=0.5,
    batch=5,
    push_miners=(5,),
    push_rounds=2,
    push_gap=0.5,
    capacity_miners=(20,),
    idle_seconds=2.0,
    app_idle_seconds=2.0,
    bytes_round_trips=5,
    steady_miners=3,
    steady_seconds=2.0,
    steady_gap=0.5,
    steady_odds_per_s=2.0,
)

STUB_LIMITS = (
    "stub limits lifted for load from few hotkeys: rate limit 1,000,000 messages/s "
    "per miner, 20,000 connections"
)
NODELAY = "The stub runs as committed (see the latency scenario for its settings)"


class Context:
    """Where a run keeps its files, and a counter for fresh database names."""

    def __init__(self, sizes: Sizes, workdir: Path):
        self.sizes = sizes
        self.workdir = workdir
        self.stub_info: dict[str, Any] = {}
        self._n = 0

    def path(self, name: str) -> str:
        self._n += 1
        return str(self.workdir / f"{self._n:03d}-{name}.sqlite")


@contextlib.asynccontextmanager
async def stub(
    ctx: Context,
    name: str,
    *,
    nodelay: bool | None = None,
    commit_gap: float | None = None,
    games: int = 60,
) -> AsyncIterator[ChildServer]:
    """The stub as committed, unless ``nodelay`` or ``commit_gap`` override it."""
    args = ["--db", ctx.path(name), "--games", str(games)]
    if nodelay is not None:
        args += ["--nodelay", "on" if nodelay else "off"]
    if commit_gap is not None:
        args += ["--commit-gap", str(commit_gap)]
    async with serve("stub", *args) as server:
        ctx.stub_info = server.info
        yield server


async def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + path, json=body or {}) as response,
    ):
        text = await response.text()
        if response.status >= 400:
            raise RuntimeError(f"{path}: HTTP {response.status} {text}")
        return json.loads(text) if text else None


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return json.loads(await response.text())


async def games_of(url: str) -> list[Any]:
    from bench.proto import MAX_BYTES, open_games
    from bettensor_core.codec import decode

    async with (
        aiohttp.ClientSession() as session,
        session.get(url + "/v1/games") as response,
    ):
        body = decode(await response.read(), max_bytes=MAX_BYTES).body
    return open_games(body)  # type: ignore[arg-type]


def target(
    name: str, value: float, limit: float, *, at_most: bool = True, unit: str = ""
) -> dict[str, Any]:
    """A target row: met or missed, and by how much (as a ratio of the limit)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {"target": name, "value": None, "limit": limit, "met": False, "by": ""}
    met = value <= limit if at_most else value >= limit
    if met:
        by = ""
    elif at_most and limit == 0:
        by = f"by {value:,.4g} {unit}".rstrip()
    elif at_most:
        by = f"{value / limit:.2f}x the limit"
    else:
        by = f"{value / limit:.0%} of the goal"
    return {
        "target": name,
        "value": value,
        "limit": limit,
        "unit": unit,
        "met": met,
        "by": by,
    }


# -- 1. latency --


async def latency(ctx: Context) -> dict[str, Any]:
    """Submit to confirmation, one at a time, every variant on the same bytes."""
    s = ctx.sizes
    n, warm = s.latency_n, s.latency_warmup
    rows: list[dict[str, Any]] = []

    pending: list[Any] = []

    async def measure(variant: str, row_kind: str, target_fn: str, **args: Any) -> None:
        args.setdefault("n", n)
        args.setdefault("warmup", warm)
        started = time.monotonic()
        result = await run_worker(target_fn, timeout=600, **args)
        log.info("latency %s: %.1f s", variant, time.monotonic() - started)
        row = {"variant": variant, "kind": row_kind, **result}
        rows[rows.index({"variant": variant})] = row

    async def add(variant: str, row_kind: str, target_fn: str, **args: Any) -> None:
        # A smoke run measures every variant at once (it only proves they
        # work); a real run measures them one after another.
        rows.append({"variant": variant})
        task = asyncio.create_task(measure(variant, row_kind, target_fn, **args))
        pending.append(task)
        if not s.smoke:
            await task

    async def flush() -> None:
        # Tasks may be awaited again by another server's block: harmless.
        await asyncio.gather(*pending)

    lat = "bench.latency_clients:"

    async def server_1() -> None:
        async with serve("ws-echo", "--no-compression") as server:
            await add(
                "bare websockets echo", "floor", lat + "ws_echo", url=server.ws_url
            )
            await flush()

    async def server_2() -> None:
        async with serve("asgi-echo") as server:
            await add(
                "uvicorn+Starlette WebSocket echo",
                "floor",
                lat + "ws_echo",
                url=server.ws_url + "/ws",
            )
            await add(
                "uvicorn+Starlette WebSocket echo, sr25519 sign+verify both ways",
                "floor",
                lat + "ws_echo",
                url=server.ws_url + "/ws-signed",
                signed=True,
            )
            for client in ("aiohttp", "httpx-aiohttp", "httpx"):
                await add(
                    f"uvicorn+Starlette HTTP keep-alive echo, {client} client",
                    "floor",
                    lat + "http_echo",
                    url=server.url + "/echo",
                    client=client,
                )
            await add(
                "uvicorn+Starlette HTTP echo, aiohttp, sign+verify both ways",
                "floor",
                lat + "http_echo",
                url=server.url + "/echo-signed",
                client="aiohttp",
                signed=True,
            )
            await flush()

    async def server_3() -> None:
        async with serve("socketio") as server:
            for transport in ("websocket", "polling"):
                await add(
                    f"python-socketio call (emit with ack), {transport} transport",
                    "peer",
                    lat + "socketio_call",
                    url=server.url,
                    transport=transport,
                )

            await flush()

    async def server_4() -> None:
        async with stub(ctx, "latency") as server:
            await add("raw WebSocket client", "ours", lat + "stub_ws", url=server.url)
            for client in ("aiohttp", "httpx-aiohttp", "httpx"):
                await add(
                    f"raw HTTP keep-alive, {client}",
                    "ours",
                    lat + "stub_http",
                    url=server.url,
                    client=client,
                )
            await add(
                "cold HTTP: new httpx client per prediction (the study's setup)",
                "ours",
                lat + "stub_http",
                url=server.url,
                client="httpx",
                cold=True,
                n=s.cold_n,
                warmup=min(warm, 10),
            )
            for kind in ("websocket", "http-aiohttp", "http-httpx"):
                await add(
                    f"our {kind} transport (one request)",
                    "ours",
                    "bench.client_clients:transport_latency",
                    url=server.url,
                    kind=kind,
                )
            await add(
                "MinerClient over WebSocket (submit to confirmation)",
                "ours",
                "bench.client_clients:client_latency",
                url=server.url,
                store=ctx.path("client-ws"),
                expect="websocket",
            )
            await add(
                "MinerClient with durable_sync off: over WebSocket",
                "what-if",
                "bench.client_clients:client_latency",
                url=server.url,
                store=ctx.path("client-ws-nosync"),
                expect="websocket",
                durable_sync=False,
            )
            await flush()

    async def server_5() -> None:
        async with stub(ctx, "latency-http") as server:
            await control(server.url, "/control/websocket", {"enabled": False})
            await add(
                "MinerClient over its HTTP fallback (submit to confirmation)",
                "ours",
                "bench.client_clients:client_latency",
                url=server.url,
                store=ctx.path("client-http"),
                expect="http",
            )
            await add(
                "MinerClient with durable_sync off: over HTTP",
                "what-if",
                "bench.client_clients:client_latency",
                url=server.url,
                store=ctx.path("client-http-nosync"),
                expect="http",
                durable_sync=False,
            )
            await flush()

    # What two stub settings cost: its commit gap (writes gathered for up to
    # COMMIT_GAP before one commit) and TCP_NODELAY (Nagle's algorithm).
    few = min(n, 300)

    async def server_6() -> None:
        async with stub(ctx, "latency-gap2ms", commit_gap=0.002) as server:
            await add(
                "stub with a 2 ms commit gap (before): raw WebSocket client",
                "what-if",
                lat + "stub_ws",
                url=server.url,
            )
            await add(
                "stub with a 2 ms commit gap (before): raw HTTP keep-alive, aiohttp",
                "what-if",
                lat + "stub_http",
                url=server.url,
            )
            await add(
                "stub with a 2 ms commit gap (before): MinerClient over WebSocket",
                "what-if",
                "bench.client_clients:client_latency",
                url=server.url,
                store=ctx.path("client-ws-gap2ms"),
                expect="websocket",
            )
            await flush()

    async def server_7() -> None:
        async with stub(ctx, "latency-nagle", nodelay=False) as server:
            await add(
                "stub with TCP_NODELAY off: raw WebSocket client",
                "what-if",
                lat + "stub_ws",
                url=server.url,
                n=few,
            )
            await add(
                "stub with TCP_NODELAY off: raw HTTP keep-alive, aiohttp",
                "what-if",
                lat + "stub_http",
                url=server.url,
                n=few,
            )
            await flush()

    servers = [server_1, server_2, server_3, server_4, server_5, server_6, server_7]
    # The peer is a bench-only dependency; without it the run goes on.
    has_peer = importlib.util.find_spec("socketio") is not None
    if not has_peer:
        servers.remove(server_3)
    if s.smoke:
        await asyncio.gather(*(run() for run in servers))
    else:
        for run in servers:
            await run()
    settings = ctx.stub_info

    by = {r["variant"]: r for r in rows}
    ws = by["MinerClient over WebSocket (submit to confirmation)"]
    http = by["MinerClient over its HTTP fallback (submit to confirmation)"]
    floor = by["bare websockets echo"]["p50_ms"]
    for r in rows:
        r["ratio_to_floor"] = r["p50_ms"] / floor
    return {
        "title": "Latency: submit to confirmation",
        "setup": (
            f"{n} sequential round trips per variant after {warm} warm-up ones "
            f"(cold HTTP and TCP_NODELAY off: fewer), one client process, the "
            "server in another; "
            "every payload is one signed prediction envelope (~470 bytes). "
            f"{STUB_LIMITS}. Ratios are p50 against the bare websockets echo. "
            "The stub as committed sets TCP_NODELAY "
            f"{'itself' if settings.get('nodelay_in_stub') else 'NOT (forced on here)'}"
            f" and gathers writes for up to {settings.get('commit_gap_in_stub')} s "
            "before a commit; 'what-if' rows change one of those settings, or "
            "MinerClient's durable_sync (on by default: each new prediction is "
            "synced to disk in full before it is sent)."
        ),
        "rows": rows,
        "columns": ["p50_ms", "p95_ms", "p99_ms", "ratio_to_floor"],
        "notes": []
        if has_peer
        else ["The peer was not measured: python-socketio is not installed."],
        "targets": [
            target("WebSocket p50 (MinerClient)", ws["p50_ms"], 1.0, unit="ms"),
            target("HTTP p50 (MinerClient)", http["p50_ms"], 2.0, unit="ms"),
            target("WebSocket p99 (MinerClient)", ws["p99_ms"], 5.0, unit="ms"),
            target("HTTP p99 (MinerClient)", http["p99_ms"], 5.0, unit="ms"),
        ],
    }


# -- 2. throughput --


def _split(count: int, parts: int) -> list[list[int]]:
    parts = max(1, min(parts, count))
    return [list(range(i, count, parts)) for i in range(parts)]


async def _timed_load(
    server: ChildServer, target_fn: str, arg_list: list[dict[str, Any]], timeout: float
) -> tuple[list[Any], dict[str, float], float]:
    """Start workers, wait until all are ready, say go; return results and stub use."""
    workers = [await Worker(target_fn, a, timeout).start() for a in arg_list]
    for w in workers:
        await w.event("ready")
    before = server.sample()
    for w in workers:
        await w.send("go")
    results = await asyncio.gather(*(w.result() for w in workers))
    after = server.sample()
    used = after.minus(before)
    return list(results), used, after.rss_kib


async def throughput(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    rows: list[dict[str, Any]] = []
    async with stub(ctx, "throughput") as server:
        for miners in s.throughput_miners:
            for mode in ("ws", "http"):
                for batch in (1, s.batch):
                    label = f"{'WebSocket' if mode == 'ws' else 'HTTP'}, " + (
                        "single" if batch == 1 else f"batches of {batch}"
                    )
                    args = [
                        {
                            "url": server.url,
                            "mode": mode,
                            "scenario": f"tp-{mode}-{batch}-{miners}",
                            "indices": part,
                            "batch": batch,
                            "duration": s.throughput_seconds,
                        }
                        for part in _split(miners, 2)
                    ]
                    results, used, _ = await _timed_load(
                        server, "bench.load_clients:throughput", args, 300
                    )
                    confirmed = sum(r["confirmed"] for r in results)
                    seconds = max(r["seconds"] for r in results)
                    errors: dict[str, int] = {}
                    for r in results:
                        for k, v in r["errors"].items():
                            errors[k] = errors.get(k, 0) + v
                    rows.append(
                        {
                            "variant": label,
                            "kind": "ours",
                            "miners": miners,
                            "per_s": confirmed / seconds if seconds else 0.0,
                            "messages_per_s": sum(r["messages"] for r in results)
                            / seconds,
                            "stub_cpu": used["cpu_s"] / used["seconds"],
                            "errors": errors,
                        }
                    )

    def best(mode: str, miners: int) -> float:
        return max(
            (
                r["per_s"]
                for r in rows
                if r["miners"] == miners and r["variant"].startswith(mode)
            ),
            default=float("nan"),
        )

    goal = 50 if 50 in s.throughput_miners else s.throughput_miners[-1]
    return {
        "title": "Throughput: confirmed predictions per second",
        "setup": (
            f"{', '.join(map(str, s.throughput_miners))} miners, each its own "
            "hotkey and connection (WebSocket, or one keep-alive aiohttp session "
            "per miner), closed loop: send, await the confirmation, send again, "
            f"for {s.throughput_seconds:g} s; clients split over 2 processes, "
            "the stub in a third, on 2 cores; every answer's signature checked. "
            f"{STUB_LIMITS}; {NODELAY}. stub_cpu is cores used by the stub."
        ),
        "rows": rows,
        "columns": ["miners", "per_s", "messages_per_s", "stub_cpu"],
        "targets": [
            target(
                f"WebSocket with {goal} miners",
                best("WebSocket", goal),
                6000,
                at_most=False,
                unit="/s",
            ),
            target(
                f"HTTP with {goal} miners",
                best("HTTP", goal),
                2000,
                at_most=False,
                unit="/s",
            ),
        ],
    }


# -- 3. push --


def _push_times(
    arrivals: list[list[float]], starts: list[float], gap: float
) -> list[dict[str, float]]:
    """Per round: how long until the first, median and last miner had the push."""
    rounds = []
    for start in starts:
        delays = []
        for times in arrivals:
            hit = [t - start for t in times if start <= t < start + gap]
            if hit:
                delays.append(min(hit))
        delays.sort()
        rounds.append(
            {
                "reached": len(delays),
                "p50_ms": percentile(delays, 0.5) * 1000,
                "last_ms": delays[-1] * 1000 if delays else float("nan"),
            }
        )
    return rounds


async def _push_run(
    server: ChildServer,
    mode: str,
    miners: int,
    ctx: Context,
    trigger: Any,
) -> dict[str, Any]:
    s = ctx.sizes
    parts = 1 if miners <= 100 else 2
    max_seconds = 120 + s.push_rounds * s.push_gap
    workers = [
        await Worker(
            "bench.load_clients:push_receivers",
            {
                "url": server.ws_url if mode == "floor" else server.url,
                "mode": mode,
                "scenario": f"push-{mode}-{miners}",
                "indices": part,
                "max_seconds": max_seconds,
            },
            max_seconds + 60,
        ).start()
        for part in _split(miners, parts)
    ]
    for w in workers:
        await w.event("ready", timeout=180)
    await asyncio.sleep(0.5)
    starts: list[float] = []
    calls: list[float] = []
    for r in range(s.push_rounds):
        started = time.time()
        calls.append(await trigger(r))
        starts.append(started)
        await asyncio.sleep(s.push_gap)
    for w in workers:
        await w.stop()
    arrivals: list[list[float]] = []
    for w in workers:
        arrivals.extend((await w.result())["arrivals"])
    rounds = _push_times(arrivals, starts, s.push_gap)
    return {
        "miners": miners,
        "reached": min(r["reached"] for r in rounds),
        "p50_ms": median([r["p50_ms"] for r in rounds]),
        "last_ms": median([r["last_ms"] for r in rounds]),
        "call_ms": median(calls) * 1000,
        "rounds": rounds,
    }


async def push(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    rows: list[dict[str, Any]] = []
    for miners in s.push_miners:
        for mode in ("ws", "longpoll"):
            async with stub(ctx, f"push-{mode}-{miners}") as server:
                game = (await games_of(server.url))[0]

                async def odds(r: int, url: str = server.url, g: Any = game) -> float:
                    started = time.perf_counter()
                    await control(
                        url,
                        "/control/odds",
                        {
                            "game_id": g.game_id,
                            "odds_a": round(g.odds_a + 0.01 * (r + 1), 2),
                            "odds_b": g.odds_b,
                            **({"odds_tie": g.odds_tie} if g.can_tie else {}),
                        },
                    )
                    return time.perf_counter() - started

                result = await _push_run(server, mode, miners, ctx, odds)
            rows.append(
                {
                    "variant": "stub, WebSocket push"
                    if mode == "ws"
                    else "stub, HTTP long-poll",
                    "kind": "ours",
                    **result,
                }
            )

        async with serve("ws-echo", "--no-compression") as server:
            from websockets.asyncio.client import connect

            async with connect(server.ws_url, compression=None) as ctl:

                async def broadcast(r: int, ws: Any = ctl) -> float:
                    await ws.send("broadcast 700")
                    return float(json.loads(await ws.recv())["call_s"])

                result = await _push_run(server, "floor", miners, ctx, broadcast)
        rows.append(
            {
                "variant": "bare websockets broadcast (700 bytes)",
                "kind": "floor",
                **result,
            }
        )

    targets = []
    big = max(s.push_miners)
    at = {(r["variant"], r["miners"]): r for r in rows}
    floor = at[("bare websockets broadcast (700 bytes)", big)]["last_ms"]
    for r in rows:
        r["ratio_to_floor"] = (
            r["last_ms"]
            / at[("bare websockets broadcast (700 bytes)", r["miners"])]["last_ms"]
        )
    targets.append(
        target(
            f"WebSocket push to all {big} within 1.25x the floor",
            at[("stub, WebSocket push", big)]["last_ms"],
            1.25 * floor,
            unit="ms",
        )
    )
    targets.append(
        target(
            f"long-poll push to all {big} within 0.5 s",
            at[("stub, HTTP long-poll", big)]["last_ms"],
            500.0,
            unit="ms",
        )
    )
    return {
        "title": "Push: one game update to every connected miner",
        "setup": (
            f"{' and '.join(map(str, s.push_miners))} miners connected (hello "
            "done, or long-poll held); POST /control/odds changes one game's odds; "
            "each miner timestamps the frame's arrival (wall clock, same machine); "
            f"median of {s.push_rounds} rounds {s.push_gap:g} s apart. Receivers "
            "in 1 process (2 above 100 miners), the server in another. call_ms: "
            "the control request (stub) or the broadcast() call (floor). "
            f"{NODELAY}."
        ),
        "rows": rows,
        "columns": [
            "miners",
            "reached",
            "p50_ms",
            "last_ms",
            "call_ms",
            "ratio_to_floor",
        ],
        "targets": targets,
    }


# -- 4. capacity --


async def _hold(
    server: ChildServer, mode: str, miners: int, ctx: Context
) -> dict[str, Any]:
    await asyncio.sleep(0.5)
    before = server.sample()
    parts = max(1, math.ceil(miners / 2500))
    started = time.monotonic()
    workers = [
        await Worker(
            "bench.load_clients:hold_idle",
            {
                "url": server.ws_url if mode == "floor" else server.url,
                "mode": mode,
                "scenario": f"cap-{miners}",
                "indices": part,
                "max_seconds": 300,
            },
            400,
        ).start()
        for part in _split(miners, parts)
    ]
    ready = [await w.event("ready", timeout=300) for w in workers]
    connect_s = time.monotonic() - started
    await asyncio.sleep(2.0)
    after = server.sample()
    health = await get_json(server.url + "/ws/health") if mode == "ws" else {}
    for w in workers:
        await w.stop()
    results = [await w.result() for w in workers]
    held = sum(r["held"] for r in ready)
    return {
        "miners": miners,
        "held": held,
        "still_open": sum(r["still_open"] for r in results),
        "failed": sum(r["failed"] for r in ready),
        "first_failure": next(
            (r["first_failure"] for r in results if r["first_failure"]), None
        ),
        "connect_s": connect_s,
        "rss_before_mib": before.rss_kib / 1024,
        "rss_after_mib": after.rss_kib / 1024,
        "kib_per_miner": (after.rss_kib - before.rss_kib) / max(held, 1),
        "fds": after.fds,
        "stub_active_connections": health.get("active_connections"),
    }


async def capacity(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    rows: list[dict[str, Any]] = []
    for miners in s.capacity_miners:
        async with stub(ctx, f"capacity-{miners}") as server:
            rows.append(
                {
                    "variant": "stub, idle miners after hello",
                    "kind": "ours",
                    **await _hold(server, "ws", miners, ctx),
                }
            )
        async with serve("ws-echo", "--no-compression") as server:
            rows.append(
                {
                    "variant": "bare websockets server, idle connections",
                    "kind": "floor",
                    **await _hold(server, "floor", miners, ctx),
                }
            )
    big = max(s.capacity_miners)
    at = {(r["kind"], r["miners"]): r for r in rows}
    for r in rows:
        r["ratio_to_floor"] = (
            r["kib_per_miner"] / at[("floor", r["miners"])]["kib_per_miner"]
        )
    ours, floor = at[("ours", big)], at[("floor", big)]
    return {
        "title": "Capacity: idle WebSocket miners held by one stub process",
        "setup": (
            f"{' and '.join(map(str, s.capacity_miners))} miners, each its own "
            "hotkey, connect without compression (as our client does), send hello "
            "with a 1-hour heartbeat interval and stay idle; clients in "
            "1 process per 2,500 miners, the stub in its own with RLIMIT_NOFILE "
            "raised; memory is the stub's resident set after minus before, "
            f"per miner held. {STUB_LIMITS}."
        ),
        "rows": rows,
        "columns": [
            "miners",
            "held",
            "connect_s",
            "rss_after_mib",
            "kib_per_miner",
            "ratio_to_floor",
        ],
        "targets": [
            target(
                f"all {big} held",
                float(ours["held"]),
                float(big),
                at_most=False,
                unit="miners",
            ),
            target(
                f"{big} miners in at most 2x the floor's memory",
                ours["rss_after_mib"] - ours["rss_before_mib"],
                2 * (floor["rss_after_mib"] - floor["rss_before_mib"]),
                unit="MiB",
            ),
        ],
    }


# -- 5 and 6. bytes and power --


async def _bytes_per_round_trip(
    ctx: Context, url: str, target_fn: str, **args: Any
) -> tuple[float, int]:
    """Bytes of one round trip: a run of K minus a run of 0, over K."""
    import importlib

    module, name = target_fn.split(":")
    func = getattr(importlib.import_module(module), name)
    totals = []
    for n in (0, ctx.sizes.bytes_round_trips):
        proxy = await CountingProxy(int(url.rsplit(":", 1)[1])).start()
        try:
            extra = dict(args)
            if "store" in extra:
                extra["store"] = ctx.path("bytes-store")
            await func(
                None, url=f"http://127.0.0.1:{proxy.port}", n=n, warmup=0, **extra
            )
            await asyncio.sleep(0.2)
        finally:
            await proxy.close()
        totals.append(proxy.up + proxy.down)
    per = (totals[1] - totals[0]) / ctx.sizes.bytes_round_trips
    return per, totals[0]


async def bytes_per_prediction(ctx: Context) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    variants = [
        ("raw WebSocket", "bench.latency_clients:stub_ws", {}),
        (
            "our WebSocket transport",
            "bench.client_clients:transport_latency",
            {"kind": "websocket"},
        ),
        (
            "our HTTP transport (httpx over aiohttp)",
            "bench.client_clients:transport_latency",
            {"kind": "http-aiohttp"},
        ),
        (
            "our HTTP transport (httpx default)",
            "bench.client_clients:transport_latency",
            {"kind": "http-httpx"},
        ),
        (
            "cold HTTP, new httpx client per prediction",
            "bench.latency_clients:stub_http",
            {"client": "httpx", "cold": True},
        ),
        (
            "MinerClient over WebSocket",
            "bench.client_clients:client_latency",
            {"store": "", "expect": "websocket"},
        ),
    ]
    async with stub(ctx, "bytes") as server:
        for label, fn, args in variants:
            per, setup_bytes = await _bytes_per_round_trip(ctx, server.url, fn, **args)
            rows.append(
                {
                    "variant": label,
                    "kind": "ours",
                    "bytes_per_prediction": per,
                    "connect_bytes": setup_bytes,
                }
            )
    async with stub(ctx, "bytes-http") as server:
        await control(server.url, "/control/websocket", {"enabled": False})
        per, setup_bytes = await _bytes_per_round_trip(
            ctx,
            server.url,
            "bench.client_clients:client_latency",
            store="",
            expect="http",
        )
        rows.append(
            {
                "variant": "MinerClient over HTTP fallback",
                "kind": "ours",
                "bytes_per_prediction": per,
                "connect_bytes": setup_bytes,
            }
        )
    return {
        "title": "Bytes per prediction round trip",
        "setup": (
            "Counted at the socket by a TCP relay between client and stub, both "
            "ways: HTTP headers, WebSocket frame headers and handshakes included, "
            "TCP/IP headers not. Per prediction = (bytes of a run of "
            f"{ctx.sizes.bytes_round_trips} round trips - bytes of a run of 0) / "
            f"{ctx.sizes.bytes_round_trips}; connect_bytes is the run of 0 "
            "(handshake, hello, snapshot of 60 games). Idle bytes per hour are "
            "in the power table."
        ),
        "rows": rows,
        "columns": ["bytes_per_prediction", "connect_bytes"],
        "targets": [],
    }


async def power(ctx: Context) -> dict[str, Any]:
    """Idle clients side by side, each in its own process behind its own proxy."""
    s = ctx.sizes
    window = s.idle_seconds
    rows: list[dict[str, Any]] = []
    async with (
        stub(ctx, "power-ws") as ws_stub,
        stub(ctx, "power-http") as http_stub,
    ):
        await control(http_stub.url, "/control/websocket", {"enabled": False})
        plans = [
            (
                "MinerClient, WebSocket, active power state",
                ws_stub,
                "ours",
                "bench.client_clients:client_idle",
                {"expect": "websocket", "power": "active"},
            ),
            (
                "MinerClient, WebSocket, idle power state",
                ws_stub,
                "ours",
                "bench.client_clients:client_idle",
                {"expect": "websocket", "power": "idle"},
            ),
            (
                "MinerClient, HTTP long-poll, idle power state",
                http_stub,
                "ours",
                "bench.client_clients:client_idle",
                {"expect": "http", "power": "idle"},
            ),
            (
                "naive 5-second polling of GET /v1/games (the study's baseline)",
                ws_stub,
                "baseline",
                "bench.client_clients:naive_poller",
                {"interval": 5.0},
            ),
        ]
        proxies = []
        workers = []
        for _label, server, _kind, fn, args in plans:
            proxy = await CountingProxy(server.port).start()
            extra = dict(args)
            if fn.endswith("client_idle"):
                extra["store"] = ctx.path("idle-store")
            extra["url"] = f"http://127.0.0.1:{proxy.port}"
            extra["max_seconds"] = window + 120
            proxies.append(proxy)
            workers.append(await Worker(fn, extra, window + 180).start())
        for w in workers:
            await w.event("ready", timeout=120)
        # Let start-up traffic settle before the window opens.
        await asyncio.sleep(2.0)
        before = [proc_sample(w.pid) for w in workers]
        bytes_before = [p.up + p.down for p in proxies]
        await asyncio.sleep(window)
        after = [proc_sample(w.pid) for w in workers]
        bytes_after = [p.up + p.down for p in proxies]
        for w in workers:
            await w.stop()
        for w in workers:
            await w.result()
        for p in proxies:
            await p.close()
        for i, (label, _server, kind, _fn, _args) in enumerate(plans):
            used = after[i].minus(before[i])
            switches = used["voluntary_switches"] + used["involuntary_switches"]
            window_bytes = bytes_after[i] - bytes_before[i]
            rows.append(
                {
                    "variant": label,
                    "kind": kind,
                    "cpu_s": used["cpu_s"],
                    "cpu_ms_per_min": 1000 * used["cpu_s"] * 60 / used["seconds"],
                    "cpu_percent": 100 * used["cpu_s"] / used["seconds"],
                    "switches_per_min": switches * 60 / used["seconds"],
                    "bytes_in_window": window_bytes,
                    "bytes_per_hour": window_bytes * 3600 / used["seconds"],
                    "rss_mib": after[i].rss_kib / 1024,
                }
            )
    poller = rows[-1]
    for r in rows:
        r["cpu_vs_poller"] = r["cpu_s"] / poller["cpu_s"] if poller["cpu_s"] else None
    return {
        "title": "Power: one idle miner client",
        "setup": (
            f"All four clients at once, each in its own process behind its own "
            f"counting relay, measured over the same {window:g} s window after "
            "they connected and settled; CPU from /proc/PID/task/*/schedstat, "
            "context switches from /proc/PID/task/*/status (voluntary + not), "
            "bytes both ways at the socket, extrapolated to an hour. Heartbeat "
            "intervals: 15 s active, 45 s idle; long-poll hold 25 s. "
            f"{NODELAY}."
        ),
        "rows": rows,
        "columns": [
            "cpu_s",
            "cpu_ms_per_min",
            "cpu_percent",
            "switches_per_min",
            "bytes_per_hour",
            "cpu_vs_poller",
        ],
        "targets": [
            target(
                "idle WebSocket client CPU at most 1/10 of the naive poller's",
                rows[1]["cpu_s"],
                poller["cpu_s"] / 10,
                unit="s",
            )
        ],
    }


# -- 7. steady state --


async def steady(ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    rows: list[dict[str, Any]] = []
    for mode in ("ws", "http"):
        async with stub(ctx, f"steady-{mode}") as server:
            games = await games_of(server.url)
            proxy = await CountingProxy(server.port).start()
            worker = await Worker(
                "bench.load_clients:steady",
                {
                    "url": f"http://127.0.0.1:{proxy.port}",
                    "mode": mode,
                    "scenario": f"steady-{mode}",
                    "indices": list(range(s.steady_miners)),
                    "duration": s.steady_seconds,
                    "mean_gap": s.steady_gap,
                },
                s.steady_seconds + 180,
            ).start()
            await worker.event("ready", timeout=120)
            await asyncio.sleep(0.2 if s.smoke else 1.0)
            before = server.sample()
            counted = proxy.counters()
            await worker.send("go")
            rng = random.Random(11)
            peak_rss = before.rss_kib
            peak_fds = before.fds
            odds_changes = 0
            deadline = time.monotonic() + s.steady_seconds
            async with aiohttp.ClientSession() as session:
                while time.monotonic() < deadline:
                    g = rng.choice(games)
                    step = rng.choice((-0.02, -0.01, 0.01, 0.02))
                    body = {
                        "game_id": g.game_id,
                        "odds_a": round(max(1.05, g.odds_a + step), 2),
                        "odds_b": g.odds_b,
                        **({"odds_tie": g.odds_tie} if g.can_tie else {}),
                    }
                    async with session.post(
                        server.url + "/control/odds", json=body
                    ) as response:
                        await response.read()
                    odds_changes += 1
                    sample = server.sample()
                    peak_rss = max(peak_rss, sample.rss_kib)
                    peak_fds = max(peak_fds, sample.fds)
                    await asyncio.sleep(1.0 / s.steady_odds_per_s)
            result = await worker.result()
            after = server.sample()
            used = after.minus(before)
            now = proxy.counters()
            await proxy.close()
        seconds = used["seconds"]
        rows.append(
            {
                "variant": "WebSocket"
                if mode == "ws"
                else "HTTP keep-alive + long-poll",
                "kind": "ours",
                "stub_cpu_percent": 100 * used["cpu_s"] / seconds,
                "stub_rss_mib": peak_rss / 1024,
                "stub_fds": peak_fds,
                "connections_per_s": (now["connections"] - counted["connections"])
                / seconds,
                "mb_per_hour": (now["total"] - counted["total"]) * 3600 / seconds / 1e6,
                "mb_per_hour_per_miner": (now["total"] - counted["total"])
                * 3600
                / seconds
                / 1e6
                / s.steady_miners,
                "predictions": result["submitted"],
                "accepted": result["accepted"],
                "rejected": result["rejected"],
                "pushes_received": result["pushes"],
                "odds_changes": odds_changes,
                "client_failures": result["failures"],
            }
        )
    return {
        "title": "Steady state: the study's own setup",
        "setup": (
            f"{s.steady_miners} miners in one client process, each submitting a "
            f"prediction at random (exponential) gaps of {s.steady_gap:g} s on "
            "average with the odds it last heard, and receiving every game "
            f"update; {s.steady_odds_per_s:g} odds changes a second driven through "
            f"/control/odds; {s.steady_seconds:g} s per transport. The miners "
            "reach the stub through a counting relay (connections and bytes). "
            f"stub_cpu_percent is of one core. {NODELAY}."
        ),
        "rows": rows,
        "columns": [
            "stub_cpu_percent",
            "stub_rss_mib",
            "stub_fds",
            "connections_per_s",
            "mb_per_hour",
            "mb_per_hour_per_miner",
            "predictions",
            "pushes_received",
        ],
        "targets": [],
    }


# -- 8. the app --


async def app(ctx: Context) -> dict[str, Any]:
    from bench import app_scenario

    title = "The app: start, key press, idle"
    why = app_scenario.available()
    if why is not None:
        return {"title": title, "not_measured": why, "rows": [], "targets": []}
    s = ctx.sizes
    async with stub(ctx, "app") as server:
        games = await games_of(server.url)
        # A smoke run takes its one cold start from the key-press run below.
        cold = [] if s.smoke else await app_scenario.cold_start(ctx, server, games, 3)
        # The window opens after the app's switch to idle power (60 s).
        idle = await app_scenario.idle_in_pty(
            ctx,
            server,
            games,
            settle=0.5 if s.smoke else 65.0,
            window=s.app_idle_seconds,
        )
    many = 300 if s.smoke else 5000
    odds_rate = 20.0 if s.smoke else 100.0
    async with stub(ctx, "app-many", games=many) as server:
        games = await games_of(server.url)
        keys = await app_scenario.key_to_repaint(
            ctx, server, games, 2 if s.smoke else 10, odds_rate
        )
    if s.smoke:
        cold = [keys["startup_s"]]
    # The table's own benchmark takes a minute; a smoke run leaves it out.
    table = [] if s.smoke else await app_scenario.game_table_bench(s.smoke)
    rows = [
        {
            "variant": "cold start: spawn to first games on screen (median)",
            "kind": "ours",
            "value": median(cold) * 1000 if cold else None,
            "unit": "ms",
        },
        {
            "variant": f"key press to repaint (p/g screen switch), {many:,} games, "
            f"{keys['odds_per_s']:.0f} odds changes/s: median",
            "kind": "ours",
            "value": keys["p50_ms"],
            "unit": "ms",
        },
        {
            "variant": "key press to repaint: slowest",
            "kind": "ours",
            "value": keys["max_ms"],
            "unit": "ms",
        },
        {
            "variant": "idle CPU",
            "kind": "ours",
            "value": idle["cpu_percent"],
            "unit": "% of a core",
        },
        {
            "variant": "idle context switches",
            "kind": "ours",
            "value": idle["switches_per_min"],
            "unit": "per minute",
        },
        {
            "variant": "idle bytes written to the terminal",
            "kind": "ours",
            "value": idle["bytes_per_min"],
            "unit": "bytes/min",
        },
        {
            "variant": "bytes written from first paint to the idle window "
            "(the 60 s switch to idle power)",
            "kind": "ours",
            "value": idle["settle_bytes"],
            "unit": "bytes",
            "writes": idle["settle_writes"],
        },
    ]
    notes = []
    if table:
        notes.append(
            "The game table's own benchmark (`python -m bench.bench_game_table`, "
            "headless 120x40, written by the table's engineer), run as part of "
            "this run:\n\n```\n" + "\n".join(table) + "\n```"
        )
    return {
        "title": title,
        "setup": (
            f"The app (`python -m app --validator URL`) against a stub in its own "
            f"process. Cold start and key presses in a {app_scenario.SIZE[0]}x"
            f"{app_scenario.SIZE[1]} tmux pane, detected by polling `tmux "
            "capture-pane` (a few ms of resolution; cold start runs "
            f"{1 if s.smoke else 3} times, {keys['presses']} key presses, "
            f"{keys['missed']} missed). Idle: the app alone in a pty we read, "
            f"{s.app_idle_seconds:g} s window opening "
            f"{0.5 if s.smoke else 65:g} s after it showed its games (after its "
            "60 s switch to the idle power state); "
            "odds frozen (stub speed 0). " + NODELAY + "."
        ),
        "rows": rows,
        "columns": ["value", "unit"],
        "targets": [
            target("app idle CPU", idle["cpu_percent"], 0.5, unit="% of a core"),
            target(
                "app writes nothing to the terminal while nothing changes",
                idle["bytes_per_min"],
                0.0,
                unit="bytes/min",
            ),
        ],
        "notes": notes,
    }


SCENARIOS = {
    "latency": latency,
    "throughput": throughput,
    "push": push,
    "capacity": capacity,
    "power": power,
    "bytes": bytes_per_prediction,
    "steady": steady,
    "app": app,
}
