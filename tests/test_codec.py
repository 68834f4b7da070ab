"""The signed envelope codec: signing, verifying, tamper detection, every error."""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from bettensor_core.codec import (
    FRESHNESS_WINDOW,
    NonceGuard,
    Signed,
    Signer,
    decode,
    encode,
    signed_bytes,
)
from bettensor_core.errors import ErrorCode, ProtocolError
from bettensor_core.protocol import (
    MESSAGE_TYPES,
    Heartbeat,
    Prediction,
    PredictionBatch,
)

PREDICTION = Prediction(
    prediction_id="p-1",
    game_id="epl-00001",
    outcome=0,
    wager=12.5,
    team_a="Arsenal",
    team_b="Chelsea",
    odds_a=2.1,
    odds_b=3.4,
    odds_tie=3.1,
)


def _code(data: bytes | str, **kwargs: int) -> ErrorCode:
    with pytest.raises(ProtocolError) as refused:
        decode(data, **kwargs)
    return refused.value.code


def _edit(data: bytes, **changes: object) -> bytes:
    envelope = json.loads(data)
    envelope.update(changes)
    return json.dumps(envelope).encode()


def test_round_trip(miner_signer: Signer):
    """What one side encodes the other decodes, with sender, time and nonce."""
    data = encode(PREDICTION, miner_signer, ts=1_700_000_000_000, nonce="ab" * 16)
    msg = decode(data)
    assert msg == Signed(
        type="prediction",
        sender=miner_signer.ss58,
        ts=1_700_000_000_000,
        nonce="ab" * 16,
        body=PREDICTION,
    )
    assert decode(data.decode()) == msg


def test_every_message_type_round_trips(miner_signer: Signer):
    """Every message type in MESSAGE_TYPES survives encode and decode."""
    samples = {
        "prediction_batch": PredictionBatch(predictions=[PREDICTION]),
        "heartbeat": Heartbeat(n=1, ack=True, interval=5.0),
    }
    for name, cls in MESSAGE_TYPES.items():
        body = samples.get(name)
        if body is None:
            try:
                body = msgspec.convert(_example(cls), cls)
            except msgspec.ValidationError:
                continue
        assert decode(encode(body, miner_signer)).body == body, name


def _example(cls: type) -> dict[str, object]:
    # Enough for the structs whose fields all have defaults or are simple.
    return {"prediction_id": "x"} if cls is Prediction else {}


def test_signature_covers_exact_bytes(miner_signer: Signer):
    """The signature is over the version, type, sender, ts, nonce and body bytes."""
    data = encode(Heartbeat(n=1), miner_signer, ts=5, nonce="00")
    envelope = json.loads(data)
    body = b'{"n":1}'
    payload = signed_bytes(1, "heartbeat", miner_signer.ss58, 5, "00", body)
    assert (
        payload
        == f"bettensor/1\nheartbeat\n{miner_signer.ss58}\n5\n00\n".encode() + body
    )
    from bittensor_wallet import Keypair

    key = Keypair(ss58_address=miner_signer.ss58)
    assert key.verify(payload, bytes.fromhex(envelope["sig"][2:]))


@pytest.mark.parametrize(
    "field,value",
    [
        ("ts", 1),
        ("nonce", "ff" * 16),
        ("type", "resume"),
        ("body", {"n": 2}),
    ],
)
def test_tampering_is_detected(miner_signer: Signer, field: str, value: object):
    """Changing any signed part of an envelope breaks its signature."""
    data = encode(Heartbeat(n=1), miner_signer)
    assert _code(_edit(data, **{field: value})) == ErrorCode.BAD_SIGNATURE


def test_body_whitespace_is_signed(miner_signer: Signer):
    """The exact body bytes are signed: reformatting the body breaks it."""
    data = encode(Heartbeat(n=1), miner_signer)
    assert _code(data.replace(b'"body":{"n":1}', b'"body":{"n": 1}')) == (
        ErrorCode.BAD_SIGNATURE
    )


def test_another_senders_signature(miner_signer: Signer, other_signer: Signer):
    """A valid signature by someone else than the sender is refused."""
    data = encode(Heartbeat(n=1), other_signer)
    assert _code(_edit(data, sender=miner_signer.ss58)) == ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    "change,code",
    [
        ({"sig": "0x1234"}, ErrorCode.BAD_SIGNATURE),
        ({"sig": "not hex"}, ErrorCode.BAD_SIGNATURE),
        ({"sig": ""}, ErrorCode.BAD_SIGNATURE),
        ({"sender": "not-an-address"}, ErrorCode.BAD_SENDER),
        ({"v": 2}, ErrorCode.UNSUPPORTED_VERSION),
        ({"type": "bogus"}, ErrorCode.UNKNOWN_TYPE),
        ({"ts": "soon"}, ErrorCode.MALFORMED),
        ({"sig": None}, ErrorCode.MALFORMED),
        ({"nonce": "ab" * 50_000}, ErrorCode.MALFORMED),
        ({"nonce": "0123456789abcdef\nforged"}, ErrorCode.MALFORMED),
    ],
)
def test_envelope_errors(miner_signer: Signer, change: dict[str, object], code: str):
    """Each broken envelope field gives its stable error code."""
    assert _code(_edit(encode(Heartbeat(n=1), miner_signer), **change)) == code


def test_missing_field_and_bad_json(miner_signer: Signer):
    """Not JSON, not an object, or a missing field is malformed."""
    envelope = json.loads(encode(Heartbeat(n=1), miner_signer))
    del envelope["sig"]
    assert _code(json.dumps(envelope)) == ErrorCode.MALFORMED
    assert _code(b"{oops") == ErrorCode.MALFORMED
    assert _code(b"[1, 2]") == ErrorCode.MALFORMED
    assert _code(b"") == ErrorCode.MALFORMED


def test_signed_body_of_wrong_shape_is_malformed(miner_signer: Signer):
    """A correctly signed body that does not fit its type is malformed, with ref."""
    body = b'{"n":"one"}'
    sig = miner_signer.sign(
        signed_bytes(1, "heartbeat", miner_signer.ss58, 1, "ab", body)
    )
    data = json.dumps(
        {
            "v": 1,
            "type": "heartbeat",
            "sender": miner_signer.ss58,
            "ts": 1,
            "nonce": "ab",
            "body": json.loads(body),
            "sig": "0x" + sig.hex(),
        },
        separators=(",", ":"),
    ).encode()
    with pytest.raises(ProtocolError) as refused:
        decode(data)
    assert refused.value.code == ErrorCode.MALFORMED and refused.value.ref == "ab"


def test_too_large(miner_signer: Signer):
    """A message past max_bytes is refused before it is parsed."""
    data = encode(Heartbeat(n=1), miner_signer)
    assert _code(data, max_bytes=len(data) - 1) == ErrorCode.TOO_LARGE
    assert decode(data, max_bytes=len(data)).body == Heartbeat(n=1)


def test_nonce_guard_freshness_and_replay(miner_signer: Signer):
    """NonceGuard refuses stale and future timestamps and a nonce seen before."""
    now = 1_800_000_000.0
    seen: list[tuple[str, str, int]] = []
    guard = NonceGuard(clock=lambda: now, on_seen=lambda *a: seen.append(a))
    ms = int(now * 1000)
    window = int(FRESHNESS_WINDOW * 1000)

    def msg(ts: int, nonce: str) -> Signed:
        return decode(encode(Heartbeat(n=1), miner_signer, ts=ts, nonce=nonce))

    guard.check(msg(ms - window, "a"))  # exactly at the edge is fresh
    guard.check(msg(ms + window, "b"))
    with pytest.raises(ProtocolError) as stale:
        guard.check(msg(ms - window - 1, "c"))
    assert stale.value.code == ErrorCode.STALE_TIMESTAMP
    with pytest.raises(ProtocolError) as future:
        guard.check(msg(ms + window + 1, "d"))
    assert future.value.code == ErrorCode.FUTURE_TIMESTAMP
    with pytest.raises(ProtocolError) as replay:
        guard.check(msg(ms, "a"))
    assert replay.value.code == ErrorCode.REPLAYED_NONCE
    assert [s[1] for s in seen] == ["a", "b"]


def test_nonce_guard_remembers_loaded_nonces(miner_signer: Signer):
    """Nonces loaded with remember() are refused like ones seen live."""
    guard = NonceGuard()
    data = encode(Heartbeat(n=1), miner_signer)
    msg = decode(data)
    guard.remember(msg.sender, msg.nonce, msg.ts)
    with pytest.raises(ProtocolError) as replay:
        guard.check(msg)
    assert replay.value.code == ErrorCode.REPLAYED_NONCE


def test_signer_repr_hides_the_key():
    """A Signer's repr shows only its address."""
    signer = Signer.from_uri("//codec-test")
    assert repr(signer) == f"Signer({signer.ss58})"


def test_fresh_encodes_differ(miner_signer: Signer):
    """Two encodings of one body get different nonces."""
    a = json.loads(encode(Heartbeat(n=1), miner_signer))
    b = json.loads(encode(Heartbeat(n=1), miner_signer))
    assert a["nonce"] != b["nonce"]
    assert abs(a["ts"] - time.time() * 1000) < 5000
