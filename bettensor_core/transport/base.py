"""The one transport interface, and the one place lower-level errors are mapped.

A transport carries signed envelopes (`bettensor_core.codec`) between the
miner and one validator. Two implementations exist: `WebSocketTransport` and
`HttpTransport`. Above them, `bettensor_core.link.Link` chooses between them;
it never sees a ``websockets``, ``httpx`` or ``aiohttp`` exception, only
`TransportError` (the link is gone or unusable) and `ProtocolError` (the
validator refused a message, or sent one that does not check out).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import aiohttp
import httpx
import websockets.exceptions

from bettensor_core.codec import Signed
from bettensor_core.errors import ErrorCode, ProtocolError, TransportError
from bettensor_core.protocol import Body, Error, Hello

# Messages from a validator may be larger than what it accepts from miners (a
# snapshot carries every game and this miner's confirmations).
MAX_INCOMING_BYTES = 16 * 1024 * 1024


class WebSocketRefused(TransportError):
    """The validator answered the WebSocket upgrade with an HTTP status."""

    def __init__(self, status: int):
        super().__init__(f"websocket upgrade refused with HTTP {status}")
        self.status = status


class TransportTimeout(TransportError):
    """No answer in time: the peer is slow, stalled or half-open."""


class Transport(ABC):
    """A session with one validator over one kind of connection.

    `open` starts the session with a `Hello`; `request` sends a message and
    returns the validator's answer to it; `next_push` waits for the next
    ``events`` or ``snapshot`` message. All methods raise `TransportError`
    when the connection is unusable and `ProtocolError` when the validator
    refused the message (its ``error`` answer).
    """

    kind: ClassVar[str]

    @abstractmethod
    async def open(self, hello: Hello, *, timeout: float) -> Signed:
        """Start a session; return the validator's first answer."""

    @abstractmethod
    async def request(self, body: Body, *, timeout: float) -> Signed:
        """Send ``body`` and return the answer that belongs to it."""

    @abstractmethod
    async def next_push(self, after_seq: int | None, hold: float) -> Signed:
        """The next ``events`` or ``snapshot`` after ``after_seq``.

        A WebSocket gets pushes without asking; HTTP long-polls, holding the
        request up to ``hold`` seconds when nothing is new.
        """

    @abstractmethod
    async def close(self, *, graceful: bool = True) -> None:
        """End the session; never raises.

        ``graceful=False`` drops the connection at once, for a link already
        known to be dead (a stalled peer never finishes a closing handshake).
        """


@contextlib.contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """Turn errors of the libraries under the transports into ours.

    ``what`` names the operation for the message (for example "websocket
    connect"). `ProtocolError` and cancellation pass through unchanged.
    """
    try:
        yield
    except (ProtocolError, TransportError):
        raise
    except websockets.exceptions.InvalidStatus as exc:
        raise WebSocketRefused(exc.response.status_code) from exc
    except httpx.TimeoutException as exc:
        # httpx-aiohttp reports a refused connection as a connect timeout;
        # the aiohttp error underneath tells which it really was.
        cause = exc.__cause__
        if isinstance(cause, aiohttp.ClientError) and not isinstance(
            cause, aiohttp.ServerTimeoutError | TimeoutError
        ):
            raise TransportError(f"{what}: {cause}") from exc
        raise TransportTimeout(f"{what}: timed out") from exc
    except TimeoutError as exc:
        raise TransportTimeout(f"{what}: timed out") from exc
    except websockets.exceptions.ConnectionClosed as exc:
        raise TransportError(f"{what}: connection closed ({exc})") from exc
    except (
        websockets.exceptions.WebSocketException,
        httpx.HTTPError,
        aiohttp.ClientError,
        OSError,
        EOFError,
    ) as exc:
        detail = str(exc) or type(exc).__name__
        raise TransportError(f"{what}: {detail}") from exc


def error_of(message: Signed) -> ProtocolError | None:
    """The `ProtocolError` an ``error`` message stands for, else None."""
    body = message.body
    if not isinstance(body, Error):
        return None
    try:
        code = ErrorCode(body.code)
    except ValueError:
        code = ErrorCode.UNEXPECTED_MESSAGE
    return ProtocolError(code, body.message, body.ref)


async def cancel_quietly(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it, swallowing whatever it ends with."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    # wait() does not raise what the task raised, but does pass on our own
    # cancellation; reading the outcome keeps asyncio from warning about it.
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()
