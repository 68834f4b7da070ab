"""The stub's test controls, over HTTP (loopback only) and as methods."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bettensor_core.codec import decode, encode
from bettensor_core.protocol import Events, Heartbeat, Hello, ResumeRequest, Snapshot
from validator_stub import StubServer
from validator_stub.openapi import build_openapi
from validator_stub.web import build_app


async def test_websocket_control_refuses_upgrades(
    stub: StubServer, http: httpx.AsyncClient, ws_miner, miner_signer
):
    """With websocket disabled, upgrades get HTTP 403 and HTTP keeps working."""
    response = await http.post("/control/websocket", json={"enabled": False})
    assert response.status_code == 200 and response.json()["ok"]
    with pytest.raises(InvalidStatus) as refused:
        await connect(stub.ws_url)
    assert refused.value.response.status_code == 403
    beat = await http.post(
        "/v1/heartbeat", content=encode(Heartbeat(n=1), miner_signer)
    )
    assert beat.status_code == 200

    await http.post("/control/websocket", json={"enabled": True})
    miner = await ws_miner(miner_signer)
    assert miner.welcome is not None


async def test_no_websocket_flag_refuses_from_start(stub_config):
    """A stub started with websocket disabled refuses upgrades with 403."""
    stub_config.websocket_enabled = False
    async with StubServer(stub_config) as stub:
        with pytest.raises(InvalidStatus) as refused:
            await connect(stub.ws_url)
        assert refused.value.response.status_code == 403


async def test_drop_closes_websockets_and_wakes_long_polls(
    stub: StubServer, http: httpx.AsyncClient, ws_miner, miner_signer, other_signer
):
    """/control/drop closes every live WebSocket and ends held long-polls at once."""
    a = await ws_miner(miner_signer)
    b = await ws_miner(other_signer)
    head = stub.stats()["head"]
    poll = asyncio.create_task(
        http.post(
            "/v1/events",
            content=encode(ResumeRequest(after_seq=head, hold=20), miner_signer),
        )
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    response = await http.post("/control/drop")
    assert response.json()["count"] == 2
    for miner in (a, b):
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(miner.ws.recv(), 5)
        assert closed.value.rcvd.code == 1012
    answer = decode((await poll).content)
    assert time.monotonic() - started < 5
    assert answer.body == Events(events=[], head=head)
    # New connections are welcome right after.
    assert (await ws_miner(miner_signer)).welcome is not None


async def test_drop_method(stub: StubServer, ws_miner, miner_signer):
    """StubServer.drop_connections closes the live WebSockets and counts them."""
    miner = await ws_miner(miner_signer)
    assert stub.drop_connections() == 1
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(miner.ws.recv(), 5)


async def test_latency_control(http: httpx.AsyncClient, miner_signer):
    """/control/latency delays miner requests by the given milliseconds."""
    assert (await http.post("/control/latency", json={"ms": 300})).status_code == 200
    started = time.monotonic()
    await http.post("/v1/heartbeat", content=encode(Heartbeat(n=1), miner_signer))
    assert time.monotonic() - started >= 0.28
    await http.post("/control/latency", json={"ms": 0})
    started = time.monotonic()
    await http.post("/v1/heartbeat", content=encode(Heartbeat(n=2), miner_signer))
    assert time.monotonic() - started < 0.25
    assert (await http.post("/control/latency", json={"ms": -1})).status_code == 400


async def test_odds_control_pushes(
    stub: StubServer, http: httpx.AsyncClient, ws_miner, miner_signer
):
    """/control/odds changes a game's odds and pushes odds_changed."""
    miner = await ws_miner(miner_signer)
    game = next(g for g in stub.games() if g.can_tie)
    response = await http.post(
        "/control/odds",
        json={"game_id": game.game_id, "odds_a": 1.4, "odds_b": 5.0, "odds_tie": 4.1},
    )
    assert response.status_code == 200
    msg = await miner.recv()
    event = msg.body.events[0]
    assert event.kind == "odds_changed" and event.seq == response.json()["seq"]
    assert (event.game.odds_a, event.game.odds_b, event.game.odds_tie) == (
        1.4,
        5.0,
        4.1,
    )


async def test_kickoff_control_closes_game(
    stub: StubServer, http: httpx.AsyncClient, ws_miner, miner_signer, prediction_for
):
    """/control/kickoff starts a game: pushed, and predictions on it are refused."""
    miner = await ws_miner(miner_signer)
    game = stub.games()[0]
    response = await http.post("/control/kickoff", json={"game_id": game.game_id})
    assert response.status_code == 200
    event = (await miner.recv()).body.events[0]
    assert event.kind == "kickoff" and event.game.status == "live"
    reply = await miner.ask(prediction_for(game), "confirmation")
    assert reply.body.reason == "game_started"
    again = await http.post("/control/kickoff", json={"game_id": game.game_id})
    assert again.status_code == 409


async def test_result_control_settles(
    stub: StubServer,
    http: httpx.AsyncClient,
    ws_miner,
    miner_signer,
    other_signer,
    prediction_for,
):
    """/control/result settles: winners get wager x odds taken, losers 0, pushed."""
    game = stub.games()[0]
    winner = await ws_miner(miner_signer)
    loser = await ws_miner(other_signer)
    win = prediction_for(game, wager=10, outcome=0)
    lose = prediction_for(game, wager=20, outcome=1)
    await winner.ask(win, "confirmation")
    await loser.ask(lose, "confirmation")
    # The odds change after acceptance; the odds taken stay.
    await stub.push_odds(game.game_id, 3.0, 1.2, game.odds_tie)

    response = await http.post(
        "/control/result", json={"game_id": game.game_id, "outcome": 0}
    )
    assert response.status_code == 200 and response.json()["count"] == 2
    kinds: list[str] = []
    settlement = None
    while "settlement" not in kinds:
        for event in (await winner.recv()).body.events:
            kinds.append(event.kind)
            settlement = event.settlement or settlement
    assert kinds == ["odds_changed", "result", "settlement"]
    assert settlement.won and settlement.payout == pytest.approx(10 * game.odds_a)
    while True:
        events = (await loser.recv()).body.events
        lost = next((e.settlement for e in events if e.settlement), None)
        if lost:
            break
    assert not lost.won and lost.payout == 0
    # Settlements are in the snapshot too.
    snap = await winner.ask(ResumeRequest(), "snapshot")
    assert isinstance(snap.body, Snapshot)
    assert [s.prediction_id for s in snap.body.settlements] == [win.prediction_id]
    assert [c.prediction_id for c in snap.body.confirmations] == [win.prediction_id]


async def test_game_control_errors(stub: StubServer, http: httpx.AsyncClient):
    """Controls answer 404 for unknown games, 409 for impossible, 400 for bad bodies."""
    gone = await http.post("/control/kickoff", json={"game_id": "nope"})
    assert gone.status_code == 404
    no_tie = next(g for g in stub.games() if not g.can_tie)
    tie = await http.post(
        "/control/result", json={"game_id": no_tie.game_id, "outcome": 2}
    )
    assert tie.status_code == 409
    bad = await http.post("/control/odds", json={"game_id": 5})
    assert bad.status_code == 400
    junk = await http.post("/control/latency", content=b"{oops")
    assert junk.status_code == 400


async def test_control_methods(stub: StubServer, ws_miner, miner_signer):
    """The StubServer methods mirror the HTTP controls and push the same events."""
    miner = await ws_miner(miner_signer)
    game = next(g for g in stub.games() if not g.can_tie)
    await stub.push_odds(game.game_id, 1.3, 3.3)
    await stub.kickoff(game.game_id)
    await stub.settle(game.game_id, 1)
    kinds = []
    while len(kinds) < 3:
        kinds += [e.kind for e in (await miner.recv()).body.events]
    assert kinds == ["odds_changed", "kickoff", "result"]
    final = next(g for g in stub.games() if g.game_id == game.game_id)
    assert final.status == "final" and final.outcome == 1
    stub.set_latency(0)
    stub.set_websocket_enabled(False)
    with pytest.raises(InvalidStatus):
        await connect(stub.ws_url)


async def test_controls_refuse_remote_clients(stub: StubServer):
    """A control from a non-loopback address is refused with 403."""
    transport = httpx.ASGITransport(
        app=build_app(stub.hub, lambda: build_openapi(None)), client=("10.1.2.3", 5000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://stub") as client:
        for path in ("/control/drop", "/control/latency", "/control/websocket"):
            response = await client.post(path, json={"ms": 1, "enabled": False})
            assert response.status_code == 403, path
        assert (await client.get("/ws/health")).status_code == 200


async def test_hello_after_drop_resumes(stub: StubServer, ws_miner, miner_signer):
    """After a drop, a miner resuming from its last seq gets what it missed."""
    miner = await ws_miner(miner_signer)
    head = miner.welcome.head
    stub.drop_connections()
    game = stub.games()[0]
    pushed = await stub.push_odds(game.game_id, 1.95, 2.05, game.odds_tie)
    async with connect(stub.ws_url) as ws:
        await ws.send(encode(Hello(resume_after=head), miner_signer))
        decode(await ws.recv())
        replay = decode(await ws.recv())
        assert [e.seq for e in replay.body.events] == [pushed.seq]
