"""Bad input gets its documented error, changes nothing, and others stay served."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bettensor_core.codec import Signer, decode, encode, new_nonce, signed_bytes
from bettensor_core.protocol import Error, Heartbeat, Hello, Prediction
from validator_stub import StubServer


def envelope(
    signer: Signer,
    type_: str,
    body: bytes,
    *,
    v: int = 1,
    ts: int | None = None,
    sender: str | None = None,
    sig: str | None = None,
) -> bytes:
    """A hand-built envelope, signed unless ``sig`` is given."""
    ts = int(time.time() * 1000) if ts is None else ts
    nonce = new_nonce()
    sender = sender or signer.ss58
    if sig is None:
        sig = "0x" + signer.sign(signed_bytes(v, type_, sender, ts, nonce, body)).hex()
    head = json.dumps(
        {"v": v, "type": type_, "sender": sender, "ts": ts, "nonce": nonce}
    )
    return (head[:-1] + f', "body": {body.decode()}, "sig": "{sig}"}}').encode()


def tampered(data: bytes) -> bytes:
    """Change one digit of the wager after signing."""
    return data.replace(b'"wager":10.0', b'"wager":90.0')


def bad_inputs(signer: Signer, prediction: Prediction) -> dict[str, tuple[bytes, str]]:
    """Each bad message and the error code it must get."""
    good = encode(prediction, signer)
    body = json.dumps({"prediction_id": "x", "wager": "abc"}).encode()
    now = int(time.time() * 1000)
    return {
        "not json": (b"{not json", "malformed"),
        "not an envelope": (b'{"hello": 1}', "malformed"),
        "wrong field type": (envelope(signer, "prediction", body), "malformed"),
        "unknown type": (envelope(signer, "bogus", b"{}"), "unknown_type"),
        "version 2": (
            envelope(signer, "prediction", b"{}", v=2),
            "unsupported_version",
        ),
        "tampered": (tampered(good), "bad_signature"),
        "no signature": (
            envelope(signer, "heartbeat", b'{"n":1}', sig=""),
            "bad_signature",
        ),
        "not an address": (
            envelope(signer, "heartbeat", b'{"n":1}', sender="nobody"),
            "bad_sender",
        ),
        "stale": (encode(prediction, signer, ts=now - 120_000), "stale_timestamp"),
        "future": (encode(prediction, signer, ts=now + 120_000), "future_timestamp"),
    }


STATUS = {
    "malformed": 400,
    "unknown_type": 400,
    "unsupported_version": 400,
    "bad_signature": 401,
    "bad_sender": 401,
    "stale_timestamp": 409,
    "future_timestamp": 409,
}


async def test_bad_http_bodies_get_their_status(
    stub: StubServer, http: httpx.AsyncClient, miner_signer, prediction_for
):
    """Every bad body gets its status and signed error code, and nothing is stored."""
    prediction = prediction_for(stub.games()[0], wager=10.0)
    for name, (data, code) in bad_inputs(miner_signer, prediction).items():
        response = await http.post("/v1/predictions", content=data)
        assert response.status_code == STATUS[code], name
        error = decode(response.content)
        assert error.sender == stub.ss58
        assert isinstance(error.body, Error) and error.body.code == code, name
    assert stub.stats()["accepted"] == 0 and stub.stats()["rejected"] == 0
    assert stub.day_total(miner_signer.ss58) == 0

    # The same prediction, sent properly, is still accepted.
    good = await http.post("/v1/predictions", content=encode(prediction, miner_signer))
    assert good.status_code == 200 and decode(good.content).body.accepted


async def test_bad_frames_get_error_frames_and_session_lives(
    stub: StubServer, ws_miner, miner_signer, prediction_for
):
    """Every bad frame gets an error frame; the same WebSocket then works normally."""
    miner = await ws_miner(miner_signer)
    prediction = prediction_for(stub.games()[0], wager=10.0)
    for name, (data, code) in bad_inputs(miner_signer, prediction).items():
        await miner.send_raw(data.decode())
        error = await miner.recv_type("error")
        assert error.body.code == code, name
    assert stub.stats()["accepted"] == 0
    confirmation = await miner.ask(prediction, "confirmation")
    assert confirmation.body.accepted


async def test_binary_frames_are_accepted(ws_miner, miner_signer):
    """A binary frame carrying an envelope is served like a text frame."""
    miner = await ws_miner(miner_signer)
    await miner.send_raw(encode(Heartbeat(n=5), miner_signer))
    assert (await miner.recv_type("heartbeat")).body.n == 5


async def test_replayed_nonce_refused_everywhere(
    stub: StubServer, http: httpx.AsyncClient, ws_miner, miner_signer, prediction_for
):
    """The same envelope twice is replayed_nonce: on HTTP, after a reconnect, across."""
    data = encode(prediction_for(stub.games()[0]), miner_signer)
    assert (await http.post("/v1/predictions", content=data)).status_code == 200
    again = await http.post("/v1/predictions", content=data)
    assert again.status_code == 409
    assert decode(again.content).body.code == "replayed_nonce"

    # Over a WebSocket (a new connection) the nonce is still spent.
    miner = await ws_miner(miner_signer)
    await miner.send_raw(data)
    assert (await miner.recv_type("error")).body.code == "replayed_nonce"

    beat = encode(Heartbeat(n=1), miner_signer)
    await miner.send_raw(beat)
    await miner.recv_type("heartbeat")
    await miner.close()
    other = await ws_miner(miner_signer)
    await other.send_raw(beat)
    assert (await other.recv_type("error")).body.code == "replayed_nonce"
    assert stub.stats()["accepted"] == 1


async def test_replayed_hello_refused(stub: StubServer, miner_signer):
    """A captured hello cannot open a second session."""
    hello = encode(Hello(), miner_signer)
    async with connect(stub.ws_url) as ws:
        await ws.send(hello)
        assert decode(await ws.recv()).type == "welcome"
    async with connect(stub.ws_url) as ws:
        await ws.send(hello)
        assert decode(await ws.recv()).body.code == "replayed_nonce"


@pytest.fixture
def small_config(stub_config):
    stub_config.limits = replace(
        stub_config.limits, max_message_bytes=4096, max_connections=2, rate=5, burst=5
    )
    return stub_config


async def test_oversized_frame_and_body(small_config, miner_signer, prediction_for):
    """Past max message bytes: error too_large on WS (session lives), 413 on HTTP."""
    async with StubServer(small_config) as stub:
        big = prediction_for(stub.games()[0], prediction_id="x" * 5000)
        async with connect(stub.ws_url, max_size=None) as ws:
            await ws.send(encode(Hello(), miner_signer))
            welcome = decode(await ws.recv())
            assert welcome.body.max_message_bytes == 4096
            await ws.recv()
            await ws.send(encode(big, miner_signer))
            assert decode(await ws.recv()).body.code == "too_large"
            await ws.send(encode(Heartbeat(n=1), miner_signer))
            assert decode(await ws.recv()).body.ack

            # A frame far past the limit is cut off by the WebSocket layer.
            await ws.send("x" * (2 << 20))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

        async with httpx.AsyncClient(base_url=stub.url) as client:
            response = await client.post(
                "/v1/predictions", content=encode(big, miner_signer)
            )
            assert response.status_code == 413
            assert decode(response.content).body.code == "too_large"
            # Streamed without a length, the body is still cut at the limit.
            chunks = [b"x" * 1024] * 8

            async def stream():
                for chunk in chunks:
                    yield chunk

            response = await client.post("/v1/predictions", content=stream())
            assert response.status_code == 413
        assert stub.stats()["accepted"] == 0 and stub.stats()["rejected"] == 0


async def test_too_many_connections(small_config, miner_signer):
    """Past max connections a WebSocket gets an error frame and close 1013."""
    async with (
        StubServer(small_config) as stub,
        connect(stub.ws_url) as a,
        connect(stub.ws_url) as b,
    ):
        # The second socket has not said hello yet and still counts.
        await a.send(encode(Hello(), miner_signer))
        await a.recv()
        await a.recv()
        async with connect(stub.ws_url) as c:
            error = decode(await c.recv())
            assert error.body.code == "too_many_connections"
            with pytest.raises(ConnectionClosed) as closed:
                await c.recv()
            assert closed.value.rcvd.code == 1013
            assert "too many connections" in closed.value.rcvd.reason
        # The open sessions are untouched.
        await a.send(encode(Heartbeat(n=1), miner_signer))
        assert decode(await a.recv()).body.ack
        await b.send(encode(Hello(), miner_signer))
        assert decode(await b.recv()).type == "welcome"


async def test_flood_is_rate_limited_and_others_served(
    small_config, miner_signer, other_signer, prediction_for
):
    """A flooding miner gets rate_limited errors and 429s; another miner is served."""
    async with StubServer(small_config) as stub:
        async with connect(stub.ws_url) as ws:
            await ws.send(encode(Hello(), miner_signer))
            await ws.recv()
            await ws.recv()
            for n in range(20):
                await ws.send(encode(Heartbeat(n=n), miner_signer))
            answers = [decode(await ws.recv()) for _ in range(20)]
            codes = [a.body.code for a in answers if a.type == "error"]
            assert codes and set(codes) == {"rate_limited"}
            assert sum(a.type == "heartbeat" for a in answers) == 20 - len(codes)

            async with httpx.AsyncClient(base_url=stub.url) as client:
                flood = [
                    client.post(
                        "/v1/predictions",
                        content=encode(prediction_for(stub.games()[0]), miner_signer),
                    )
                    for _ in range(5)
                ]
                responses = await asyncio.gather(*flood)
                statuses = [r.status_code for r in responses]
                assert 429 in statuses
                for response in responses:
                    if response.status_code == 429:
                        assert response.headers["retry-after"] == "1"
                        assert decode(response.content).body.code == "rate_limited"

                # The other miner is served all along.
                p = prediction_for(stub.games()[0])
                ok = await client.post(
                    "/v1/predictions", content=encode(p, other_signer)
                )
                assert ok.status_code == 200 and decode(ok.content).body.accepted
        assert stub.stats()["accepted"] == statuses.count(200) + 1


async def test_hello_timeout_closes(stub_config):
    """A WebSocket that never says hello is closed after the hello timeout."""
    stub_config.limits = replace(stub_config.limits, hello_timeout=0.3)
    async with StubServer(stub_config) as stub, connect(stub.ws_url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert "hello" in closed.value.rcvd.reason


async def test_fuzzed_input_never_breaks_the_stub(
    stub: StubServer, http: httpx.AsyncClient, ws_miner, miner_signer, prediction_for
):
    """Hundreds of random and mutated messages each get an error; nothing is stored."""
    import random

    rng = random.Random(1234)
    good = encode(prediction_for(stub.games()[0]), miner_signer)
    samples: list[bytes] = []
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        samples.append(bytes(data))
    samples += [rng.randbytes(rng.randint(0, 300)) for _ in range(50)]
    samples += [b"null", b"[]", b'""', b"0", b'{"v":1}', b"{}" * 1000]

    miner = await ws_miner(miner_signer)
    for data in samples:
        response = await http.post("/v1/predictions", content=data)
        assert response.status_code in (400, 401, 409), data
        assert decode(response.content).body.code
        await miner.send_raw(data)
        assert (await miner.recv_type("error")).type == "error"
    assert stub.stats()["accepted"] == 0 and stub.stats()["rejected"] == 0
    assert (await miner.ask(Heartbeat(n=9), "heartbeat")).body.ack
