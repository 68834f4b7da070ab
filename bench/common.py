"""Shared pieces of the harness: statistics, /proc readings, child processes, proxy.

Child processes come in two kinds. A server (`bench.serve`) prints one line
``READY <port>`` and serves until it is terminated. A worker (`bench.worker`)
runs one async function of the harness with JSON arguments, reports events as
JSON lines on stdout while it runs (``ready`` when its clients are
connected, for example), stops when the parent writes ``stop`` on its stdin
or when its own time bound passes, and prints its result as the last line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# -- statistics --


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, interpolated."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def summarize_ms(samples_s: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds of round-trip times given in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "n": len(ms),
        "p50_ms": percentile(ms, 0.50),
        "p95_ms": percentile(ms, 0.95),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": sum(ms) / len(ms) if ms else float("nan"),
        "max_ms": ms[-1] if ms else float("nan"),
    }


def median(values: list[float]) -> float:
    return percentile(sorted(values), 0.5)


# -- /proc readings --


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process: CPU seconds, memory, descriptors, switches."""

    at: float
    cpu_s: float
    rss_kib: int
    fds: int
    voluntary_switches: int
    involuntary_switches: int

    def minus(self, earlier: ProcSample) -> dict[str, float]:
        """What happened between ``earlier`` and this sample."""
        return {
            "seconds": self.at - earlier.at,
            "cpu_s": self.cpu_s - earlier.cpu_s,
            "voluntary_switches": self.voluntary_switches - earlier.voluntary_switches,
            "involuntary_switches": self.involuntary_switches
            - earlier.involuntary_switches,
        }


def _cpu_seconds(pid: int) -> float:
    # Summing every thread's schedstat gives nanoseconds; /proc/PID/stat only
    # has 10 ms ticks, too coarse for an idle client.
    total_ns = 0
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            with contextlib.suppress(OSError):
                total_ns += int((task / "schedstat").read_text().split()[0])
    except OSError:
        total_ns = 0
    if total_ns:
        return total_ns / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _switches(pid: int) -> tuple[int, int]:
    # /proc/PID/status counts the main thread only; add up every thread.
    vol = invol = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    invol += int(line.split()[1])
    return vol, invol


def proc_sample(pid: int) -> ProcSample:
    """Read CPU time, resident memory, open descriptors and context switches."""
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    vol, invol = _switches(pid)
    return ProcSample(
        at=time.monotonic(),
        cpu_s=_cpu_seconds(pid),
        rss_kib=rss_pages * _PAGE_KIB,
        fds=fds,
        voluntary_switches=vol,
        involuntary_switches=invol,
    )


def raise_nofile() -> int:
    """Lift this process's open-file limit to its hard limit; return the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import platform

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for name in (
        "websockets",
        "uvicorn",
        "starlette",
        "httpx",
        "httpx-aiohttp",
        "aiohttp",
        "python-socketio",
        "msgspec",
        "bittensor-wallet",
        "textual",
    ):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
    }


# -- child processes --


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class ChildServer:
    """A server child process started by `serve`; ``port`` once it is ready."""

    kind: str
    proc: asyncio.subprocess.Process
    port: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def sample(self) -> ProcSample:
        return proc_sample(self.pid)


@contextlib.asynccontextmanager
async def serve(
    kind: str, *args: str, timeout: float = 30.0
) -> AsyncIterator[ChildServer]:
    """Start ``python -m bench.serve KIND ARGS`` and yield it once it listens."""
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "bench.serve",
        kind,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL
        if not os.environ.get("BENCH_DEBUG")
        else None,
        env=_child_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if not line.startswith(b"READY "):
            raise RuntimeError(f"server {kind} did not start: {line!r}")
        parts = line.split(maxsplit=2)
        info = json.loads(parts[2]) if len(parts) > 2 else {}
        yield ChildServer(kind, proc, int(parts[1]), info)
    finally:
        await _terminate(proc)


async def _terminate(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class Worker:
    """A client child process running one harness function (see `bench.worker`)."""

    def __init__(self, target: str, args: dict[str, Any], timeout: float):
        self.target = target
        self.args = args
        self.timeout = timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> Worker:
        self.proc = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            "bench.worker",
            self.target,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=None if os.environ.get("BENCH_DEBUG") else asyncio.subprocess.PIPE,
            env=_child_env(),
            cwd=ROOT,
            limit=64 * 1024 * 1024,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(self.args).encode() + b"\n")
        await self.proc.stdin.drain()
        return self

    async def event(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the worker to report ``name`` (for example ``ready``)."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"worker {self.target} never reported {name}")
            line = await asyncio.wait_for(self.proc.stdout.readline(), left)
            if not line:
                raise RuntimeError(
                    f"worker {self.target} ended before {name}: "
                    f"{await self._stderr_tail()}"
                )
            message = json.loads(line)
            self.events.append(message)
            if message.get("event") == name:
                return message
            if message.get("event") == "error":
                raise RuntimeError(f"worker {self.target}: {message['error']}")

    async def send(self, command: str) -> None:
        """Write one command line to the worker (see `bench.worker.Control`)."""
        assert self.proc is not None and self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.proc.stdin.write(command.encode() + b"\n")
            await self.proc.stdin.drain()

    async def stop(self) -> None:
        """Ask the worker to finish now (it still reports its result)."""
        await self.send("stop")

    async def result(self) -> Any:
        """Wait for the worker's result, killing it past its time bound."""
        try:
            message = await self.event("result", self.timeout)
        finally:
            assert self.proc is not None
            await _terminate(self.proc, grace=2.0)
        return message["result"]

    async def _stderr_tail(self) -> str:
        assert self.proc is not None
        if self.proc.stderr is None:
            return ""
        with contextlib.suppress(TimeoutError):
            data = await asyncio.wait_for(self.proc.stderr.read(), 2.0)
            return data.decode(errors="replace")[-2000:]
        return ""


async def run_worker(target: str, timeout: float = 120.0, **args: Any) -> Any:
    """Run a worker to completion and return its result."""
    worker = await Worker(target, args, timeout).start()
    return await worker.result()


async def run_workers(
    target: str, arg_list: list[dict[str, Any]], timeout: float = 120.0
) -> list[Any]:
    """Run several workers at once (load split over processes)."""
    workers = [await Worker(target, a, timeout).start() for a in arg_list]
    return list(await asyncio.gather(*(w.result() for w in workers)))


# -- counting TCP proxy --


class CountingProxy:
    """A TCP relay that counts every byte both ways and every connection.

    Bytes are counted at the socket, so HTTP headers, WebSocket frame headers
    and handshakes are included; TCP/IP packet headers are not.
    """

    def __init__(self, target_port: int, target_host: str = HOST):
        self.target = (target_host, target_port)
        self.up = 0  # client -> server
        self.down = 0  # server -> client
        self.connections = 0
        self.active = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> CountingProxy:
        self._server = await asyncio.start_server(self._handle, HOST, 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def counters(self) -> dict[str, int]:
        return {
            "up": self.up,
            "down": self.down,
            "total": self.up + self.down,
            "connections": self.connections,
            "active": self.active,
        }

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        self.active += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            self.active -= 1
            return
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, "up"),
                self._pipe(up_reader, writer, "down"),
            )
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            self.active -= 1
            self._tasks.discard(task)  # type: ignore[arg-type]
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str
    ) -> None:
        try:
            while data := await reader.read(65536):
                if way == "up":
                    self.up += len(data)
                else:
                    self.down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                if writer.can_write_eof():
                    writer.write_eof()
