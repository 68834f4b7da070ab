"""The validator stub over WebSocket: sessions, confirmations, pushes, resume."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bettensor_core.codec import decode, encode
from bettensor_core.protocol import (
    Confirmation,
    ConfirmationBatch,
    Error,
    Events,
    Heartbeat,
    Hello,
    PredictionBatch,
    ResumeRequest,
    Snapshot,
)
from validator_stub import StubServer


async def test_hello_gets_welcome_and_snapshot(
    stub: StubServer, ws_miner, miner_signer
):
    """A fresh miner gets a signed welcome with the limits, then a snapshot of games."""
    miner = await ws_miner(miner_signer)
    assert miner.welcome is not None
    assert miner.welcome.head == stub.stats()["head"]
    assert miner.welcome.max_message_bytes == 256 * 1024
    assert miner.welcome.idle_timeout == pytest.approx(50.0)
    assert miner.first is not None and miner.first.sender == stub.ss58
    assert isinstance(miner.first.body, Snapshot)
    assert [g.game_id for g in miner.first.body.games] == [
        g.game_id for g in stub.games()
    ]


async def test_promised_rare_heartbeats_do_not_hold_a_socket_for_ever(
    stub: StubServer, ws_miner, miner_signer
):
    """A hello promising a heartbeat every 1e9 s gets the stub's longest timeout."""
    miner = await ws_miner(miner_signer, heartbeat_interval=1e9)
    assert miner.welcome.idle_timeout == stub.hub.limits.max_idle_timeout == 600


async def test_prediction_confirmed_and_pushed_to_the_miners_other_sessions(
    stub: StubServer, ws_miner, miner_signer, prediction_for
):
    """The answer goes to the asker; the event to its other sessions and the log."""
    asking = await ws_miner(miner_signer)
    other = await ws_miner(miner_signer)
    assert isinstance(asking.first.body, Snapshot)
    before = asking.first.body.seq

    p = prediction_for(stub.games()[0], wager=25)
    await asking.send(p)
    answer = await asking.recv()
    conf = answer.body
    assert isinstance(conf, Confirmation)
    assert conf.accepted and conf.reason is None and conf.budget_left == 975

    # The asking session is not sent the same confirmation again: a push
    # would have been queued before this heartbeat's answer.
    await asking.send(Heartbeat(n=1))
    assert (await asking.recv()).type == "heartbeat"

    pushed = (await other.recv()).body
    assert isinstance(pushed, Events)
    assert [e.kind for e in pushed.events] == ["confirmation"]
    assert pushed.events[0].confirmation == conf

    # A session resuming from before the prediction gets the event from the log.
    resumed = await ws_miner(miner_signer, resume_after=before)
    assert isinstance(resumed.first.body, Events)
    assert [e.confirmation for e in resumed.first.body.events] == [conf]

    assert stub.stats()["accepted"] == 1
    assert stub.day_total(miner_signer.ss58) == 25


async def test_batch_gets_confirmations_in_order(
    stub: StubServer, ws_miner, miner_signer, prediction_for
):
    """A prediction batch is answered with one confirmation per prediction, in order."""
    miner = await ws_miner(miner_signer)
    games = stub.games()
    batch = [prediction_for(games[0]), prediction_for(games[1], wager=-1)]
    reply = await miner.ask(PredictionBatch(predictions=batch), "confirmation_batch")
    assert isinstance(reply.body, ConfirmationBatch)
    confs = reply.body.confirmations
    assert [c.prediction_id for c in confs] == [p.prediction_id for p in batch]
    assert [c.accepted for c in confs] == [True, False]
    assert confs[1].reason == "invalid_wager"


async def test_resend_returns_original_and_counts_once(
    stub: StubServer, ws_miner, miner_signer, prediction_for
):
    """Resending a prediction id with the same content returns the original answer."""
    miner = await ws_miner(miner_signer)
    p = prediction_for(stub.games()[0], wager=100)
    first = await miner.ask(p, "confirmation")
    again = await miner.ask(p, "confirmation")
    assert again.body == first.body
    assert stub.stats()["accepted"] == 1
    assert stub.day_total(miner_signer.ss58) == 100

    # Reconnected, still the same original answer.
    await miner.close()
    other = await ws_miner(miner_signer)
    third = await other.ask(p, "confirmation")
    assert third.body == first.body
    assert stub.day_total(miner_signer.ss58) == 100


async def test_same_id_other_content_is_duplicate_id(
    stub: StubServer, ws_miner, miner_signer, prediction_for
):
    """The same prediction id with different content is refused as duplicate_id."""
    miner = await ws_miner(miner_signer)
    game = stub.games()[0]
    p = prediction_for(game, wager=10)
    await miner.ask(p, "confirmation")
    changed = prediction_for(game, wager=20, prediction_id=p.prediction_id)
    reply = await miner.ask(changed, "confirmation")
    assert isinstance(reply.body, Confirmation)
    assert not reply.body.accepted and reply.body.reason == "duplicate_id"
    assert stub.day_total(miner_signer.ss58) == 10
    # The original answer still stands.
    original = await miner.ask(p, "confirmation")
    assert isinstance(original.body, Confirmation) and original.body.accepted


async def test_heartbeat_is_acked(ws_miner, miner_signer):
    """A heartbeat is answered with the same n and ack=true; interval sets idle."""
    miner = await ws_miner(miner_signer)
    reply = await miner.ask(Heartbeat(n=7, interval=30.0), "heartbeat")
    assert reply.body == Heartbeat(n=7, ack=True, interval=30.0)


async def test_odds_push_reaches_every_miner(
    stub: StubServer, ws_miner, miner_signer, other_signer
):
    """An odds change is pushed to all connected miners at once, same seq."""
    a = await ws_miner(miner_signer)
    b = await ws_miner(other_signer)
    game = stub.games()[0]
    event = await stub.push_odds(game.game_id, 1.5, 3.0, game.odds_tie)
    for miner in (a, b):
        msg = await miner.recv()
        assert isinstance(msg.body, Events)
        assert msg.body.events[0].seq == event.seq
        assert msg.body.events[0].kind == "odds_changed"
        assert msg.body.events[0].game is not None
        assert msg.body.events[0].game.odds_a == 1.5


async def test_confirmation_events_reach_only_their_miner(
    stub: StubServer, ws_miner, miner_signer, other_signer, prediction_for
):
    """A confirmation event goes to its miner only; others see a gap in seq."""
    a = await ws_miner(miner_signer)
    b = await ws_miner(other_signer)
    await a.ask(prediction_for(stub.games()[0]), "confirmation")
    game = stub.games()[1]
    pushed = await stub.push_odds(game.game_id, 2.0, 2.0, game.odds_tie)
    msg = await b.recv()
    assert isinstance(msg.body, Events)
    assert [e.kind for e in msg.body.events] == ["odds_changed"]
    assert msg.body.events[0].seq == pushed.seq


async def test_resume_after_seq_replays_missed_events(
    stub: StubServer, ws_miner, miner_signer
):
    """Reconnecting with resume_after gets exactly the events after it."""
    miner = await ws_miner(miner_signer)
    head = miner.welcome.head
    await miner.close()
    games = stub.games()
    e1 = await stub.push_odds(games[0].game_id, 1.7, 2.9, games[0].odds_tie)
    e2 = await stub.kickoff(games[1].game_id)
    again = await ws_miner(miner_signer, resume_after=head)
    assert isinstance(again.first.body, Events)
    assert [e.seq for e in again.first.body.events] == [e1.seq, e2.seq]
    assert again.first.body.head == e2.seq

    # The same over an open session with a resume message.
    reply = await again.ask(ResumeRequest(after_seq=e1.seq), "events")
    assert [e.seq for e in reply.body.events] == [e2.seq]


async def test_resume_too_old_gets_snapshot(stub_config, miner_signer, prediction_for):
    """Resuming from a seq that fell out of the event log gets a snapshot."""
    stub_config.limits = replace(stub_config.limits, event_log_size=5)
    async with StubServer(stub_config) as stub:
        game = stub.games()[0]
        for i in range(10):
            await stub.push_odds(game.game_id, 1.5 + i / 100, 3.0, game.odds_tie)
        async with connect(stub.ws_url) as ws:
            await ws.send(encode(Hello(resume_after=2), miner_signer))
            assert decode(await ws.recv()).type == "welcome"
            snap = decode(await ws.recv())
            assert isinstance(snap.body, Snapshot)
            assert snap.body.seq == stub.stats()["head"]
            assert {g.game_id: g for g in snap.body.games}[game.game_id].odds_a == 1.59

            # A resume from a seq ahead of the validator also gets a snapshot.
            await ws.send(encode(ResumeRequest(after_seq=10**9), miner_signer))
            assert decode(await ws.recv()).type == "snapshot"


async def test_sender_mismatch_refused(ws_miner, miner_signer, other_signer):
    """A frame signed by another hotkey than the hello's is refused, session lives."""
    miner = await ws_miner(miner_signer)
    await miner.ws.send(encode(Heartbeat(n=1), other_signer))
    err = await miner.recv_type("error")
    assert isinstance(err.body, Error) and err.body.code == "sender_mismatch"
    assert (await miner.ask(Heartbeat(n=2), "heartbeat")).body.n == 2


async def test_first_frame_must_be_hello(stub: StubServer, miner_signer):
    """Anything before hello is answered with hello_required; hello then works."""
    async with connect(stub.ws_url) as ws:
        await ws.send(encode(Heartbeat(n=1), miner_signer))
        err = decode(await ws.recv())
        assert isinstance(err.body, Error) and err.body.code == "hello_required"
        await ws.send(encode(Hello(), miner_signer))
        assert decode(await ws.recv()).type == "welcome"


async def test_second_hello_is_unexpected(ws_miner, miner_signer):
    """A hello on an open session is refused with unexpected_message."""
    miner = await ws_miner(miner_signer)
    err = await miner.ask(Hello(), "error")
    assert err.body.code == "unexpected_message"


async def test_closed_socket_does_not_block_pushes(
    stub: StubServer, ws_miner, miner_signer, other_signer
):
    """A miner that vanished does not stop pushes from reaching the others."""
    gone = await ws_miner(miner_signer)
    live = await ws_miner(other_signer)
    gone.ws.transport.abort()
    game = stub.games()[0]
    for i in range(3):
        await stub.push_odds(game.game_id, 1.5 + i / 10, 3.0, game.odds_tie)
        msg = await live.recv()
        assert msg.body.events[0].game.odds_a == pytest.approx(1.5 + i / 10)


async def test_idle_websocket_is_closed(stub_config, miner_signer):
    """A WebSocket silent for longer than its idle timeout is closed by the stub."""
    stub_config.limits = replace(stub_config.limits, min_idle_timeout=0.3)
    async with StubServer(stub_config) as stub, connect(stub.ws_url) as ws:
        await ws.send(encode(Hello(heartbeat_interval=0.1), miner_signer))
        welcome = decode(await ws.recv())
        assert welcome.body.idle_timeout == pytest.approx(0.3)
        await ws.recv()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert "idle" in closed.value.rcvd.reason


async def test_long_replay_comes_in_chunks(stub_config, miner_signer):
    """A long replay comes as several events messages, in order, on both transports."""
    stub_config.limits = replace(stub_config.limits, events_per_frame=4)
    async with StubServer(stub_config) as stub:
        start = stub.stats()["head"]
        game = stub.games()[0]
        for i in range(10):
            await stub.push_odds(game.game_id, 1.5 + i / 100, 3.0, game.odds_tie)
        head = stub.stats()["head"]
        async with connect(stub.ws_url) as ws:
            await ws.send(encode(Hello(resume_after=start), miner_signer))
            assert decode(await ws.recv()).type == "welcome"
            chunks = [decode(await ws.recv()).body for _ in range(3)]
        assert [len(c.events) for c in chunks] == [4, 4, 2]
        seqs = [e.seq for c in chunks for e in c.events]
        assert seqs == list(range(start + 1, head + 1))
        assert [c.head for c in chunks] == [start + 4, start + 8, head]

        # Over HTTP each poll gets one chunk whose head says where to go on.
        async with httpx.AsyncClient(base_url=stub.url) as client:
            after, got = start, []
            while after < head:
                body = encode(ResumeRequest(after_seq=after), miner_signer)
                answer = decode((await client.post("/v1/events", content=body)).content)
                got += [e.seq for e in answer.body.events]
                after = answer.body.head
        assert got == seqs
