"""The WebSocket transport: one connection, answers matched to their requests.

A reader task decodes every frame. Answers go to the request waiting for
them: a confirmation by prediction id, a confirmation batch by its first id,
a heartbeat ack by its number, an error by the nonce it refers to, and the
events or snapshot after a ``resume`` to that resume. Everything else the
validator sends (live ``events``) waits in a queue for `next_push`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable

from websockets.asyncio.client import ClientConnection, connect

from bettensor_core.codec import Signed, Signer, decode, encode, new_nonce
from bettensor_core.errors import ErrorCode, ProtocolError, TransportError
from bettensor_core.protocol import (
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
from bettensor_core.transport.base import (
    MAX_INCOMING_BYTES,
    Transport,
    TransportTimeout,
    cancel_quietly,
    error_of,
    mapped_errors,
)

log = logging.getLogger("bettensor_core.transport")

_RESUME_KEY = ("resume",)
_WELCOME_KEY = ("welcome",)


def _request_key(body: Body) -> Hashable:
    """The key the answer to ``body`` will be found under."""
    if isinstance(body, Prediction):
        return ("confirmation", body.prediction_id)
    if isinstance(body, PredictionBatch):
        first = body.predictions[0].prediction_id if body.predictions else ""
        return ("confirmation_batch", first)
    if isinstance(body, Heartbeat):
        return ("heartbeat", body.n)
    if isinstance(body, ResumeRequest):
        return _RESUME_KEY
    if isinstance(body, Hello):
        return _WELCOME_KEY
    raise TypeError(f"{type(body).__name__} is not a request")


def _answer_key(body: Body) -> Hashable | None:
    """The key of the request an incoming message answers, if any."""
    if isinstance(body, Confirmation):
        return ("confirmation", body.prediction_id)
    if isinstance(body, ConfirmationBatch):
        first = body.confirmations[0].prediction_id if body.confirmations else ""
        return ("confirmation_batch", first)
    if isinstance(body, Heartbeat) and body.ack:
        return ("heartbeat", body.n)
    if isinstance(body, Welcome):
        return _WELCOME_KEY
    return None


class WebSocketTransport(Transport):
    """A session over ``GET /ws``."""

    kind = "websocket"

    def __init__(self, url: str, signer: Signer):
        self._url = url
        self._signer = signer
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[Hashable, asyncio.Future[Signed]] = {}
        self._by_nonce: dict[str, Hashable] = {}
        self._pushes: asyncio.Queue[Signed | TransportError] = asyncio.Queue()
        self._closed: TransportError | None = None

    async def open(self, hello: Hello, *, timeout: float) -> Signed:
        """Connect, send the hello and return the welcome, all within ``timeout``."""
        with mapped_errors("websocket connect"):
            async with asyncio.timeout(timeout):
                self._ws = await connect(
                    self._url,
                    open_timeout=timeout,
                    # Our own heartbeats detect dead links; no library pings.
                    ping_interval=None,
                    close_timeout=1.0,
                    max_size=MAX_INCOMING_BYTES,
                    compression=None,
                    proxy=None,
                    user_agent_header="bettensor-miner",
                )
        self._reader = asyncio.create_task(self._read(), name=f"ws-read {self._url}")
        try:
            return await self.request(hello, timeout=timeout)
        except BaseException:
            await self.close()
            raise

    async def request(self, body: Body, *, timeout: float) -> Signed:
        """Send ``body`` and wait up to ``timeout`` seconds for its answer."""
        if self._ws is None or self._closed is not None:
            raise self._closed or TransportError("websocket is not open")
        key = _request_key(body)
        nonce = new_nonce()
        data = encode(body, self._signer, nonce=nonce)

        future = self._waiting.get(key)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._waiting[key] = future
        self._by_nonce[nonce] = key
        try:
            log.debug("ws send %s (%d bytes)", type(body).__name__, len(data))
            # The timeout covers the send too: on a stalled link the write
            # buffer fills and the send itself waits.
            async with asyncio.timeout(timeout):
                with mapped_errors("websocket send"):
                    await self._ws.send(data.decode())
                return await asyncio.shield(future)
        except TimeoutError:
            raise TransportTimeout(
                f"no answer to {type(body).__name__} within {timeout:g} s"
            ) from None
        finally:
            self._by_nonce.pop(nonce, None)
            if future.done() and self._waiting.get(key) is future:
                del self._waiting[key]

    async def next_push(self, after_seq: int | None, hold: float) -> Signed:
        """The next pushed ``events`` (the validator sends them unasked)."""
        item = await self._pushes.get()
        if isinstance(item, TransportError):
            # Leave the marker for any other reader.
            self._pushes.put_nowait(item)
            raise item
        return item

    async def close(self, *, graceful: bool = True) -> None:
        """Close the socket and fail whatever still waits."""
        self._fail(TransportError("websocket closed"))
        reader, self._reader = self._reader, None
        ws, self._ws = self._ws, None
        if ws is not None and graceful:
            try:
                async with asyncio.timeout(1.0):
                    await ws.close()
            except Exception:
                # A stalled peer never finishes the closing handshake.
                ws.transport.abort()
        elif ws is not None:
            ws.transport.abort()
        await cancel_quietly(reader)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            with mapped_errors("websocket receive"):
                async for frame in self._ws:
                    data = frame.encode() if isinstance(frame, str) else frame
                    self._dispatch(data)
        except TransportError as exc:
            self._fail(exc)
        except Exception as exc:
            self._fail(TransportError(f"websocket reader failed: {exc!r}"))
        else:
            self._fail(TransportError("websocket closed by the validator"))

    def _dispatch(self, data: bytes) -> None:
        try:
            message = decode(data, max_bytes=MAX_INCOMING_BYTES)
        except ProtocolError as exc:
            # One bad frame from the validator is reported, not fatal.
            log.warning("ws frame refused: %s (%s)", exc.message, exc.code)
            return
        body = message.body
        log.debug("ws recv %s (%d bytes)", message.type, len(data))

        if isinstance(body, Error):
            key = self._by_nonce.get(body.ref or "")
            error = error_of(message)
            assert error is not None
            if key is not None:
                self._settle(key, error)
            elif body.code == ErrorCode.TOO_MANY_CONNECTIONS:
                self._settle(_WELCOME_KEY, error)
            else:
                log.warning("ws error from validator: %s (%s)", body.message, body.code)
            return

        if isinstance(body, Heartbeat) and not body.ack:
            # The validator checks on us: answer at once.
            ack = encode(Heartbeat(n=body.n, ack=True), self._signer)
            if self._ws is not None:
                task = asyncio.create_task(self._ws.send(ack.decode()))
                task.add_done_callback(_ignore_outcome)
            return

        if isinstance(body, Events | Snapshot):
            resume = self._waiting.get(_RESUME_KEY)
            if resume is not None and not resume.done():
                resume.set_result(message)
            else:
                self._pushes.put_nowait(message)
            return

        key = _answer_key(body)
        if key is None or not self._settle(key, message):
            log.debug("ws unmatched %s", message.type)

    def _settle(self, key: Hashable, outcome: Signed | Exception) -> bool:
        future = self._waiting.get(key)
        if future is None or future.done():
            return False
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
        return True

    def _fail(self, error: TransportError) -> None:
        if self._closed is not None:
            return
        self._closed = error
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
                # Nobody may be awaiting it any more; do not warn about that.
                future.exception()
        self._pushes.put_nowait(error)


def _ignore_outcome(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
