"""The two transports to a validator, behind one interface.

`WebSocketTransport` and `HttpTransport` implement `Transport`; the link
(`bettensor_core.link`) picks between them with `TransportPolicy`.
"""

from bettensor_core.transport.base import (
    Transport,
    TransportTimeout,
    WebSocketRefused,
    mapped_errors,
)
from bettensor_core.transport.http import HttpTransport, make_http_client
from bettensor_core.transport.policy import HTTP, WEBSOCKET, TransportPolicy
from bettensor_core.transport.websocket import WebSocketTransport

__all__ = [
    "HTTP",
    "WEBSOCKET",
    "HttpTransport",
    "Transport",
    "TransportPolicy",
    "TransportTimeout",
    "WebSocketRefused",
    "WebSocketTransport",
    "make_http_client",
    "mapped_errors",
]
