"""Both transports and the link against the real stub: answers, errors, limits."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from bettensor_core import LinkOptions, MinerClient, Signer
from bettensor_core.codec import DEFAULT_MAX_MESSAGE_BYTES
from bettensor_core.config import ValidatorConfig
from bettensor_core.errors import ErrorCode, ProtocolError, TransportError
from bettensor_core.models import LinkState
from bettensor_core.outbox import new_prediction, outbox_message
from bettensor_core.protocol import (
    Confirmation,
    ConfirmationBatch,
    Events,
    Heartbeat,
    Hello,
    Prediction,
    PredictionBatch,
    Snapshot,
    Welcome,
)
from bettensor_core.transport import (
    HttpTransport,
    TransportTimeout,
    WebSocketRefused,
    WebSocketTransport,
    make_http_client,
)
from validator_stub.config import StubConfig
from validator_stub.server import StubServer


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[StubServer]:
    server = StubServer(
        StubConfig(port=0, db=str(tmp_path / "stub.sqlite"), speed=0, games=6)
    )
    await server.start()
    yield server
    await server.stop()


def _prediction(stub: StubServer) -> Prediction:
    game = next(g for g in stub.games() if g.status == "scheduled")
    return new_prediction(game, 0, 1.0, budget=1000.0, confidence=None, now=time.time())


async def test_websocket_session_answers_each_request(stub: StubServer) -> None:
    """Hello gets a welcome and a snapshot; heartbeats and predictions get theirs."""
    transport = WebSocketTransport(stub.ws_url, Signer.from_uri("//ws-a"))
    welcome = await transport.open(Hello(heartbeat_interval=5.0), timeout=2)
    try:
        assert isinstance(welcome.body, Welcome) and welcome.sender == stub.ss58
        first = await transport.next_push(None, 0)
        assert isinstance(first.body, Snapshot) and len(first.body.games) == 6

        ack = await transport.request(Heartbeat(n=7, interval=5.0), timeout=2)
        assert isinstance(ack.body, Heartbeat) and ack.body.n == 7 and ack.body.ack

        one, two, three = (_prediction(stub) for _ in range(3))
        answer = await transport.request(one, timeout=2)
        assert isinstance(answer.body, Confirmation) and answer.body.accepted
        batch = await transport.request(
            PredictionBatch(predictions=[two, three]), timeout=2
        )
        assert isinstance(batch.body, ConfirmationBatch)
        ids = [c.prediction_id for c in batch.body.confirmations]
        assert ids == [two.prediction_id, three.prediction_id]

        # The asking session already has its confirmations as answers, so
        # the validator pushes them nothing more: a heartbeat's answer is next.
        # Frames arrive in order, so a push would already be waiting.
        await transport.request(Heartbeat(n=8), timeout=2)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(transport.next_push(None, 0), 0.05)
    finally:
        await transport.close()

    # A session resuming from before the predictions gets their events.
    again = WebSocketTransport(stub.ws_url, Signer.from_uri("//ws-a"))
    await again.open(Hello(resume_after=first.body.seq), timeout=2)
    try:
        replay = await again.next_push(first.body.seq, 0)
        assert isinstance(replay.body, Events)
        replayed = [
            e.confirmation.prediction_id for e in replay.body.events if e.confirmation
        ]
        assert replayed == [one.prediction_id, two.prediction_id, three.prediction_id]
    finally:
        await again.close()


async def test_http_session_answers_and_long_polls(stub: StubServer) -> None:
    """Over HTTP a heartbeat opens, predictions are answered, the long-poll resumes."""
    async with make_http_client(stub.url) as client:
        transport = HttpTransport(client, Signer.from_uri("//http-a"))
        ack = await transport.open(Hello(heartbeat_interval=5.0), timeout=2)
        assert isinstance(ack.body, Heartbeat) and ack.body.ack

        snapshot = await transport.next_push(None, 0)
        assert isinstance(snapshot.body, Snapshot)
        prediction = _prediction(stub)
        answer = await transport.request(prediction, timeout=2)
        assert isinstance(answer.body, Confirmation) and answer.body.accepted

        events = await transport.next_push(snapshot.body.seq, 1.0)
        assert isinstance(events.body, Events)
        assert [
            e.confirmation.prediction_id for e in events.body.events if e.confirmation
        ] == [prediction.prediction_id]

        # Nothing new: the validator holds the poll about as long as asked.
        started = time.monotonic()
        empty = await transport.next_push(events.body.head, 0.5)
        assert isinstance(empty.body, Events) and empty.body.events == []
        assert time.monotonic() - started >= 0.4

        # The session names itself, so its held poll is not woken only to
        # repeat a confirmation it was answered with; that comes at the end.
        started = time.monotonic()
        held = asyncio.create_task(transport.next_push(empty.body.head, 0.8))
        await asyncio.sleep(0.1)
        another = _prediction(stub)
        await transport.request(another, timeout=2)
        late = await held
        assert time.monotonic() - started >= 0.7
        assert isinstance(late.body, Events)
        assert [e.confirmation.prediction_id for e in late.body.events] == [
            another.prediction_id
        ]


async def test_refusals_become_protocol_errors_with_their_code(
    stub: StubServer,
) -> None:
    """An oversized message is refused with too_large, on HTTP as a ProtocolError."""
    prediction = _prediction(stub)
    huge = PredictionBatch(
        predictions=[
            Prediction(**{**_fields(prediction), "prediction_id": uuid.uuid4().hex})
            for _ in range(2000)
        ]
    )
    async with make_http_client(stub.url) as client:
        transport = HttpTransport(client, Signer.from_uri("//http-b"))
        with pytest.raises(ProtocolError) as refused:
            await transport.request(huge, timeout=5)
        assert refused.value.code == ErrorCode.TOO_LARGE
        # The session is still usable.
        ack = await transport.request(Heartbeat(n=1), timeout=2)
        assert isinstance(ack.body, Heartbeat)


def _fields(prediction: Prediction) -> dict[str, object]:
    import msgspec

    return msgspec.structs.asdict(prediction)


def test_outbox_batches_fit_the_validators_message_limit() -> None:
    """A batch is halved until its body fits the announced size limit."""
    game_prediction = Prediction(
        prediction_id="x" * 32,
        game_id="g",
        outcome=0,
        wager=1.0,
        team_a="A" * 400,
        team_b="B" * 400,
        odds_a=2.0,
        odds_b=2.0,
        created_at=1.0,
    )
    pending = [game_prediction] * 100
    message = outbox_message(pending, max_bytes=20_000)
    assert isinstance(message, PredictionBatch)
    assert 1 < len(message.predictions) < 100
    assert len(outbox_message(pending).predictions) <= 100  # type: ignore[union-attr]
    assert DEFAULT_MAX_MESSAGE_BYTES > 20_000


async def test_a_refused_upgrade_is_a_websocket_refused_error(
    stub: StubServer,
) -> None:
    """A 403 on the upgrade maps to WebSocketRefused, a TransportError."""
    stub.set_websocket_enabled(False)
    transport = WebSocketTransport(stub.ws_url, Signer.from_uri("//ws-b"))
    with pytest.raises(WebSocketRefused) as refused:
        await transport.open(Hello(), timeout=2)
    assert refused.value.status == 403


async def test_nothing_listening_is_a_transport_error() -> None:
    """A closed port is a TransportError on both transports, never a library error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    signer = Signer.from_uri("//nobody")
    with pytest.raises(TransportError):
        await WebSocketTransport(f"ws://127.0.0.1:{port}/ws", signer).open(
            Hello(), timeout=1
        )
    async with make_http_client(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(TransportError):
            await HttpTransport(client, signer).open(Hello(), timeout=1)


async def test_http_keeps_its_connection_between_sparse_predictions(
    stub: StubServer,
) -> None:
    """A quiet spell longer than httpx's 5 s default does not cost a new connection."""
    proxy = await FaultProxy("127.0.0.1", stub.port or 0).start()
    try:
        async with make_http_client(proxy.url) as client:
            http = HttpTransport(client, Signer.from_uri("//sparse"))
            await http.open(Hello(), timeout=2)
            await asyncio.sleep(6.0)
            await http.request(Heartbeat(n=1), timeout=2)
        assert proxy.stats.accepted == 1
    finally:
        await proxy.stop()


async def test_a_stalled_peer_is_a_timeout(stub: StubServer) -> None:
    """No bytes back within the timeout raises TransportTimeout on both transports."""
    proxy = await FaultProxy("127.0.0.1", stub.port or 0).start()
    try:
        signer = Signer.from_uri("//stalled")
        ws = WebSocketTransport(proxy.ws_url + "/ws", signer)
        await ws.open(Hello(), timeout=2)
        async with make_http_client(proxy.url) as client:
            http = HttpTransport(client, signer)
            await http.open(Hello(), timeout=2)
            proxy.stall(True)
            with pytest.raises(TransportTimeout):
                await ws.request(Heartbeat(n=1), timeout=0.3)
            with pytest.raises(TransportTimeout):
                await http.request(Heartbeat(n=2), timeout=0.3)
            proxy.stall(False)
        await ws.close(graceful=False)
    finally:
        await proxy.stop()


async def test_connections_dropped_at_once_do_not_cause_a_storm(
    stub: StubServer, tmp_path: Path
) -> None:
    """A validator that drops every connection right away sees few reconnects."""
    options = LinkOptions(
        backoff_base=0.1, backoff_cap=5.0, stable_after=2.0, seed=3, probe_interval=60
    )
    client = MinerClient(
        Signer.from_uri("//storm"),
        [ValidatorConfig(stub.url, ss58=stub.ss58, name="stub")],
        store_path=tmp_path / "m.sqlite3",
        link_options=options,
    )

    async def drop_all_the_time() -> None:
        for _ in range(150):
            stub.drop_connections()
            await asyncio.sleep(0.02)

    before = stub.stats()["connections"]
    async with client:
        await drop_all_the_time()
        status = client.links()[0]
    opened = stub.stats()["connections"] - before
    # Without backoff growth this loop would see ~30 connections (one per
    # 0.1 s); full jitter doubling keeps it to a handful.
    assert 2 <= opened <= 12
    assert status.state in (
        LinkState.CONNECTING,
        LinkState.WEBSOCKET,
        LinkState.OFFLINE,
    )
