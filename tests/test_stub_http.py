"""The validator stub over HTTP: predictions, long-poll, heartbeat, games, docs."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bettensor_core.codec import decode, encode
from bettensor_core.protocol import (
    SESSION_HEADER,
    Confirmation,
    ConfirmationBatch,
    Events,
    Heartbeat,
    PredictionBatch,
    ResumeRequest,
    Snapshot,
)
from validator_stub import StubServer


async def test_http_prediction_confirmed(
    stub: StubServer, post_signed, miner_signer, prediction_for
):
    """POST /v1/predictions answers with a confirmation signed by the stub."""
    p = prediction_for(stub.games()[0], wager=40)
    status, reply = await post_signed("/v1/predictions", p, miner_signer)
    assert status == 200 and reply.sender == stub.ss58
    assert isinstance(reply.body, Confirmation)
    assert reply.body.accepted and reply.body.budget_left == 960


async def test_http_batch(stub: StubServer, post_signed, miner_signer, prediction_for):
    """A batch over HTTP gets a confirmation_batch in the same order."""
    games = stub.games()
    batch = PredictionBatch(
        predictions=[prediction_for(games[0]), prediction_for(games[1])]
    )
    status, reply = await post_signed("/v1/predictions", batch, miner_signer)
    assert status == 200 and isinstance(reply.body, ConfirmationBatch)
    assert [c.accepted for c in reply.body.confirmations] == [True, True]


async def test_http_resend_is_idempotent_across_transports(
    stub: StubServer, post_signed, ws_miner, miner_signer, prediction_for
):
    """A prediction sent over WebSocket and resent over HTTP counts once."""
    p = prediction_for(stub.games()[0], wager=30)
    miner = await ws_miner(miner_signer)
    first = await miner.ask(p, "confirmation")
    status, again = await post_signed("/v1/predictions", p, miner_signer)
    assert status == 200 and again.body == first.body
    status, third = await post_signed("/v1/predictions", p, miner_signer)
    assert third.body == first.body
    assert stub.stats()["accepted"] == 1 and stub.stats()["duplicates"] == 2
    assert stub.day_total(miner_signer.ss58) == 30


async def test_http_events_after_seq_and_snapshot(
    stub: StubServer, post_signed, miner_signer
):
    """POST /v1/events returns events after after_seq, or a snapshot for None."""
    status, snap = await post_signed("/v1/events", ResumeRequest(), miner_signer)
    assert status == 200 and isinstance(snap.body, Snapshot)
    head = snap.body.seq
    game = stub.games()[0]
    pushed = await stub.push_odds(game.game_id, 1.9, 2.8, game.odds_tie)
    status, reply = await post_signed(
        "/v1/events", ResumeRequest(after_seq=head), miner_signer
    )
    assert isinstance(reply.body, Events)
    assert [e.seq for e in reply.body.events] == [pushed.seq]
    assert reply.body.head == pushed.seq


async def test_http_events_too_old_gets_snapshot(stub_config, miner_signer):
    """A long-poll from a seq older than the event log gets a snapshot."""
    from dataclasses import replace

    stub_config.limits = replace(stub_config.limits, event_log_size=3)
    async with StubServer(stub_config) as stub, httpx.AsyncClient() as client:
        game = stub.games()[0]
        for i in range(6):
            await stub.push_odds(game.game_id, 1.5 + i / 100, 3.0, game.odds_tie)
        body = encode(ResumeRequest(after_seq=1), miner_signer)
        reply = decode(
            (await client.post(stub.url + "/v1/events", content=body)).content
        )
        assert (
            isinstance(reply.body, Snapshot) and reply.body.seq == stub.stats()["head"]
        )


async def test_long_poll_is_woken_by_a_push(
    stub: StubServer, post_signed, miner_signer
):
    """A held long-poll answers as soon as an event is pushed, not at the hold's end."""
    head = stub.stats()["head"]
    game = stub.games()[0]

    async def push_later() -> None:
        await asyncio.sleep(0.3)
        await stub.push_odds(game.game_id, 1.66, 2.9, game.odds_tie)

    started = time.monotonic()
    task = asyncio.create_task(push_later())
    _, reply = await post_signed(
        "/v1/events", ResumeRequest(after_seq=head, hold=10), miner_signer
    )
    await task
    assert 0.25 < time.monotonic() - started < 5
    assert (
        isinstance(reply.body, Events) and reply.body.events[0].kind == "odds_changed"
    )


async def test_long_poll_holds_then_answers_empty(
    stub: StubServer, post_signed, miner_signer
):
    """With nothing new, a long-poll waits about ``hold`` seconds and answers empty."""
    head = stub.stats()["head"]
    started = time.monotonic()
    _, reply = await post_signed(
        "/v1/events", ResumeRequest(after_seq=head, hold=0.4), miner_signer
    )
    assert time.monotonic() - started >= 0.35
    assert reply.body == Events(events=[], head=head)


async def test_long_poll_ignores_other_miners_confirmations(
    stub: StubServer, post_signed, miner_signer, other_signer, prediction_for
):
    """Another miner's confirmation does not end this miner's long-poll."""
    head = stub.stats()["head"]
    poll = asyncio.create_task(
        post_signed("/v1/events", ResumeRequest(after_seq=head, hold=0.6), miner_signer)
    )
    await asyncio.sleep(0.1)
    await post_signed("/v1/predictions", prediction_for(stub.games()[0]), other_signer)
    _, reply = await poll
    assert isinstance(reply.body, Events) and reply.body.events == []


async def test_a_sessions_own_confirmation_rides_with_its_next_answer(
    stub: StubServer, http: httpx.AsyncClient, miner_signer, prediction_for
):
    """A session's confirmation wakes the miner's other long-polls, not its own."""
    head = stub.stats()["head"]

    async def poll(hold: float, headers: dict[str, str]) -> tuple[float, Events]:
        started = time.monotonic()
        ask = encode(ResumeRequest(after_seq=head, hold=hold), miner_signer)
        response = await http.post("/v1/events", content=ask, headers=headers)
        body = decode(response.content, max_bytes=1 << 24).body
        assert isinstance(body, Events)
        return time.monotonic() - started, body

    session = {SESSION_HEADER: "miner-session-1"}
    own = asyncio.create_task(poll(1.0, session))
    other = asyncio.create_task(poll(10, {}))
    await asyncio.sleep(0.1)
    p = prediction_for(stub.games()[0], wager=5)
    answer = await http.post(
        "/v1/predictions", content=encode(p, miner_signer), headers=session
    )
    assert decode(answer.content, max_bytes=1 << 20).body.accepted

    other_took, other_events = await other
    own_took, own_events = await own
    assert other_took < 0.9
    assert own_took >= 0.9
    for events in (other_events, own_events):
        assert [e.confirmation.prediction_id for e in events.events] == [
            p.prediction_id
        ]


async def test_plain_get_of_the_websocket_path_says_what_it_is(
    http: httpx.AsyncClient,
):
    """GET /ws without an upgrade answers 426 with a sentence, not a bare 404."""
    response = await http.get("/ws")
    assert response.status_code == 426
    assert response.headers["upgrade"] == "websocket"
    assert "WebSocket endpoint" in response.text


async def test_http_heartbeat(post_signed, miner_signer, stub: StubServer):
    """POST /v1/heartbeat echoes n with ack=true, signed by the stub."""
    status, reply = await post_signed("/v1/heartbeat", Heartbeat(n=3), miner_signer)
    assert status == 200 and reply.sender == stub.ss58
    assert reply.body == Heartbeat(n=3, ack=True)


async def test_games_snapshot_is_public(stub: StubServer, http: httpx.AsyncClient):
    """GET /v1/games returns a signed snapshot of the games without confirmations."""
    response = await http.get("/v1/games")
    reply = decode(response.content)
    assert reply.sender == stub.ss58 and isinstance(reply.body, Snapshot)
    assert len(reply.body.games) == 12 and reply.body.confirmations == []


async def test_health_counts_connections(
    stub: StubServer, http: httpx.AsyncClient, ws_miner, miner_signer
):
    """GET /ws/health reports status, connections since start, open ones and uptime."""
    miner = await ws_miner(miner_signer)
    health = (await http.get("/ws/health")).json()
    assert health["status"] == "ok"
    assert health["connections"] == 1 and health["active_connections"] == 1
    assert health["uptime"] >= 0
    await miner.close()
    for _ in range(100):
        health = (await http.get("/ws/health")).json()
        if health["active_connections"] == 0:
            break
        await asyncio.sleep(0.02)
    assert health["connections"] == 1 and health["active_connections"] == 0


async def test_openapi_lists_every_endpoint(http: httpx.AsyncClient):
    """GET /openapi.json is an OpenAPI 3 document with schemas for every path."""
    doc = (await http.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    expected = {
        "/v1/predictions",
        "/v1/events",
        "/v1/heartbeat",
        "/v1/games",
        "/ws",
        "/ws/health",
        "/openapi.json",
        "/control/websocket",
        "/control/drop",
        "/control/latency",
        "/control/odds",
        "/control/kickoff",
        "/control/result",
    }
    assert expected <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    for name in ("Prediction", "Confirmation", "Events", "Snapshot", "Error"):
        assert name in schemas

    # Every $ref points at a schema that exists.
    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    post = doc["paths"]["/v1/predictions"]["post"]
    assert {"200", "400", "401", "409", "413", "429"} <= set(post["responses"])


@pytest.mark.parametrize("path", ["/v1/predictions", "/v1/events", "/v1/heartbeat"])
async def test_wrong_message_for_endpoint(path, post_signed, miner_signer):
    """A signed message of the wrong type for an endpoint is 400 unexpected_message."""
    body = Heartbeat(n=1) if path != "/v1/heartbeat" else ResumeRequest()
    status, reply = await post_signed(path, body, miner_signer)
    assert status == 400 and reply.body.code == "unexpected_message"
