"""`StubServer`: the validator stub inside any asyncio loop, on one port.

Tests, benchmarks and the app's embedded demo start it with port 0 and read
``url``; the command line (`validator_stub.__main__`) runs the same class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn

from bettensor_core.protocol import Event, Game, Settlement
from validator_stub.config import StubConfig
from validator_stub.openapi import build_openapi
from validator_stub.season import Simulator
from validator_stub.store import Store
from validator_stub.validator import Validator
from validator_stub.web import CLOSE_GOING_AWAY, CLOSE_RESTART, Hub, build_app

log = logging.getLogger(__name__)

HOUSEKEEPING_EVERY = 60.0


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers and without its 10 Hz tick.

    The host process owns the signals (the app, the CLI), and an idle stub
    should not wake its loop ten times a second.
    """

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self._exit = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)
        await self._exit.wait()

    def exit(self) -> None:
        self.should_exit = True
        self._exit.set()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    if family in (socket.AF_INET, socket.AF_INET6):
        # Accepted sockets inherit it: small answers are not held for an ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class StubServer:
    """A running validator stub: WebSocket ``/ws`` and HTTP on one port.

    Use ``async with StubServer(StubConfig(port=0, db=":memory:")) as stub:``
    and talk to ``stub.url``. The control methods mirror the HTTP test controls.
    """

    def __init__(self, config: StubConfig | None = None):
        self.config = config or StubConfig()
        self.signer = self.config.make_signer()
        self.ss58 = self.signer.ss58
        self.port: int | None = None
        self.store: Store | None = None
        self.validator: Validator | None = None
        self.hub: Hub | None = None
        self.simulator: Simulator | None = None
        self._server: _Uvicorn | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # Addresses.

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the stub is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/ws"

    # Life cycle.

    async def start(self) -> None:
        """Open storage, seed the season and bind the port (0 picks a free one)."""
        if self._server is not None:
            raise RuntimeError("the stub is already started")
        cfg = self.config
        limits = cfg.limits
        self.store = Store(cfg.db_target(), durable_sync=cfg.durable_sync)
        self.validator = Validator(self.store, limits)
        self.simulator = Simulator(
            self.validator, seed=cfg.seed, games=cfg.games, speed=cfg.speed
        )
        self.hub = Hub(
            self.validator,
            self.signer,
            limits,
            websocket_enabled=cfg.websocket_enabled,
            on_game_change=self.simulator.wake,
        )
        self.simulator.seed_games()
        await self.validator.durable()

        try:
            sock = _bind(cfg.host, cfg.port)
        except OSError:
            # Release the database (and its lock) for whoever tries next.
            self.store.close()
            raise
        self.port = sock.getsockname()[1]
        app = build_app(self.hub, lambda: build_openapi(self.url))
        uv_config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            date_header=False,
            # Frames a little over the limit get an error frame from the stub;
            # far larger ones are cut off by the WebSocket layer (close 1009).
            ws_max_size=max(4 * limits.max_message_bytes, 1 << 20),
            # Miners send heartbeats; protocol pings would only wake idle peers.
            ws_ping_interval=None,
            ws_ping_timeout=None,
            timeout_graceful_shutdown=3,
            # HTTP miners post a prediction every few seconds beside their
            # 25 s long-poll; uvicorn's default 5 s keep-alive made them
            # reconnect about every other prediction.
            timeout_keep_alive=75,
        )
        self._server = _Uvicorn(uv_config)
        serve = asyncio.create_task(self._server.serve(sockets=[sock]))
        self._tasks.append(serve)
        while not self._server.started:
            if serve.done():
                serve.result()
                raise RuntimeError("the stub's server stopped while starting")
            await asyncio.sleep(0.005)

        self._tasks.append(asyncio.create_task(self.simulator.run()))
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        log.info("validator stub on %s hotkey %s", self.url, self.ss58)

    async def _housekeeping(self) -> None:
        assert self.validator is not None
        while True:
            await asyncio.sleep(HOUSEKEEPING_EVERY)
            try:
                self.validator.housekeeping()
            except Exception:
                log.exception("housekeeping failed")

    async def stop(self) -> None:
        """Close every connection, stop serving and close the database."""
        if self._server is None:
            return
        assert self.hub is not None and self.store is not None
        self.hub.stopping = True
        self.hub.drop_connections(CLOSE_GOING_AWAY, "validator stub stopping")
        serve, *others = self._tasks
        for task in others:
            task.cancel()
        self._server.exit()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await serve
        for task in others:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._server = None
        self.store.close()
        log.info("validator stub stopped")

    async def __aenter__(self) -> StubServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # Controls, as the HTTP test controls offer them.

    def _parts(self) -> tuple[Validator, Hub]:
        if self.validator is None or self.hub is None:
            raise RuntimeError("the stub is not started")
        return self.validator, self.hub

    def set_websocket_enabled(self, enabled: bool) -> None:
        """Accept or refuse (HTTP 403) WebSocket upgrades from now on."""
        self._parts()[1].controls.websocket_enabled = enabled

    def drop_connections(self) -> int:
        """Close every live WebSocket (code 1012) and wake every long-poll."""
        return self._parts()[1].drop_connections(CLOSE_RESTART)

    def set_latency(self, ms: float) -> None:
        """Delay each miner request and frame by ``ms`` milliseconds."""
        self._parts()[1].controls.latency = max(0.0, ms) / 1000

    async def push_odds(
        self,
        game_id: str,
        odds_a: float,
        odds_b: float,
        odds_tie: float | None = None,
    ) -> Event:
        """Change a scheduled game's odds and push the odds_changed event."""
        validator, _ = self._parts()
        event = validator.change_odds(game_id, odds_a, odds_b, odds_tie)
        await self._after_game_change()
        return event

    async def kickoff(self, game_id: str) -> Event:
        """Start a game now and push the kickoff event."""
        validator, _ = self._parts()
        event = validator.kickoff(game_id)
        await self._after_game_change()
        return event

    async def settle(self, game_id: str, outcome: int) -> list[Settlement]:
        """End a game, settle its accepted predictions and push the events."""
        validator, _ = self._parts()
        settlements = validator.settle(game_id, outcome)
        await self._after_game_change()
        return settlements

    async def add_game(self, game: Game) -> Event:
        """Add a game of the caller's making (tests) and push game_added."""
        validator, _ = self._parts()
        event = validator.add_game(game)
        await self._after_game_change()
        return event

    async def _after_game_change(self) -> None:
        validator, _ = self._parts()
        await validator.durable()
        if self.simulator is not None:
            self.simulator.wake()

    # Read access for tests and benchmarks.

    def games(self) -> list[Game]:
        """The current games, by kickoff."""
        validator, _ = self._parts()
        return sorted(validator.games.values(), key=lambda g: (g.kickoff, g.game_id))

    def stats(self) -> dict[str, Any]:
        """Counts: accepted, rejected and resent predictions, events, connections."""
        validator, hub = self._parts()
        return {
            "accepted": validator.accepted_count,
            "rejected": validator.rejected_count,
            "duplicates": validator.duplicate_count,
            "head": validator.head,
            "events_logged": len(validator.log),
            "games": len(validator.games),
            "connections": hub.total_connections,
            "active_connections": hub.open_sockets,
            "commits": self.store.commits if self.store else 0,
            "uptime": round(time.monotonic() - hub.started_at, 3),
        }

    def day_total(self, miner: str, day: str | None = None) -> float:
        """A miner's accepted wagers on a UTC day (today by default)."""
        return self._parts()[0].day_total(miner, day)
