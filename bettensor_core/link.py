"""One validator link: WebSocket first, HTTP when it must, nothing lost.

A `Link` keeps a session with one validator alive for as long as the client
runs. It connects over WebSocket, falls back to HTTP when the upgrade is
refused, blocked or slow, and probes WebSocket again in the background to
move back inside the same session. It reconnects with full-jitter backoff
and never gives up. During a session it runs four small loops:

- pushes: apply ``events`` and ``snapshot`` messages in seq order (over HTTP
  this is the long-poll);
- heartbeats: one per interval of the power profile, telling the validator
  the interval; no answer within the interval ends the session (a stall);
- outbox: send this validator's pending predictions, in batches, and record
  the confirmations;
- probe (on HTTP only): try WebSocket again when the policy says so.

The decisions (backoff, fallback, upgrade) live in `bettensor_core.backoff`
and `bettensor_core.transport.policy` as plain state; this module is the thin
asyncio layer around them. Every message from the validator is checked for
its sender (the configured hotkey, else the first one seen), freshness and
nonce reuse before it is applied.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import httpx

from bettensor_core.backoff import Backoff
from bettensor_core.codec import (
    DEFAULT_MAX_MESSAGE_BYTES,
    NonceGuard,
    Signed,
    Signer,
)
from bettensor_core.config import ValidatorConfig
from bettensor_core.errors import ErrorCode, ProtocolError, TransportError
from bettensor_core.models import (
    ClientEvent,
    GamesChanged,
    LinkChanged,
    LinkState,
    LinkStatus,
    PredictionChanged,
)
from bettensor_core.outbox import (
    MAX_BATCH,
    confirmations_in,
    outbox_message,
    predictions_in,
)
from bettensor_core.power import PowerProfile
from bettensor_core.protocol import (
    Events,
    Heartbeat,
    Hello,
    ResumeRequest,
    Snapshot,
    Welcome,
)
from bettensor_core.store import Applied, Store
from bettensor_core.transport import (
    HTTP,
    WEBSOCKET,
    HttpTransport,
    Transport,
    TransportPolicy,
    WebSocketTransport,
    make_http_client,
)
from bettensor_core.transport.base import cancel_quietly

log = logging.getLogger("bettensor_core.link")


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """Timing knobs of a link (seconds); the defaults suit real validators.

    ``websocket_timeout`` is how long a WebSocket connect and welcome may
    take before the link falls back to HTTP. ``probe_interval`` is how long
    the link stays on HTTP before probing WebSocket again (with jitter).
    """

    websocket_timeout: float = 2.0
    http_timeout: float = 5.0
    request_timeout: float = 10.0
    backoff_base: float = 0.25
    backoff_cap: float = 30.0
    stable_after: float = 2.0
    probe_interval: float = 30.0
    probe_cap: float = 300.0
    max_batch: int = MAX_BATCH
    aiohttp: bool = True
    seed: int | None = None


def endpoints(url: str) -> tuple[str, str]:
    """The HTTP base URL and the WebSocket URL of a validator's configured URL.

    ``http://host:8091`` and ``ws://host:8091`` both give
    ``("http://host:8091", "ws://host:8091/ws")``; TLS schemes map alike.
    """
    parts = urlsplit(url.strip())
    secure = parts.scheme in ("https", "wss")
    path = parts.path.rstrip("/")
    if parts.scheme in ("ws", "wss"):
        ws_path = path or "/ws"
        http_path = path.removesuffix("/ws")
    else:
        ws_path = path + "/ws"
        http_path = path
    http_url = urlunsplit(
        ("https" if secure else "http", parts.netloc, http_path, "", "")
    )
    ws_url = urlunsplit(("wss" if secure else "ws", parts.netloc, ws_path, "", ""))
    return http_url, ws_url


Emit = Callable[[ClientEvent], None]


class _Upgrade(Exception):
    """The background probe opened a WebSocket: switch to it."""

    def __init__(self, transport: Transport):
        super().__init__("websocket probe succeeded")
        self.transport = transport


class Link:
    """A self-healing session with one validator; see the module docstring."""

    def __init__(
        self,
        config: ValidatorConfig,
        signer: Signer,
        store: Store,
        *,
        profile: Callable[[], PowerProfile],
        power_state: Callable[[], str],
        emit: Emit,
        options: LinkOptions | None = None,
    ):
        self.config = config
        self.name = config.label
        self._signer = signer
        self._store = store
        self._profile = profile
        self._power_state = power_state
        self._emit = emit
        self._options = options or LinkOptions()
        self._http_url, self._ws_url = endpoints(config.url)

        opts = self._options
        self._rng = random.Random(opts.seed)
        self._backoff = Backoff(
            base=opts.backoff_base, cap=opts.backoff_cap, stable_after=opts.stable_after
        )
        self._policy = TransportPolicy(
            probe_interval=opts.probe_interval, probe_cap=opts.probe_cap
        )
        self._guard = NonceGuard()
        self._max_batch = opts.max_batch
        # What the validator accepts in one message; its welcome may say more.
        self._max_bytes = DEFAULT_MAX_MESSAGE_BYTES

        last_seq, remembered = store.cursor(self.name)
        self._trusted = config.ss58 or remembered
        self._status = LinkStatus(
            name=self.name,
            url=config.url,
            state=LinkState.CONNECTING,
            last_seq=last_seq,
            validator_ss58=self._trusted,
            power_state=power_state(),
        )
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._outbox_ready = asyncio.Event()
        self._power_changed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._heartbeat_n = 0
        self._outage_told = False

    # The client's side.

    @property
    def status(self) -> LinkStatus:
        return self._status

    def start(self) -> None:
        """Start connecting in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"link {self.name}")

    async def close(self) -> None:
        """Stop the link and release its connections."""
        await cancel_quietly(self._task)
        self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._set_status(state=LinkState.OFFLINE, rtt_ms=None)

    def wake(self) -> None:
        """New predictions are in the outbox."""
        self._outbox_ready.set()

    def power_changed(self) -> None:
        """The power state changed: tell the validator the new interval now."""
        self._set_status(power_state=self._power_state())
        self._power_changed.set()

    # Connecting and reconnecting.

    async def _run(self) -> None:
        connected_before = False
        while True:
            opened = await self._connect()
            if opened is not None:
                transport = opened
                self._backoff.connected(time.monotonic())
                if connected_before:
                    self._set_status(reconnects=self._status.reconnects + 1)
                fallback = self._policy.fallback_reason
                log.info(
                    "%s %s over %s%s",
                    "reconnected to" if connected_before else "connected to",
                    self.name,
                    transport.kind,
                    f" (fallback: {fallback})" if transport.kind == HTTP else "",
                )
                connected_before = True
                await self._serve(transport)

            delay = self._backoff.failed(time.monotonic(), self._rng)
            log.debug("retrying %s in %.2f s", self.name, delay)
            await asyncio.sleep(delay)

    async def _connect(self) -> Transport | None:
        """Try the transports in the policy's order; None when all failed."""
        # Once offline, retries do not flip the badge back to connecting.
        if self._status.state != LinkState.OFFLINE:
            self._set_status(state=LinkState.CONNECTING, rtt_ms=None)
        # Say it once per outage; repeated failures go to the debug log.
        level = logging.DEBUG if self._outage_told else logging.INFO
        self._outage_told = True
        for kind in self._policy.attempt_order():
            transport = self._new_transport(kind)
            timeout = (
                self._options.websocket_timeout
                if kind == WEBSOCKET
                else self._options.http_timeout
            )
            started = time.monotonic()
            try:
                first = await transport.open(self._hello(), timeout=timeout)
                self._check(first)
            except ProtocolError as exc:
                await transport.close(graceful=False)
                # A validator that refuses us or is not who it should be
                # answers the same on the other transport: wait and retry.
                log.log(
                    logging.WARNING if level == logging.INFO else logging.DEBUG,
                    "%s refused the %s session: %s",
                    self.name,
                    kind,
                    _describe(exc),
                )
                self._set_status(state=LinkState.OFFLINE, last_error=_describe(exc))
                return None
            except TransportError as exc:
                await transport.close(graceful=False)
                if kind == WEBSOCKET:
                    self._policy.websocket_failed(str(exc), time.monotonic(), self._rng)
                    log.log(
                        level,
                        "websocket to %s failed (%s); falling back to http",
                        self.name,
                        exc,
                    )
                    self._set_status(fallback_reason=str(exc))
                    continue
                log.log(level, "http to %s failed: %s", self.name, exc)
                self._policy.all_failed()
                self._set_status(state=LinkState.OFFLINE, last_error=str(exc))
                return None

            rtt = (time.monotonic() - started) * 1000
            self._outage_told = False
            self._opened(first)
            if kind == WEBSOCKET:
                self._policy.websocket_up()
            state = LinkState.WEBSOCKET if kind == WEBSOCKET else LinkState.HTTP
            self._set_status(
                state=state,
                rtt_ms=rtt,
                fallback_reason=self._policy.fallback_reason,
                last_error=None,
            )
            return transport
        return None

    def _new_transport(self, kind: str) -> Transport:
        if kind == WEBSOCKET:
            return WebSocketTransport(self._ws_url, self._signer)
        if self._http is None:
            self._http = make_http_client(self._http_url, aiohttp=self._options.aiohttp)
        return HttpTransport(self._http, self._signer)

    def _hello(self) -> Hello:
        last_seq, _ = self._store.cursor(self.name)
        return Hello(
            resume_after=last_seq,
            heartbeat_interval=self._profile().heartbeat_interval,
        )

    # One session, possibly moving from HTTP to WebSocket on the way.

    async def _serve(self, transport: Transport) -> None:
        """Run a session until its connection fails; switch on a probe's success."""
        graceful = True
        try:
            while True:
                try:
                    await self._session(transport)
                except _Upgrade as upgrade:
                    old, transport = transport, upgrade.transport
                    await old.close()
                    self._policy.websocket_up()
                    self._set_status(
                        state=LinkState.WEBSOCKET, fallback_reason=None, last_error=None
                    )
                    log.info("upgraded %s from http to websocket", self.name)
                    continue
                except (TransportError, ProtocolError) as exc:
                    log.info("lost %s over %s: %s", self.name, transport.kind, exc)
                    self._set_status(
                        state=LinkState.CONNECTING,
                        rtt_ms=None,
                        last_error=_describe(exc),
                    )
                except Exception:
                    log.exception("link %s failed unexpectedly", self.name)
                    self._set_status(state=LinkState.CONNECTING, rtt_ms=None)
                # A failed connection is dropped at once; one we leave (the
                # client closing) is closed politely.
                graceful = False
                return
        finally:
            await transport.close(graceful=graceful)

    async def _session(self, transport: Transport) -> None:
        loops = [
            self._pump(transport),
            self._heartbeats(transport),
            self._send_outbox(transport),
        ]
        if transport.kind == HTTP:
            loops.append(self._probe())
        tasks = [asyncio.create_task(loop) for loop in loops]
        upgrade: _Upgrade | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            errors = [task.exception() for task in done]
            upgrade = next((e for e in errors if isinstance(e, _Upgrade)), None)
            if upgrade is not None:
                # Let a prediction in flight get its answer before switching.
                async with self._send_lock:
                    for task in tasks:
                        await cancel_quietly(task)
                raise upgrade
            error = next((e for e in errors if e is not None), None)
            raise error or TransportError("session ended")
        except BaseException as exc:
            if upgrade is not None and exc is not upgrade:
                # Cancelled while switching: the new connection is not used.
                await upgrade.transport.close(graceful=False)
            raise
        finally:
            for task in tasks:
                await cancel_quietly(task)

    async def _pump(self, transport: Transport) -> None:
        """Apply pushes in order; over HTTP each pull is one long-poll."""
        while True:
            after_seq, _ = self._store.cursor(self.name)
            message = await transport.next_push(
                after_seq, self._profile().long_poll_hold
            )
            self._check(message)
            applied = self._apply(message)

            # The validator forgot its history: ask it for the whole state.
            if (
                applied is not None
                and applied.last_seq is None
                and transport.kind == WEBSOCKET
            ):
                answer = await transport.request(
                    ResumeRequest(after_seq=None), timeout=self._options.request_timeout
                )
                self._check(answer)
                self._apply(answer)

    async def _heartbeats(self, transport: Transport) -> None:
        """A heartbeat per interval; a missing answer ends the session."""
        while True:
            interval = self._profile().heartbeat_interval
            try:
                async with asyncio.timeout(interval):
                    await self._power_changed.wait()
            except TimeoutError:
                pass
            self._power_changed.clear()

            interval = self._profile().heartbeat_interval
            self._heartbeat_n += 1
            started = time.monotonic()
            # Answered within the interval, or the link is stalled: a stall is
            # noticed at most two intervals after the last answer.
            answer = await transport.request(
                Heartbeat(n=self._heartbeat_n, interval=interval),
                timeout=interval,
            )
            self._check(answer)
            self._set_status(rtt_ms=(time.monotonic() - started) * 1000)

    async def _send_outbox(self, transport: Transport) -> None:
        """Send pending predictions in batches until each is confirmed."""
        while True:
            self._outbox_ready.clear()
            pending = self._store.pending(self.name, self._max_batch)
            if not pending:
                await self._outbox_ready.wait()
                continue

            message = outbox_message(
                pending, max_batch=self._max_batch, max_bytes=self._max_bytes
            )
            ids = [p.prediction_id for p in predictions_in(message)]
            async with self._send_lock:
                sent = self._store.mark_sent(
                    self.name, ids, transport.kind, time.time()
                )
                for pid in sent:
                    self._emit(PredictionChanged(pid))
                try:
                    answer = await transport.request(
                        message, timeout=self._options.request_timeout
                    )
                except ProtocolError as exc:
                    await self._refused(exc, len(ids))
                    continue
            self._check(answer)
            changed = self._store.confirm(self.name, confirmations_in(answer.body))
            for pid in sorted(changed):
                self._emit(PredictionChanged(pid))

    async def _refused(self, exc: ProtocolError, count: int) -> None:
        """The validator refused a prediction message; adapt and retry later."""
        if exc.code == ErrorCode.TOO_LARGE and count > 1:
            self._max_batch = max(1, count // 2)
            log.info(
                "%s: batch too large, sending %d at most", self.name, self._max_batch
            )
            return
        if exc.code == ErrorCode.UNTRUSTED_VALIDATOR:
            raise exc
        delay = min(self._options.backoff_cap, max(0.5, self._options.backoff_base * 4))
        log.warning(
            "%s refused predictions (%s: %s); retrying in %.1f s",
            self.name,
            exc.code,
            exc.message,
            delay,
        )
        await asyncio.sleep(self._rng.uniform(delay / 2, delay))

    async def _probe(self) -> None:
        """On HTTP: try WebSocket when the policy says; raise `_Upgrade` on success."""
        while True:
            delay = self._policy.probe_delay(time.monotonic())
            if delay is None:
                await asyncio.Event().wait()
                return
            await asyncio.sleep(delay)

            transport = WebSocketTransport(self._ws_url, self._signer)
            try:
                first = await transport.open(
                    self._hello(), timeout=self._options.websocket_timeout
                )
                self._check(first)
            except asyncio.CancelledError:
                await transport.close(graceful=False)
                raise
            except (TransportError, ProtocolError) as exc:
                await transport.close(graceful=False)
                self._policy.probe_failed(str(exc), time.monotonic(), self._rng)
                self._set_status(fallback_reason=str(exc))
                log.debug("websocket probe of %s failed: %s", self.name, exc)
                continue
            self._opened(first)
            raise _Upgrade(transport)

    # Checking and applying what the validator sends.

    def _opened(self, first: Signed) -> None:
        """Take the limits a validator's welcome announces."""
        if isinstance(first.body, Welcome):
            self._max_bytes = first.body.max_message_bytes

    def _check(self, message: Signed) -> None:
        """Refuse a message from the wrong hotkey, stale, or replayed."""
        if self._trusted is None:
            self._trusted = message.sender
            self._store.set_validator_ss58(self.name, message.sender)
            self._set_status(validator_ss58=message.sender)
            log.info(
                "%s signs as %s; trusting it from now on", self.name, message.sender
            )
        elif message.sender != self._trusted:
            raise ProtocolError(
                ErrorCode.UNTRUSTED_VALIDATOR,
                f"validator signed as {message.sender}, expected {self._trusted}",
                message.nonce,
            )
        self._guard.check(message)

    def _apply(self, message: Signed) -> Applied | None:
        body = message.body
        if isinstance(body, Events):
            applied = self._store.apply_events(self.name, body.events, body.head)
        elif isinstance(body, Snapshot):
            applied = self._store.apply_snapshot(self.name, body)
            log.info("%s sent a snapshot at seq %d", self.name, body.seq)
        else:
            log.debug("%s sent %s where a push was expected", self.name, message.type)
            return None

        if applied.game_ids or applied.snapshot:
            self._emit(
                GamesChanged(frozenset(applied.game_ids), snapshot=applied.snapshot)
            )
        for pid in sorted(applied.prediction_ids):
            self._emit(PredictionChanged(pid))
        if applied.last_seq != self._status.last_seq:
            self._set_status(last_seq=applied.last_seq)
        return applied

    def _set_status(self, **changes: object) -> None:
        status = replace(self._status, **changes)  # type: ignore[arg-type]
        if status != self._status:
            self._status = status
            self._emit(LinkChanged(status))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ProtocolError):
        return f"{exc.code}: {exc.message}"
    return str(exc)
