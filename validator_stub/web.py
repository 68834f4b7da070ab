"""The stub's ASGI app: WebSocket ``/ws`` and the HTTP API on one port.

Every message in and out is a signed envelope (`bettensor_core.codec`). The
same checks run on both transports, in the same order: size, rate, signature
and type, sender, freshness and nonce; refused input gets an `Error` (an
error frame, or a 4xx with a signed error body) and changes nothing.

A push to a miner with nothing waiting goes straight to its socket (one pass
over all miners, as a bare broadcast would). Otherwise it joins that miner's
own bounded queue, drained by its own writer task (both exist only while
frames wait), so one slow miner never holds up the others; a miner whose
queue overflows is disconnected and resumes later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ipaddress
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bettensor_core.codec import Signed, Signer, decode, encode
from bettensor_core.errors import ErrorCode, ProtocolError
from bettensor_core.protocol import (
    MAX_SESSION_CHARS,
    SESSION_HEADER,
    Body,
    Confirmation,
    ConfirmationBatch,
    Error,
    Events,
    Heartbeat,
    Hello,
    Prediction,
    PredictionBatch,
    ResumeRequest,
    Snapshot,
    Welcome,
)
from validator_stub.config import Limits
from validator_stub.limits import RateLimiter, TokenBucket
from validator_stub.validator import GameError, LoggedEvent, Validator

log = logging.getLogger(__name__)

# HTTP status of each refusal on the HTTP API.
HTTP_STATUS: dict[str, int] = {
    ErrorCode.MALFORMED: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.UNSUPPORTED_VERSION: 400,
    ErrorCode.UNEXPECTED_MESSAGE: 400,
    ErrorCode.HELLO_REQUIRED: 400,
    ErrorCode.BAD_SIGNATURE: 401,
    ErrorCode.BAD_SENDER: 401,
    ErrorCode.SENDER_MISMATCH: 401,
    ErrorCode.STALE_TIMESTAMP: 409,
    ErrorCode.FUTURE_TIMESTAMP: 409,
    ErrorCode.REPLAYED_NONCE: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_CONNECTIONS: 503,
}

# WebSocket close codes the stub uses.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_RESTART = 1012
CLOSE_TRY_AGAIN = 1013

ENVELOPE_MEDIA = "application/json"

_T = TypeVar("_T")


class _Close:
    """Queued in place of a frame: close the WebSocket after what came before."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str):
        self.code = code
        self.reason = reason


async def _resume(started: Coroutine[Any, Any, None], waiting_on: object) -> None:
    """Finish a coroutine that was stepped once by hand and is now waiting.

    `Connection._send_now` runs a socket send up to its first wait without a
    task (usually the send completes in that one step); when it does have to
    wait, this task takes the coroutine over where it stopped.
    """
    await _Continue(started, waiting_on)


class _Continue:
    """The awaitable behind `_resume`: hands each wait of the coroutine to the task."""

    def __init__(self, started: Coroutine[Any, Any, None], waiting_on: object):
        self._started = started
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, None, None]:
        waiting_on = self._waiting_on
        while True:
            try:
                yield waiting_on
            except BaseException as exc:
                step = functools.partial(self._started.throw, exc)
            else:
                step = functools.partial(self._started.send, None)
            try:
                waiting_on = step()
            except StopIteration:
                return


class Connection:
    """One miner's WebSocket: its identity, its queued frames and their writer.

    A frame goes straight to the socket when nothing is queued or still on
    its way (`push`); otherwise it waits in a bounded queue that a writer task
    drains. The queue and the writer exist only while frames are waiting, so
    an idle miner costs neither.
    """

    __slots__ = (
        "_durable",
        "_frames",
        "_in_flight",
        "_limits",
        "_room",
        "_writer",
        "close_reason",
        "closing",
        "heartbeat_interval",
        "miner",
        "session_id",
        "ws",
    )

    def __init__(
        self,
        ws: WebSocket,
        limits: Limits,
        durable: Callable[[], Awaitable[None]],
    ):
        self.ws = ws
        self.session_id = uuid.uuid4().hex
        self.miner: str | None = None
        self.heartbeat_interval = 20.0
        self.closing = False
        self.close_reason: str | None = None
        self._limits = limits
        self._durable = durable
        self._frames: collections.deque[bytes | _Close] | None = None
        self._writer: asyncio.Task[None] | None = None
        # A frame sent at once that had to wait for the socket; whatever is
        # sent next waits for it.
        self._in_flight: asyncio.Task[None] | None = None
        # A handler waiting for room in a full queue.
        self._room: asyncio.Future[None] | None = None

    @property
    def idle_timeout(self) -> float:
        # A miner may not keep an idle socket open for ever by promising rare
        # heartbeats; the welcome tells it the timeout it got.
        wanted = self._limits.idle_factor * self.heartbeat_interval
        return min(
            self._limits.max_idle_timeout, max(self._limits.min_idle_timeout, wanted)
        )

    def _queued(self) -> int:
        return 0 if self._frames is None else len(self._frames)

    # Sending.

    async def send(self, frame: bytes) -> None:
        """Queue a reply, waiting while this miner's queue is full."""
        while not self.closing and self._queued() >= self._limits.send_queue_frames:
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._room)
        if not self.closing:
            self._enqueue(frame)

    def send_first(self, frames: list[bytes]) -> None:
        """Queue the frames that open a session, before any push can."""
        for frame in frames:
            self._enqueue(frame)

    def push(self, frame: bytes) -> None:
        """Send a push now, or queue it; a miner too slow to take it is dropped.

        Pushes are committed before they are published, so when nothing waits
        ahead of it the frame goes straight to the socket: a push to many
        miners then costs one pass over them, not a task wake-up each.
        """
        if self.closing:
            return
        if self._writer is None and self._in_flight is None:
            self._send_now(frame)
        elif self._queued() < self._limits.send_queue_frames:
            self._enqueue(frame)
        else:
            log.info("miner %s too slow, closing its websocket", self.miner)
            self.close(CLOSE_TRY_AGAIN, "send queue full; reconnect and resume")

    def _enqueue(self, item: bytes | _Close) -> None:
        if self._frames is None:
            self._frames = collections.deque()
        self._frames.append(item)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    def _send_now(self, frame: bytes) -> None:
        """Start sending ``frame``; what cannot finish at once goes on in a task."""
        sending = self.ws.send_text(frame.decode())
        try:
            waiting_on = sending.send(None)
        except StopIteration:
            return
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.debug("push to %s failed: %s", self.session_id, exc)
            self._stop()
            return
        self._in_flight = asyncio.ensure_future(_resume(sending, waiting_on))
        self._in_flight.add_done_callback(self._sent_late)

    def _sent_late(self, task: asyncio.Task[None]) -> None:
        if self._in_flight is task:
            self._in_flight = None
        if not task.cancelled() and task.exception() is not None:
            log.debug("push to %s failed: %s", self.session_id, task.exception())
            self._stop()

    async def _write(self) -> None:
        """Drain the queue in order, then end (the next frame starts a new one)."""
        frames = self._frames
        assert frames is not None
        try:
            while frames:
                in_flight = self._in_flight
                if in_flight is not None:
                    await in_flight
                item = frames.popleft()
                self._made_room()
                if isinstance(item, _Close):
                    await self.ws.close(item.code, item.reason)
                    self._stop()
                    return
                # Nothing leaves before what it reports is committed.
                await self._durable()
                await self.ws.send_text(item.decode())
                del item
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            log.debug("writer of %s stopped: %s", self.session_id, exc)
            self._stop()
        except asyncio.CancelledError:
            self._stop()
            raise
        except Exception:
            log.exception("writer of %s failed", self.session_id)
            self._stop()
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None
                if self._frames is frames and not frames:
                    self._frames = None

    def _made_room(self) -> None:
        if self._room is not None and (
            self.closing or self._queued() < self._limits.send_queue_frames
        ):
            if not self._room.done():
                self._room.set_result(None)
            self._room = None

    def _stop(self) -> None:
        """Nothing more goes out: drop what waits and unblock a waiting handler."""
        self.closing = True
        self._frames = None
        self._made_room()
        if self._in_flight is not None:
            self._in_flight.cancel()

    # Closing.

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued (now, if the queue is full)."""
        if self.closing:
            return
        if self._queued() < self._limits.send_queue_frames:
            self._enqueue(_Close(code, reason))
            self.closing = True
        else:
            if self._writer is not None:
                self._writer.cancel()
            self._stop()
            self._writer = asyncio.create_task(self._close_now(code, reason))
        self.close_reason = reason
        self._made_room()

    async def _close_now(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    async def finish(self) -> None:
        """Let the writer drain its queue, briefly, then stop it."""
        if not self.closing:
            self.close(CLOSE_NORMAL, "closing")
        writer = self._writer
        if writer is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(writer), 2.0)
        except (TimeoutError, asyncio.CancelledError):
            writer.cancel()


class _Poll:
    """One held long-poll: the HTTP session it belongs to, and its wake-up."""

    __slots__ = ("session", "woken")

    def __init__(self, session: str | None):
        self.session = session
        self.woken = asyncio.Event()


@dataclass(slots=True)
class Controls:
    """Run-time switches the test controls flip."""

    websocket_enabled: bool = True
    latency: float = 0.0


class Hub:
    """What the web layer shares: validator, signer, connections and limits."""

    def __init__(
        self,
        validator: Validator,
        signer: Signer,
        limits: Limits,
        *,
        websocket_enabled: bool = True,
        on_game_change: Callable[[], None] | None = None,
    ):
        self.validator = validator
        self.signer = signer
        self.limits = limits
        self.controls = Controls(websocket_enabled=websocket_enabled)
        self.rates = RateLimiter(limits.rate, limits.burst)
        self.connections: set[Connection] = set()
        self.by_miner: dict[str, set[Connection]] = {}
        self.total_connections = 0
        self.open_sockets = 0
        self.drop_count = 0
        self.started_at = time.monotonic()
        self.on_game_change = on_game_change
        self.stopping = False
        # Held long-polls by miner: each is woken only by events for it.
        self._polls: dict[str, set[_Poll]] = {}
        validator.publish = self.publish

    # Signing.

    def sign(self, body: Body) -> bytes:
        return encode(body, self.signer)

    def error(self, code: str, message: str, ref: str | None = None) -> bytes:
        return self.sign(Error(code=code, message=message, ref=ref))

    async def delay(self) -> None:
        if self.controls.latency > 0:
            await asyncio.sleep(self.controls.latency)

    # Pushing events.

    def publish(self, batch: list[LoggedEvent]) -> None:
        """Push committed events to every miner they concern, then wake long-polls.

        A session never gets pushed what it already has as an answer (its
        own confirmations): that would cost a signature and a frame each.
        """
        start = 0
        while start < len(batch):
            # One frame per run of events with the same audience.
            lead = batch[start]
            end = start + 1
            while (
                end < len(batch)
                and batch[end].miner == lead.miner
                and batch[end].answered == lead.answered
                and (end - start < self.limits.events_per_frame)
            ):
                end += 1
            run = [e.event for e in batch[start:end]]
            start = end

            miner = lead.miner
            targets = self.connections if miner is None else self.by_miner.get(miner)
            if lead.answered is not None and targets:
                targets = {c for c in targets if lead.is_news_to(c.session_id)}
            if not targets:
                continue
            frame = self.sign(Events(events=run, head=run[-1].seq))
            for conn in list(targets):
                conn.push(frame)
        self._wake_polls(batch)

    def _wake_polls(self, batch: list[LoggedEvent]) -> None:
        """Wake the long-polls these events concern.

        An event for every miner wakes every poll. A confirmation answered to
        an HTTP session does not wake that session's own poll: the session has
        it already, and the event rides along with its next answer instead.
        """
        if any(e.miner is None for e in batch):
            self.wake()
            return
        for logged in batch:
            for poll in self._polls.get(logged.miner or "", ()):
                if logged.is_news_to(poll.session):
                    poll.woken.set()

    def wake(self) -> None:
        """Wake every held long-poll (a push for all, a drop, a stop)."""
        for polls in self._polls.values():
            for poll in polls:
                poll.woken.set()

    async def wait_change(
        self, miner: str, session: str | None, timeout: float
    ) -> None:
        """Hold a long-poll of ``miner`` until an event concerns it, or ``timeout``."""
        poll = _Poll(session)
        polls = self._polls.setdefault(miner, set())
        polls.add(poll)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poll.woken.wait(), timeout)
        finally:
            polls.discard(poll)
            if not polls and self._polls.get(miner) is polls:
                del self._polls[miner]

    def resume_answer(self, miner: str, after_seq: int | None) -> list[Body]:
        """What a miner resuming after ``after_seq`` gets: events or a snapshot."""
        events = self.validator.events_after(after_seq, miner)
        if events is None:
            return [self.validator.snapshot(miner)]
        size = self.limits.events_per_frame
        if len(events) <= size:
            return [Events(events=events, head=self.validator.head)]
        chunks = [events[i : i + size] for i in range(0, len(events), size)]
        answers: list[Body] = [Events(events=c, head=c[-1].seq) for c in chunks]
        answers[-1] = Events(events=chunks[-1], head=self.validator.head)
        return answers

    # Connections.

    def register(self, conn: Connection, miner: str) -> None:
        conn.miner = miner
        self.connections.add(conn)
        self.by_miner.setdefault(miner, set()).add(conn)

    def unregister(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn.miner is not None:
            peers = self.by_miner.get(conn.miner)
            if peers is not None:
                peers.discard(conn)
                if not peers:
                    del self.by_miner[conn.miner]

    def drop_connections(self, code: int = CLOSE_RESTART, reason: str = "") -> int:
        """Close every live WebSocket and wake every long-poll; return how many."""
        conns = list(self.connections)
        self.drop_count += 1
        for conn in conns:
            conn.close(code, reason or "dropped by the validator stub")
        self.wake()
        return len(conns)

    # Checks shared by both transports.

    def check(self, msg: Signed, bucket_ok: bool) -> None:
        """Rate and nonce checks after the signature; raise `ProtocolError`."""
        if not bucket_ok:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"more than {self.limits.rate:g} messages a second "
                f"(burst {self.limits.burst:g}); slow down",
                msg.nonce,
            )
        self.validator.nonces.check(msg)

    def too_large(self, size: int) -> ProtocolError:
        return ProtocolError(
            ErrorCode.TOO_LARGE,
            f"message of {size} bytes exceeds {self.limits.max_message_bytes}",
        )

    def predictions(self, miner: str, body: Body, answered: str | None = None) -> Body:
        """Confirm a prediction or a batch of them (answer after `durable`).

        ``answered`` is the session the answer goes to: a WebSocket's id, or
        the HTTP client's `SESSION_HEADER` (none when it sends no header).
        """
        submit = self.validator.submit
        if isinstance(body, Prediction):
            return submit(miner, body, answered=answered)
        assert isinstance(body, PredictionBatch)
        return ConfirmationBatch(
            confirmations=[
                submit(miner, p, answered=answered) for p in body.predictions
            ]
        )


# --- WebSocket ------------------------------------------------------------


async def websocket_endpoint(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    if not hub.controls.websocket_enabled or hub.stopping:
        # Refuse the upgrade itself, so a miner falls back to HTTP at once.
        log.info("refused websocket upgrade: websocket disabled")
        await ws.send_denial_response(
            PlainTextResponse(
                "WebSocket is disabled on this validator; use the HTTP API.\n", 403
            )
        )
        return

    await ws.accept()
    if hub.open_sockets >= hub.limits.max_connections:
        log.info("refused websocket: %d connections open", hub.open_sockets)
        message = f"too many connections (at most {hub.limits.max_connections})"
        with contextlib.suppress(Exception):
            await ws.send_text(
                hub.error(ErrorCode.TOO_MANY_CONNECTIONS, message).decode()
            )
            await ws.close(CLOSE_TRY_AGAIN, "too many connections")
        return

    hub.total_connections += 1
    hub.open_sockets += 1
    conn = Connection(ws, hub.limits, hub.validator.durable)
    try:
        await _session(hub, conn)
    except WebSocketDisconnect:
        pass
    finally:
        hub.open_sockets -= 1
        hub.unregister(conn)
        await conn.finish()
        log.info(
            "websocket closed: miner %s session %s%s",
            conn.miner,
            conn.session_id[:8],
            f" ({conn.close_reason})" if conn.close_reason else "",
        )


async def _receive(ws: WebSocket, timeout: float) -> bytes | None:
    """The next frame's bytes, or None when the peer went silent for ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            message = await ws.receive()
    except TimeoutError:
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is not None:
        return str(text).encode()
    return bytes(message.get("bytes") or b"")


async def _session(hub: Hub, conn: Connection) -> None:
    limits = hub.limits
    ws = conn.ws
    # Before hello the connection has no miner; it gets a bucket of its own.
    bucket = TokenBucket(limits.rate, limits.burst)
    deadline = time.monotonic() + limits.hello_timeout

    # Hello first: nothing else is served until the miner says who it is.
    hello: Signed | None = None
    while hello is None:
        remaining = deadline - time.monotonic()
        data = await _receive(ws, max(0.0, remaining)) if remaining > 0 else None
        if data is None:
            conn.close(CLOSE_NORMAL, "no hello in time")
            return
        await hub.delay()
        try:
            msg = _read_frame(hub, data)
            if msg.type != "hello":
                raise ProtocolError(
                    ErrorCode.HELLO_REQUIRED,
                    f"send hello first (got {msg.type})",
                    msg.nonce,
                )
            hub.check(msg, bucket.take())
        except ProtocolError as exc:
            await conn.send(hub.error(exc.code, exc.message, exc.ref))
            continue
        hello = msg

    body = hello.body
    assert isinstance(body, Hello)
    miner = hello.sender
    conn.heartbeat_interval = max(0.1, body.heartbeat_interval)
    log.info(
        "websocket connected: miner %s session %s resume_after %s",
        miner,
        conn.session_id[:8],
        body.resume_after,
    )
    welcome = Welcome(
        session_id=conn.session_id,
        head=hub.validator.head,
        server_time=time.time(),
        idle_timeout=conn.idle_timeout,
        max_message_bytes=limits.max_message_bytes,
    )
    # Answer and registration for pushes happen with no await in between, so
    # every event is either in the answer or pushed after it, never lost.
    answers = hub.resume_answer(miner, body.resume_after)
    if len(answers) >= limits.send_queue_frames // 2:
        # Too far behind to replay through the send queue: start over instead.
        answers = [hub.validator.snapshot(miner)]
    conn.send_first([hub.sign(welcome), *(hub.sign(a) for a in answers)])
    hub.register(conn, miner)
    # This frame lives as long as the miner stays: keep nothing of the opening.
    del answers, welcome, hello, msg, body, data, bucket

    while True:
        data = await _receive(ws, conn.idle_timeout)
        if data is None:
            log.info("closing idle websocket of miner %s", miner)
            conn.close(CLOSE_NORMAL, f"idle for {conn.idle_timeout:g} s")
            return
        await hub.delay()
        await _answer(hub, conn, miner, data)
        # An idle miner's session keeps nothing of its last frame.
        del data


async def _answer(hub: Hub, conn: Connection, miner: str, data: bytes) -> None:
    """Check one frame of a miner's session and queue its answers."""
    try:
        allowed = hub.rates.allow(miner)
        msg = _read_frame(hub, data)
        if msg.sender != miner:
            raise ProtocolError(
                ErrorCode.SENDER_MISMATCH,
                f"this connection belongs to {miner}, not {msg.sender}",
                msg.nonce,
            )
        hub.check(msg, allowed)
        reply = _ws_dispatch(hub, conn, msg)
    except ProtocolError as exc:
        await conn.send(hub.error(exc.code, exc.message, exc.ref))
        return
    for body_out in reply:
        await conn.send(hub.sign(body_out))


def _read_frame(hub: Hub, data: bytes) -> Signed:
    log.debug("frame in: %d bytes", len(data))
    if len(data) > hub.limits.max_message_bytes:
        raise hub.too_large(len(data))
    return decode(data, max_bytes=hub.limits.max_message_bytes)


def _ws_dispatch(hub: Hub, conn: Connection, msg: Signed) -> list[Body]:
    body = msg.body
    if isinstance(body, (Prediction, PredictionBatch)):
        return [hub.predictions(msg.sender, body, conn.session_id)]
    if isinstance(body, Heartbeat):
        if body.interval is not None and body.interval > 0:
            conn.heartbeat_interval = body.interval
        return [Heartbeat(n=body.n, ack=True, interval=body.interval)]
    if isinstance(body, ResumeRequest):
        return hub.resume_answer(msg.sender, body.after_seq)
    raise ProtocolError(
        ErrorCode.UNEXPECTED_MESSAGE,
        f"a miner does not send {msg.type} on an open session",
        msg.nonce,
    )


# --- HTTP -------------------------------------------------------------------


def _envelope(hub: Hub, body: Body, status: int = 200) -> Response:
    return Response(hub.sign(body), status_code=status, media_type=ENVELOPE_MEDIA)


def _refusal(hub: Hub, exc: ProtocolError) -> Response:
    status = HTTP_STATUS.get(exc.code, 400)
    headers = {"Retry-After": "1"} if exc.code == ErrorCode.RATE_LIMITED else None
    return Response(
        hub.error(exc.code, exc.message, exc.ref),
        status_code=status,
        media_type=ENVELOPE_MEDIA,
        headers=headers,
    )


async def _read_body(hub: Hub, request: Request) -> bytes:
    limit = hub.limits.max_message_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise hub.too_large(int(declared))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise hub.too_large(len(body))
    return bytes(body)


def _http_session(request: Request) -> str | None:
    """The client's session name, namespaced apart from WebSocket session ids."""
    name = request.headers.get(SESSION_HEADER)
    if not name or len(name) > MAX_SESSION_CHARS:
        return None
    return "http:" + name


async def _signed_request(hub: Hub, request: Request, types: set[str]) -> Signed:
    """Read, verify and check one enveloped request; raise `ProtocolError`."""
    await hub.delay()
    data = await _read_body(hub, request)
    msg = decode(data, max_bytes=hub.limits.max_message_bytes)
    if msg.type not in types:
        raise ProtocolError(
            ErrorCode.UNEXPECTED_MESSAGE,
            f"{request.url.path} takes {' or '.join(sorted(types))}, not {msg.type}",
            msg.nonce,
        )
    hub.check(msg, hub.rates.allow(msg.sender))
    return msg


async def post_predictions(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    try:
        msg = await _signed_request(hub, request, {"prediction", "prediction_batch"})
    except ProtocolError as exc:
        return _refusal(hub, exc)
    answer = hub.predictions(msg.sender, msg.body, _http_session(request))
    await hub.validator.durable()
    return _envelope(hub, answer)


async def post_events(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    try:
        msg = await _signed_request(hub, request, {"resume"})
    except ProtocolError as exc:
        return _refusal(hub, exc)
    body = msg.body
    assert isinstance(body, ResumeRequest)
    hold = min(max(0.0, body.hold), hub.limits.max_long_poll)
    deadline = time.monotonic() + hold
    session = _http_session(request)
    drops = hub.drop_count

    # The long-poll: answer at once when something is new, else wait for a push.
    while True:
        answer = hub.resume_answer(msg.sender, body.after_seq)[0]
        remaining = deadline - time.monotonic()
        quiet = isinstance(answer, Events) and not answer.events
        if not quiet or remaining <= 0 or hub.stopping or hub.drop_count != drops:
            break
        await hub.wait_change(msg.sender, session, remaining)
    await hub.validator.durable()
    return _envelope(hub, answer)


async def post_heartbeat(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    try:
        msg = await _signed_request(hub, request, {"heartbeat"})
    except ProtocolError as exc:
        return _refusal(hub, exc)
    body = msg.body
    assert isinstance(body, Heartbeat)
    # The nonce it spent is committed before the answer, like everything else.
    await hub.validator.durable()
    return _envelope(hub, Heartbeat(n=body.n, ack=True, interval=body.interval))


async def get_ws_without_upgrade(request: Request) -> Response:
    """``GET /ws`` as plain HTTP (curl, a browser): say what the path is for."""
    return PlainTextResponse(
        "/ws is the WebSocket endpoint: connect with a WebSocket client and send"
        " a signed hello (docs/protocol.md); over plain HTTP use /v1/*.\n",
        status_code=426,
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


async def get_games(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    snapshot = hub.validator.snapshot(None)
    await hub.validator.durable()
    return _envelope(hub, snapshot)


async def get_health(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    return JSONResponse(
        {
            "status": "ok",
            "connections": hub.total_connections,
            "active_connections": hub.open_sockets,
            "uptime": round(time.monotonic() - hub.started_at, 3),
            "head": hub.validator.head,
            "websocket_enabled": hub.controls.websocket_enabled,
            "hotkey": hub.signer.ss58,
        }
    )


# --- Test controls (loopback only) -------------------------------------------


class WebSocketControl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Allow or refuse WebSocket upgrades from now on."""

    enabled: bool


class LatencyControl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Delay every miner request and frame by ``ms`` milliseconds (0 turns it off)."""

    ms: float


class OddsControl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Set a scheduled game's odds and push an odds_changed event."""

    game_id: str
    odds_a: float
    odds_b: float
    odds_tie: float | None = None


class KickoffControl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Start a game now and push a kickoff event."""

    game_id: str


class ResultControl(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """End a game with ``outcome`` and settle its accepted predictions."""

    game_id: str
    outcome: int


class ControlResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a control did."""

    ok: bool
    message: str
    seq: int | None = None
    count: int | None = None


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("localhost", "testclient")


def _control_response(result: ControlResult, status: int = 200) -> Response:
    return Response(msgspec.json.encode(result), status, media_type="application/json")


def _refuse_remote(request: Request) -> Response | None:
    if _loopback(request):
        return None
    return _control_response(
        ControlResult(ok=False, message="test controls answer loopback only"), 403
    )


async def _control_body(request: Request, kind: type[_T]) -> _T | Response:
    refused = _refuse_remote(request)
    if refused is not None:
        return refused
    data = await request.body()
    try:
        return msgspec.json.decode(data or b"{}", type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return _control_response(ControlResult(ok=False, message=str(exc)), 400)


async def control_websocket(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    body = await _control_body(request, WebSocketControl)
    if isinstance(body, Response):
        return body
    hub.controls.websocket_enabled = body.enabled
    log.info("control: websocket %s", "enabled" if body.enabled else "disabled")
    state = "accepted" if body.enabled else "refused"
    return _control_response(
        ControlResult(ok=True, message=f"websocket upgrades {state}")
    )


async def control_drop(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    refused = _refuse_remote(request)
    if refused is not None:
        return refused
    count = hub.drop_connections()
    log.info("control: dropped %d websockets", count)
    return _control_response(
        ControlResult(ok=True, message=f"dropped {count} websockets", count=count)
    )


async def control_latency(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    body = await _control_body(request, LatencyControl)
    if isinstance(body, Response):
        return body
    if not 0 <= body.ms <= 60_000:
        return _control_response(
            ControlResult(ok=False, message="ms must be within 0..60000"), 400
        )
    hub.controls.latency = body.ms / 1000
    log.info("control: latency %g ms", body.ms)
    return _control_response(ControlResult(ok=True, message=f"latency {body.ms:g} ms"))


async def _game_control(
    request: Request, kind: type[msgspec.Struct], act: Callable[[Hub, object], int]
) -> Response:
    hub: Hub = request.app.state.hub
    body = await _control_body(request, kind)
    if isinstance(body, Response):
        return body
    try:
        count = act(hub, body)
    except GameError as exc:
        status = 404 if "unknown game" in str(exc) else 409
        return _control_response(ControlResult(ok=False, message=str(exc)), status)
    await hub.validator.durable()
    if hub.on_game_change is not None:
        hub.on_game_change()
    return _control_response(
        ControlResult(ok=True, message="done", seq=hub.validator.head, count=count)
    )


def _odds(hub: Hub, body: object) -> int:
    assert isinstance(body, OddsControl)
    hub.validator.change_odds(body.game_id, body.odds_a, body.odds_b, body.odds_tie)
    return 1


def _kickoff(hub: Hub, body: object) -> int:
    assert isinstance(body, KickoffControl)
    hub.validator.kickoff(body.game_id)
    return 1


def _result(hub: Hub, body: object) -> int:
    assert isinstance(body, ResultControl)
    return len(hub.validator.settle(body.game_id, body.outcome))


async def control_odds(request: Request) -> Response:
    return await _game_control(request, OddsControl, _odds)


async def control_kickoff(request: Request) -> Response:
    return await _game_control(request, KickoffControl, _kickoff)


async def control_result(request: Request) -> Response:
    return await _game_control(request, ResultControl, _result)


def build_app(hub: Hub, openapi: Callable[[], dict[str, object]]) -> Starlette:
    """The ASGI app serving ``hub``; ``openapi`` builds the /openapi.json document."""

    async def get_openapi(request: Request) -> Response:
        return JSONResponse(openapi())

    routes = [
        WebSocketRoute("/ws", websocket_endpoint),
        Route("/ws", get_ws_without_upgrade, methods=["GET"]),
        Route("/ws/health", get_health, methods=["GET"]),
        Route("/v1/predictions", post_predictions, methods=["POST"]),
        Route("/v1/events", post_events, methods=["POST"]),
        Route("/v1/heartbeat", post_heartbeat, methods=["POST"]),
        Route("/v1/games", get_games, methods=["GET"]),
        Route("/openapi.json", get_openapi, methods=["GET"]),
        Route("/control/websocket", control_websocket, methods=["POST"]),
        Route("/control/drop", control_drop, methods=["POST"]),
        Route("/control/latency", control_latency, methods=["POST"]),
        Route("/control/odds", control_odds, methods=["POST"]),
        Route("/control/kickoff", control_kickoff, methods=["POST"]),
        Route("/control/result", control_result, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.hub = hub
    return app


# Re-exported for the OpenAPI document.
CONTROL_BODIES: dict[str, type[msgspec.Struct]] = {
    "/control/websocket": WebSocketControl,
    "/control/latency": LatencyControl,
    "/control/odds": OddsControl,
    "/control/kickoff": KickoffControl,
    "/control/result": ResultControl,
}
HTTP_BODIES: dict[str, tuple[list[type[Body]], list[type[Body]]]] = {
    "/v1/predictions": (
        [Prediction, PredictionBatch],
        [Confirmation, ConfirmationBatch],
    ),
    "/v1/events": ([ResumeRequest], [Events, Snapshot]),
    "/v1/heartbeat": ([Heartbeat], [Heartbeat]),
}
