"""Scenario 8: the Textual app as a person meets it, in a real terminal.

- Cold start: ``python -m app --validator URL`` in a 120x40 tmux pane, from
  spawning the process to the first game's teams on the screen (polling
  ``tmux capture-pane`` every few milliseconds, so the resolution is that).
- Key press to repaint: with 5,000 games and 100 odds changes a second
  driven through the stub's controls, press ``p`` (predictions screen) then
  ``g`` (games screen) and time each until its screen shows.
- Idle: the app in a pseudo-terminal we own, with nothing changing: CPU from
  /proc and every byte it writes to the terminal, over a window.
- The game table's own benchmark (`bench.bench_game_table`, GameTable
  against Textual's DataTable), run as it is and quoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import PYTHON, ROOT, _child_env, median, proc_sample

# One pane name per harness process, so parallel runs never share a pane.
PANE = f"bench-app-{os.getpid()}"
SIZE = (120, 40)


def _tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, check=False
    ).stdout


def _screen() -> str:
    return _tmux("capture-pane", "-p", "-t", PANE)


async def _wait_for_text(texts: list[str], timeout: float) -> float | None:
    """Seconds until any of ``texts`` is on the pane, or None after ``timeout``."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        screen = _screen()
        if any(t in screen for t in texts):
            return time.perf_counter() - started
        await asyncio.sleep(0.002)
    return None


def _app_command(url: str, data_dir: str) -> list[str]:
    return [PYTHON, "-m", "app", "--validator", url, "--data-dir", data_dir]


async def _odds_driver(
    url: str, games: list[Any], per_s: float, stop: asyncio.Event, lanes: int = 4
) -> tuple[int, float]:
    """Change odds ``per_s`` times a second over ``lanes`` concurrent senders.

    Returns how many changes were sent and over how many seconds.
    """
    sent = 0

    async def lane(first: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent
        started = time.monotonic()
        k = 0
        while not stop.is_set():
            g = games[(first + k * lanes) % len(games)]
            body = {
                "game_id": g.game_id,
                "odds_a": round(g.odds_a + 0.01 * (1 + k % 3), 2),
                "odds_b": g.odds_b,
                **({"odds_tie": g.odds_tie} if g.can_tie else {}),
            }
            async with session.post(url + "/control/odds", json=body) as response:
                await response.read()
            k += 1
            sent += 1
            # Pace against the clock so slow requests do not lower the rate.
            ahead = started + k * lanes / per_s - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(lane(i, session) for i in range(lanes)))
    return sent, time.monotonic() - started


def _team_texts(games: list[Any]) -> list[str]:
    return [f"{g.team_a} v {g.team_b}" for g in games[:200]]


async def tmux_session(url: str, data_dir: str) -> float:
    """Start the app in a fresh tmux pane; return when it was spawned."""
    _tmux("kill-session", "-t", PANE)
    env = " ".join(
        f"{k}={v}"
        for k, v in {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}.items()
    )
    command = env + " " + " ".join(_app_command(url, data_dir))
    spawned = time.perf_counter()
    _tmux(
        "new-session", "-d", "-s", PANE, "-x", str(SIZE[0]), "-y", str(SIZE[1]), command
    )
    return spawned


async def cold_start(ctx: Any, server: Any, games: list[Any], runs: int) -> list[float]:
    """Seconds from spawning the app to its first games on screen, ``runs`` times."""
    times = []
    for i in range(runs):
        data_dir = str(ctx.workdir / f"app-cold-{i}")
        await tmux_session(server.url, data_dir)
        started = time.perf_counter()
        took = await _wait_for_text(_team_texts(games), 60)
        if took is not None:
            times.append(time.perf_counter() - started)
        _tmux("kill-session", "-t", PANE)
        await asyncio.sleep(0.3)
    return times


async def key_to_repaint(
    ctx: Any, server: Any, games: list[Any], presses: int, odds_per_s: float
) -> dict[str, Any]:
    """Time ``p`` (predictions) and ``g`` (games) screen switches under odds load."""
    spawned = await tmux_session(server.url, str(ctx.workdir / "app-keys"))
    if await _wait_for_text(_team_texts(games), 90) is None:
        _tmux("kill-session", "-t", PANE)
        raise RuntimeError("the app never showed games")
    startup_s = time.perf_counter() - spawned
    await asyncio.sleep(1.0)
    stop = asyncio.Event()
    driver = asyncio.create_task(_odds_driver(server.url, games, odds_per_s, stop))
    await asyncio.sleep(1.0)
    samples: list[float] = []
    missed = 0
    for _ in range(presses):
        for key, texts in (("p", ["Fate:"]), ("g", ["Sort:"])):
            t0 = time.perf_counter()
            _tmux("send-keys", "-t", PANE, key)
            took = await _wait_for_text(texts, 10)
            if took is None:
                missed += 1
            else:
                samples.append(time.perf_counter() - t0)
            await asyncio.sleep(0.2)
    stop.set()
    sent, driven = await driver
    _tmux("kill-session", "-t", PANE)
    samples.sort()
    return {
        "presses": len(samples),
        "missed": missed,
        "p50_ms": median(samples) * 1000 if samples else None,
        "max_ms": samples[-1] * 1000 if samples else None,
        "odds_per_s": sent / driven,
        "startup_s": startup_s,
    }


async def idle_in_pty(
    ctx: Any, server: Any, games: list[Any], settle: float, window: float
) -> dict[str, Any]:
    """CPU and terminal bytes of the app sitting idle in a pty we read.

    The window opens ``settle`` seconds after the games appear; to measure
    the app at rest it must open after the app's own switch to the idle
    power state (60 s without input), which changes the status line once.
    Bytes written between the first games and the window are reported too.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    env = _child_env()
    env["TERM"] = "xterm-256color"
    proc = subprocess.Popen(
        _app_command(server.url, str(ctx.workdir / "app-idle")),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(slave)
    written = 0
    writes: list[tuple[float, int]] = []
    screen = bytearray()
    loop = asyncio.get_running_loop()

    def drain() -> None:
        nonlocal written
        with contextlib.suppress(OSError):
            data = os.read(master, 65536)
            written += len(data)
            writes.append((time.monotonic(), len(data)))
            if len(screen) < 4_000_000:
                screen.extend(data)

    loop.add_reader(master, drain)
    try:
        texts = [t.encode() for t in _team_texts(games)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(t in screen for t in texts):
            await asyncio.sleep(0.05)
        # Let the first screen finish drawing before counting.
        await asyncio.sleep(0.5)
        painted, bytes_painted = time.monotonic(), written
        await asyncio.sleep(settle)
        before = proc_sample(proc.pid)
        bytes_before = written
        await asyncio.sleep(window)
        after = proc_sample(proc.pid)
        used = after.minus(before)
        window_bytes = written - bytes_before
        settle_writes = [
            (round(t - painted, 1), n) for t, n in writes if painted <= t < before.at
        ]
    finally:
        loop.remove_reader(master)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(master)
    return {
        "cpu_s": used["cpu_s"],
        "cpu_percent": 100 * used["cpu_s"] / used["seconds"],
        "bytes": window_bytes,
        "bytes_per_min": window_bytes * 60 / used["seconds"],
        "settle_bytes": bytes_before - bytes_painted,
        "settle_writes": settle_writes[:20],
        "switches_per_min": (used["voluntary_switches"] + used["involuntary_switches"])
        * 60
        / used["seconds"],
        "seconds": used["seconds"],
    }


async def game_table_bench(smoke: bool) -> list[str]:
    """Run the table engineer's script and return its lines."""
    script = ROOT / "bench" / "bench_game_table.py"
    if not script.exists():
        return []
    sizes = ["--games", "200", "--changes", "10", "--repeats", "1"] if smoke else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bench_game_table",
        *sizes,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=_child_env(),
        cwd=ROOT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    return [line for line in out.decode().splitlines() if line.strip()]


def available() -> str | None:
    """Why the app scenario cannot run here, or None if it can."""
    if not (Path(ROOT) / "app" / "__main__.py").exists():
        return "the Textual app has not landed in app/"
    if shutil.which("tmux") is None:
        return "tmux is not installed (make system-deps installs it)"
    return None
