"""The OpenAPI 3 document of the stub's HTTP API, built from the message structs.

Body schemas come from `msgspec.json.schema_components`, so the document
cannot drift from `bettensor_core.protocol`. Every miner request and answer is
a signed envelope whose ``body`` is one of the named messages.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bettensor_core.codec import NONCE_PATTERN
from bettensor_core.protocol import (
    MAX_SESSION_CHARS,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    SESSION_HEADER,
    TYPE_NAMES,
    Body,
    Error,
    Snapshot,
)
from validator_stub.web import CONTROL_BODIES, HTTP_BODIES, ControlResult

REF = "#/components/schemas/{name}"

_REFUSALS = {
    "400": "malformed, unknown_type, unsupported_version or unexpected_message",
    "401": "bad_signature or bad_sender",
    "409": "replayed_nonce, stale_timestamp or future_timestamp",
    "413": "too_large: the body exceeds the stub's max message bytes",
    "429": "rate_limited: too many messages a second from this hotkey",
}


def _envelope(bodies: list[type[Body]]) -> dict[str, Any]:
    names = [TYPE_NAMES[b] for b in bodies]
    refs = [{"$ref": REF.format(name=b.__name__)} for b in bodies]
    return {
        "type": "object",
        "description": "Signed envelope (docs/protocol.md): sig is the sender's "
        "sr25519 signature of the version, type, sender, ts, nonce and body bytes.",
        "required": ["v", "type", "sender", "ts", "nonce", "body", "sig"],
        "properties": {
            "v": {"type": "integer", "enum": [PROTOCOL_VERSION]},
            "type": {"type": "string", "enum": names},
            "sender": {"type": "string", "description": "ss58 hotkey address"},
            "ts": {"type": "integer", "description": "Unix time, milliseconds"},
            "nonce": {
                "type": "string",
                "pattern": NONCE_PATTERN,
                "description": "single-use; codec.encode makes 32 hex digits",
            },
            "body": refs[0] if len(refs) == 1 else {"oneOf": refs},
            "sig": {"type": "string", "pattern": "^0x[0-9a-f]{128}$"},
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _control_result() -> dict[str, Any]:
    return {
        "description": "what the control did",
        "content": _json({"$ref": REF.format(name="ControlResult")}),
    }


def build_openapi(server_url: str | None = None) -> dict[str, Any]:
    """The whole document: every path, with request and response schemas."""
    structs: list[Any] = [*MESSAGE_TYPES.values(), *CONTROL_BODIES.values()]
    structs.append(ControlResult)
    _, components = msgspec.json.schema_components(structs, ref_template=REF)

    refused = {
        status: {"description": text, "content": _json(_envelope([Error]))}
        for status, text in _REFUSALS.items()
    }
    paths: dict[str, Any] = {}
    summaries = {
        "/v1/predictions": "Submit a prediction or a batch; get confirmations.",
        "/v1/events": "Long-poll: events after after_seq, or a snapshot.",
        "/v1/heartbeat": "Heartbeat over HTTP; answered with ack=true.",
    }
    session = {
        "name": SESSION_HEADER,
        "in": "header",
        "required": False,
        "description": "the client's name for its session, a hint only: a "
        "long-poll is not woken for confirmations answered to its own session",
        "schema": {"type": "string", "maxLength": MAX_SESSION_CHARS},
    }
    for path, (requests, answers) in HTTP_BODIES.items():
        paths[path] = {
            "post": {
                "summary": summaries[path],
                "parameters": [session],
                "requestBody": {
                    "required": True,
                    "content": _json(_envelope(requests)),
                },
                "responses": {
                    "200": {
                        "description": "signed answer",
                        "content": _json(_envelope(answers)),
                    },
                    **refused,
                },
            }
        }
    paths["/v1/games"] = {
        "get": {
            "summary": "Every game the stub knows, as a signed snapshot.",
            "responses": {
                "200": {
                    "description": "signed snapshot without confirmations",
                    "content": _json(_envelope([Snapshot])),
                }
            },
        }
    }
    paths["/ws/health"] = {
        "get": {
            "summary": "Liveness and WebSocket connection counts.",
            "responses": {
                "200": {
                    "description": "health",
                    "content": _json(
                        {
                            "type": "object",
                            "required": [
                                "status",
                                "connections",
                                "active_connections",
                                "uptime",
                            ],
                            "properties": {
                                "status": {"type": "string", "enum": ["ok"]},
                                "connections": {
                                    "type": "integer",
                                    "description": "accepted since start",
                                },
                                "active_connections": {"type": "integer"},
                                "uptime": {"type": "number"},
                                "head": {"type": "integer"},
                                "websocket_enabled": {"type": "boolean"},
                                "hotkey": {"type": "string"},
                            },
                        }
                    ),
                }
            },
        }
    }
    paths["/ws"] = {
        "get": {
            "summary": "WebSocket upgrade: hello, welcome, then the same envelopes "
            "both ways (docs/protocol.md).",
            "responses": {
                "101": {"description": "switching protocols"},
                "403": {
                    "description": "WebSocket refused on this validator; use HTTP",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "426": {
                    "description": "a plain GET without an upgrade: use a "
                    "WebSocket client, or the /v1/* endpoints",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            },
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "summary": "This document.",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": _json({"type": "object"}),
                }
            },
        }
    }
    control_errors = {
        "400": {"description": "bad control body", **_control_result()},
        "403": {"description": "not a loopback client", **_control_result()},
    }
    for path, struct in CONTROL_BODIES.items():
        responses: dict[str, Any] = {"200": _control_result(), **control_errors}
        if path in ("/control/odds", "/control/kickoff", "/control/result"):
            responses["404"] = {"description": "unknown game", **_control_result()}
            responses["409"] = {
                "description": "the game cannot do that now",
                **_control_result(),
            }
        paths[path] = {
            "post": {
                "summary": f"Test control (loopback only): {struct.__doc__}",
                "requestBody": {
                    "required": True,
                    "content": _json({"$ref": REF.format(name=struct.__name__)}),
                },
                "responses": responses,
            }
        }
    paths["/control/drop"] = {
        "post": {
            "summary": "Test control (loopback only): close every live WebSocket "
            "and wake every long-poll.",
            "responses": {"200": _control_result(), **control_errors},
        }
    }

    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Bettensor validator stub",
            "version": str(PROTOCOL_VERSION),
            "description": "HTTP side of the validator protocol; WebSocket /ws "
            "carries the same envelopes (docs/protocol.md).",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
