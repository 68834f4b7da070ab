"""Child-process entry point that runs one client function of the harness.

``python -m bench.worker bench.clients:latency_ws_echo`` reads one JSON line of
keyword arguments on stdin, awaits ``function(control, **arguments)`` and
prints ``{"event": "result", "result": ...}`` as its last stdout line. The
function may report progress with ``control.notify("ready", ...)`` and should
finish soon after ``control.stopped`` is set (the parent wrote ``stop``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import traceback
from typing import Any

from bench.common import raise_nofile


class Control:
    """The worker's line to its parent: progress events and the stop request."""

    def __init__(self) -> None:
        self.stopped = asyncio.Event()
        self.commands: asyncio.Queue[str] = asyncio.Queue()

    async def command(self, timeout: float = 600.0) -> str:
        """The next line the parent wrote (``go``, for example)."""
        return await asyncio.wait_for(self.commands.get(), timeout)

    def notify(self, event: str, **data: Any) -> None:
        print(json.dumps({"event": event, **data}), flush=True)

    async def sleep_or_stop(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the parent asked to stop meanwhile."""
        try:
            await asyncio.wait_for(self.stopped.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def _watch_stdin(control: Control) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"stop":
            control.stopped.set()
            return
        control.commands.put_nowait(line.decode().strip())


async def _main(target: str, args: dict[str, Any]) -> None:
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    control = Control()
    watcher = asyncio.create_task(_watch_stdin(control))
    try:
        result = await func(control, **args)
    except Exception as exc:
        control.notify("error", error=f"{exc!r}\n{traceback.format_exc()}")
        raise
    finally:
        watcher.cancel()
    control.notify("result", result=result)


def main() -> None:
    raise_nofile()
    target = sys.argv[1]
    args = json.loads(sys.stdin.readline())
    asyncio.run(_main(target, args))


if __name__ == "__main__":
    main()
