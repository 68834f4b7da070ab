"""Profiles behind the missed targets: py-spy on the process that limits them.

``python -m bench.profile NAME [NAME ...]`` re-creates one scenario's load,
samples the limiting process with ``py-spy record`` (raw stacks, 250 Hz,
idle time left out) and writes a summary to
``bench/results/profiles/NAME.txt``: the functions where the samples sit
(self) and the functions on the stack (inclusive), as shares of the samples.
``bench/analysis.md`` quotes these. Names:

- ``client-ws-latency``: `MinerClient` submit to confirmation over WebSocket,
  one at a time (the client process).
- ``stub-ws-latency``: the stub answering those same predictions.
- ``stub-throughput-ws``: the stub under 50 WebSocket miners sending single
  predictions in a closed loop.
- ``stub-push-1000``: the stub pushing odds changes to 1,000 WebSocket miners.
- ``stub-memory-2000``: tracemalloc's top allocation sites in the stub holding
  2,000 idle WebSocket miners.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, Worker
from bench.scenarios import FULL, Context, _split, control, games_of, stub

OUT = ROOT / "bench" / "results" / "profiles"


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return found


async def record(pid: int, seconds: float, raw: Path) -> asyncio.subprocess.Process:
    """Start sampling ``pid`` for ``seconds``; await the returned process."""
    return await asyncio.create_subprocess_exec(
        _py_spy(),
        "record",
        "-p",
        str(pid),
        "-d",
        str(int(seconds)),
        "-r",
        "250",
        "-f",
        "raw",
        "-o",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def summarize(raw: Path, title: str, top: int = 25) -> str:
    """Self and inclusive shares of the sampled functions, as text."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + _where(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"# {title}", f"samples: {total} (250 Hz, idle excluded)", ""]
    lines.append("## where the samples sit (self)")
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    lines.append("")
    lines.append("## on the stack (inclusive)")
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"


def _where(frame: str) -> str:
    # "func (path/to/file.py:123)" -> " (file.py)": group a function's lines.
    if "(" not in frame:
        return ""
    path = frame.rsplit("(", 1)[1].rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f" ({short})"


async def _profile_worker_load(
    name: str,
    title: str,
    target: str,
    args_list: list[dict[str, Any]],
    server: Any,
    which: str,
    seconds: float,
) -> str:
    """Start workers, sample the server (or the first worker), return the summary."""
    workers = [await Worker(target, a, 600).start() for a in args_list]
    for w in workers:
        await w.event("ready", timeout=300)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.txt"
        pid = server.pid if which == "server" else workers[0].pid
        spy = await record(pid, seconds, raw)
        for w in workers:
            await w.send("go")
        await spy.wait()
        for w in workers:
            await w.stop()
        for w in workers:
            await w.result()
        return summarize(raw, title)


async def run(names: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(FULL, Path(tmp))
        for name in names:
            text = await PROFILES[name](ctx)
            (OUT / f"{name}.txt").write_text(text)
            print(text)


async def _latency(ctx: Context, which: str) -> str:
    async with stub(ctx, "profile-latency") as server:
        args = {
            "url": server.url,
            "n": 4000,
            "warmup": 0,
            "store": ctx.path("profile-client"),
            "expect": "websocket",
            "ready_first": True,
        }
        return await _profile_worker_load(
            f"{which}-ws-latency",
            f"{'MinerClient' if which == 'client' else 'stub'}: WebSocket "
            "submit to confirmation, one at a time",
            "bench.client_clients:client_latency",
            [args],
            server,
            "server" if which == "stub" else "worker",
            6,
        )


async def _throughput(ctx: Context) -> str:
    async with stub(ctx, "profile-throughput") as server:
        args = [
            {
                "url": server.url,
                "mode": "ws",
                "scenario": "profile-tp",
                "indices": part,
                "batch": 1,
                "duration": 8.0,
            }
            for part in _split(50, 2)
        ]
        return await _profile_worker_load(
            "stub-throughput-ws",
            "stub: 50 WebSocket miners, single predictions, closed loop",
            "bench.load_clients:throughput",
            args,
            server,
            "server",
            6,
        )


async def _push(ctx: Context) -> str:
    async with stub(ctx, "profile-push") as server:
        game = (await games_of(server.url))[0]
        workers = [
            await Worker(
                "bench.load_clients:push_receivers",
                {
                    "url": server.url,
                    "mode": "ws",
                    "scenario": "profile-push",
                    "indices": part,
                    "max_seconds": 120,
                },
                200,
            ).start()
            for part in _split(1000, 2)
        ]
        for w in workers:
            await w.event("ready", timeout=180)
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.txt"
            spy = await record(server.pid, 8, raw)
            for r in range(30):
                await control(
                    server.url,
                    "/control/odds",
                    {
                        "game_id": game.game_id,
                        "odds_a": round(game.odds_a + 0.01 * (1 + r % 5), 2),
                        "odds_b": game.odds_b,
                        **({"odds_tie": game.odds_tie} if game.can_tie else {}),
                    },
                )
                await asyncio.sleep(0.25)
            await spy.wait()
            for w in workers:
                await w.stop()
            for w in workers:
                await w.result()
            return summarize(raw, "stub: odds pushes to 1,000 WebSocket miners")


async def _memory(ctx: Context) -> str:
    """Where the stub's memory per idle miner goes (tracemalloc, 2,000 miners)."""
    import os
    import signal

    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "memory.txt"
        os.environ["BENCH_TRACEMALLOC"] = str(dump)
        try:
            async with stub(ctx, "profile-memory") as server:
                before = server.sample()
                workers = [
                    await Worker(
                        "bench.load_clients:hold_idle",
                        {
                            "url": server.url,
                            "mode": "ws",
                            "scenario": "profile-memory",
                            "indices": part,
                            "max_seconds": 120,
                        },
                        200,
                    ).start()
                    for part in _split(2000, 2)
                ]
                for w in workers:
                    await w.event("ready", timeout=180)
                await asyncio.sleep(2)
                after = server.sample()
                os.kill(server.pid, signal.SIGUSR1)
                await asyncio.sleep(3)
                for w in workers:
                    await w.stop()
                for w in workers:
                    await w.result()
        finally:
            os.environ.pop("BENCH_TRACEMALLOC", None)
        grown = (after.rss_kib - before.rss_kib) / 2000
        head = (
            "# stub: Python allocations with 2,000 idle WebSocket miners "
            "(tracemalloc, top sites by size, 4 frames each)\n"
            f"RSS grew {grown:.1f} KiB per miner (with tracemalloc's own overhead)\n\n"
        )
        return head + dump.read_text()


PROFILES = {
    "client-ws-latency": lambda ctx: _latency(ctx, "client"),
    "stub-ws-latency": lambda ctx: _latency(ctx, "stub"),
    "stub-throughput-ws": _throughput,
    "stub-push-1000": _push,
    "stub-memory-2000": _memory,
}


def main() -> None:
    names = sys.argv[1:] or list(PROFILES)
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        raise SystemExit(
            f"unknown profile(s): {', '.join(unknown)}; have {list(PROFILES)}"
        )
    asyncio.run(run(names))


if __name__ == "__main__":
    main()
