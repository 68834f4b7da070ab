"""The HTTP transport: POST for each message, a long-poll for pushes.

It borrows one long-lived ``httpx.AsyncClient`` per validator (the link owns
it), so connections are kept alive between requests; a new client per
request costs tens of milliseconds. `make_http_client` builds that client
over aiohttp, which measured about four times faster than httpx's own
transport on loopback (see ``docs/client.md``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
from httpx_aiohttp import AiohttpTransport

from bettensor_core.codec import Signed, Signer, decode, encode
from bettensor_core.errors import ErrorCode, ProtocolError, TransportError
from bettensor_core.protocol import (
    SESSION_HEADER,
    Body,
    Heartbeat,
    Hello,
    Prediction,
    PredictionBatch,
    ResumeRequest,
)
from bettensor_core.transport.base import (
    MAX_INCOMING_BYTES,
    Transport,
    error_of,
    mapped_errors,
)

log = logging.getLogger("bettensor_core.transport")

# The validator holds a long-poll at most this long, whatever we ask for.
MAX_HOLD = 25.0
# Time allowed on top of the hold for the answer to arrive.
HOLD_MARGIN = 5.0
# How long an idle keep-alive connection is kept. httpx's default, 5 s, is
# shorter than the usual gap between a miner's predictions, so nearly every
# prediction paid for a new connection. The stub keeps connections for 75 s;
# closing ours first means we never reuse one the server is closing.
KEEPALIVE_EXPIRY = 60.0


def make_http_client(base_url: str, *, aiohttp: bool = True) -> httpx.AsyncClient:
    """The one HTTP client a link keeps for its validator."""
    limits = httpx.Limits(
        max_connections=8,
        max_keepalive_connections=4,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    transport: httpx.AsyncBaseTransport
    if aiohttp:
        transport = AiohttpTransport(limits=limits, trust_env=False)
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=transport,
        headers={"content-type": "application/json", "user-agent": "bettensor-miner"},
        trust_env=False,
    )


def _path_of(body: Body) -> str:
    if isinstance(body, Prediction | PredictionBatch):
        return "/v1/predictions"
    if isinstance(body, ResumeRequest):
        return "/v1/events"
    if isinstance(body, Heartbeat):
        return "/v1/heartbeat"
    raise TypeError(f"{type(body).__name__} has no HTTP endpoint")


class HttpTransport(Transport):
    """A session over the validator's ``/v1/*`` endpoints."""

    kind = "http"

    def __init__(self, client: httpx.AsyncClient, signer: Signer):
        self._client = client
        self._signer = signer
        self._closed = False
        # Names this session to the validator, which then does not wake our
        # long-poll just to repeat the confirmations our POSTs were answered
        # with (they come with the next events instead).
        self._headers = {SESSION_HEADER: uuid.uuid4().hex}

    async def open(self, hello: Hello, *, timeout: float) -> Signed:
        """Check the validator answers: a heartbeat telling it our interval."""
        probe = Heartbeat(n=0, interval=hello.heartbeat_interval)
        return await self.request(probe, timeout=timeout)

    async def request(self, body: Body, *, timeout: float) -> Signed:
        """POST ``body`` to its endpoint and return the decoded answer."""
        if self._closed:
            raise TransportError("http session is closed")
        path = _path_of(body)
        data = encode(body, self._signer)
        log.debug("http send %s to %s (%d bytes)", type(body).__name__, path, len(data))

        # httpx's timeout bounds each phase; asyncio's bounds the whole request.
        with mapped_errors(f"POST {path}"):
            async with asyncio.timeout(timeout + 1.0):
                response = await self._client.post(
                    path, content=data, headers=self._headers, timeout=timeout
                )
                content = response.content
        log.debug(
            "http recv %d from %s (%d bytes)", response.status_code, path, len(content)
        )

        if response.status_code >= 500:
            raise TransportError(f"POST {path}: HTTP {response.status_code}")
        try:
            message = decode(content, max_bytes=MAX_INCOMING_BYTES)
        except ProtocolError:
            if response.status_code != 200:
                raise TransportError(
                    f"POST {path}: HTTP {response.status_code} without an envelope"
                ) from None
            raise
        error = error_of(message)
        if error is not None:
            raise error
        if response.status_code != 200:
            raise ProtocolError(
                ErrorCode.UNEXPECTED_MESSAGE,
                f"HTTP {response.status_code} carried a {message.type}",
            )
        return message

    async def next_push(self, after_seq: int | None, hold: float) -> Signed:
        """Long-poll for the events after ``after_seq`` (or a snapshot)."""
        hold = max(0.0, min(hold, MAX_HOLD))
        ask = ResumeRequest(after_seq=after_seq, hold=hold)
        return await self.request(ask, timeout=hold + HOLD_MARGIN)

    async def close(self, *, graceful: bool = True) -> None:
        """Stop using the shared client; the link closes the client itself."""
        self._closed = True
