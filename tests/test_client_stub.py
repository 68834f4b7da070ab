"""MinerClient against a real validator stub on a loopback port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bettensor_core import LinkOptions, MinerClient, Signer, WagerError
from bettensor_core.config import ValidatorConfig
from bettensor_core.models import (
    DeliveryState,
    GamesChanged,
    LinkChanged,
    LinkState,
    PredictionChanged,
)
from bettensor_core.power import PowerPolicy, PowerProfile, PowerState
from bettensor_core.protocol import Game
from validator_stub.config import StubConfig
from validator_stub.server import StubServer

FAST = LinkOptions(
    websocket_timeout=1.0,
    http_timeout=2.0,
    request_timeout=3.0,
    backoff_base=0.05,
    backoff_cap=0.3,
    stable_after=0.5,
    probe_interval=0.4,
    probe_cap=0.8,
    seed=1,
)


def quick_power(heartbeat: float = 1.0, hold: float = 2.0) -> PowerPolicy:
    """A power policy whose every state heartbeats and long-polls quickly."""
    profile = PowerProfile(
        heartbeat_interval=heartbeat, long_poll_hold=hold, ui_flush_interval=0.1
    )
    idle = PowerProfile(
        heartbeat_interval=heartbeat * 2, long_poll_hold=hold, ui_flush_interval=1.0
    )
    return PowerPolicy(
        profiles={
            PowerState.ACTIVE: profile,
            PowerState.IDLE: idle,
            PowerState.BACKGROUND: idle,
        }
    )


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds, polling briefly; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[StubServer]:
    server = StubServer(
        StubConfig(port=0, db=str(tmp_path / "stub.sqlite"), speed=0, games=12)
    )
    await server.start()
    yield server
    await server.stop()


def make_client(
    stub_url: str, ss58: str | None, path: Path, name: str = "//miner-a", **kw: object
) -> MinerClient:
    return MinerClient(
        Signer.from_uri(name),
        [ValidatorConfig(stub_url, ss58=ss58, name="stub")],
        store_path=path,
        power=kw.pop("power", None) or quick_power(),  # type: ignore[arg-type]
        link_options=kw.pop("options", None) or FAST,  # type: ignore[arg-type]
    )


def open_game(client: MinerClient) -> Game:
    return next(g for g in client.games.values() if g.status == "scheduled")


async def test_submit_is_confirmed_over_websocket(
    stub: StubServer, tmp_path: Path
) -> None:
    """Games arrive, a submitted prediction is stored, sent and accepted once."""
    async with make_client(stub.url, stub.ss58, tmp_path / "m.sqlite3") as client:
        await until(lambda: len(client.games) == len(stub.games()))
        assert client.links()[0].state == LinkState.WEBSOCKET
        assert dict(client.games) == {g.game_id: g for g in stub.games()}

        record = await client.submit(open_game(client).game_id, 0, 25.5, confidence=0.7)
        pid = record.prediction.prediction_id
        assert client.prediction(pid) is record
        confirmations = await client.confirmations(pid, timeout=5)
        assert confirmations["stub"].accepted
        assert client.predictions()[0].deliveries["stub"].state == (
            DeliveryState.ACCEPTED
        )
        assert client.budget_left() == 1000 - 25.5
        assert stub.day_total(client.signer.ss58) == 25.5


async def test_bad_wagers_are_refused_before_anything_is_stored(
    stub: StubServer, tmp_path: Path
) -> None:
    """Non-positive, NaN, over-budget wagers and unknown games raise WagerError."""
    async with make_client(stub.url, stub.ss58, tmp_path / "m.sqlite3") as client:
        await until(lambda: bool(client.games))
        game = open_game(client).game_id
        for wager in (0, -5, float("nan"), 1000.01):
            with pytest.raises(WagerError):
                await client.submit(game, 0, wager)
        with pytest.raises(WagerError):
            await client.submit("no-such-game", 0, 1.0)
        assert client.predictions() == []

        await client.submit(game, 0, 1000)
        assert client.budget_left() == 0
        with pytest.raises(WagerError):
            await client.submit(game, 1, 0.01)
        assert len(client.predictions()) == 1


async def test_outcomes_and_confidences_of_the_wrong_type_are_refused(
    stub: StubServer, tmp_path: Path
) -> None:
    """True, 1.0 or "1" as an outcome, or a bool or text confidence, raise
    WagerError and store nothing, so the outbox keeps sending what follows."""
    async with make_client(stub.url, stub.ss58, tmp_path / "m.sqlite3") as client:
        await until(lambda: bool(client.games))
        game = open_game(client).game_id
        for outcome in (True, 1.0, "1", None):
            with pytest.raises(WagerError, match="is not possible"):
                await client.submit(game, outcome, 1.0)  # type: ignore[arg-type]
        for confidence in (True, "0.5"):
            bad: float = confidence  # type: ignore[assignment]
            with pytest.raises(WagerError, match="confidence"):
                await client.submit(game, 0, 1.0, confidence=bad)
        assert client.predictions() == []

        record = await client.submit(game, 1, 2.0, confidence=1)
        assert record.prediction.outcome == 1
        assert type(record.prediction.confidence) is float
        answer = await client.confirmations(record.prediction.prediction_id, timeout=5)
        assert answer["stub"].accepted


async def test_rejections_come_back_with_their_reason(
    stub: StubServer, tmp_path: Path
) -> None:
    """A prediction on a game that kicks off before it arrives is rejected, with why."""
    async with make_client(stub.url, stub.ss58, tmp_path / "m.sqlite3") as client:
        await until(lambda: bool(client.games))
        game = open_game(client)
        stub.set_latency(200)
        record = await client.submit(game.game_id, 0, 10)
        await stub.kickoff(game.game_id)
        stub.set_latency(0)
        answer = await client.confirmations(record.prediction.prediction_id, timeout=5)
        assert not answer["stub"].accepted
        assert answer["stub"].reason == "game_started"
        assert client.budget_left() == 1000


async def test_pushes_update_games_and_subscribers(
    stub: StubServer, tmp_path: Path
) -> None:
    """Odds changes, kickoff, results and settlements reach games and subscribers."""
    async with make_client(stub.url, stub.ss58, tmp_path / "m.sqlite3") as client:
        events = client.subscribe()
        await until(lambda: bool(client.games))
        game = open_game(client)
        record = await client.submit(game.game_id, 0, 10)
        pid = record.prediction.prediction_id
        await client.confirmations(pid, timeout=5)

        await stub.push_odds(game.game_id, 1.5, 4.0, 3.9 if game.can_tie else None)
        await until(lambda: client.games[game.game_id].odds_a == 1.5)
        await stub.kickoff(game.game_id)
        await stub.settle(game.game_id, 0)
        await until(lambda: client.games[game.game_id].status == "final")
        await until(lambda: client.prediction(pid).settlement is not None)  # type: ignore[union-attr]
        settlement = client.prediction(pid).settlement  # type: ignore[union-attr]
        assert settlement is not None and settlement.won
        assert client.links()[0].last_seq == stub.stats()["head"]

        seen: list[object] = []
        while True:
            try:
                seen.append(await asyncio.wait_for(events.__anext__(), 0.05))
            except TimeoutError:
                break
        assert any(
            isinstance(e, GamesChanged) and game.game_id in e.game_ids for e in seen
        )
        assert any(
            isinstance(e, PredictionChanged) and e.prediction_id == pid for e in seen
        )
        assert any(isinstance(e, LinkChanged) for e in seen)
        await events.aclose()


async def test_fallback_to_http_and_back_to_websocket(
    stub: StubServer, tmp_path: Path
) -> None:
    """With WebSocket refused the link works over HTTP, and returns when allowed."""
    async with make_client(stub.url, stub.ss58, tmp_path / "m.sqlite3") as client:
        await until(lambda: client.links()[0].state == LinkState.WEBSOCKET)
        stub.set_websocket_enabled(False)
        stub.drop_connections()
        await until(lambda: client.links()[0].state == LinkState.HTTP)
        status = client.links()[0]
        assert status.fallback_reason is not None and "403" in status.fallback_reason

        # Predictions and pushes flow over HTTP.
        game = open_game(client)
        record = await client.submit(game.game_id, 0, 5)
        pid = record.prediction.prediction_id
        assert (await client.confirmations(pid, timeout=5))["stub"].accepted
        assert client.prediction(pid).deliveries["stub"].via == "http"  # type: ignore[union-attr]
        await stub.push_odds(game.game_id, 1.7, 3.0, 3.3 if game.can_tie else None)
        await until(lambda: client.games[game.game_id].odds_a == 1.7)

        # Allowed again: the probe moves the same session back, no reconnect.
        reconnects = client.links()[0].reconnects
        stub.set_websocket_enabled(True)
        await until(lambda: client.links()[0].state == LinkState.WEBSOCKET)
        assert client.links()[0].reconnects == reconnects
        assert client.links()[0].fallback_reason is None
        await stub.push_odds(game.game_id, 1.8, 2.9, 3.1 if game.can_tie else None)
        await until(lambda: client.games[game.game_id].odds_a == 1.8)
        assert stub.stats()["accepted"] == 1


async def test_predictions_made_offline_are_sent_on_the_next_start(
    tmp_path: Path,
) -> None:
    """A prediction queued while the validator is away is sent once it is back."""
    db = tmp_path / "stub.sqlite"
    stub = StubServer(StubConfig(port=0, db=str(db), speed=0, games=6))
    await stub.start()
    port, ss58, url = stub.port, stub.ss58, stub.url
    store = tmp_path / "m.sqlite3"
    async with make_client(url, ss58, store) as client:
        await until(lambda: bool(client.games))
        await stub.stop()
        await until(lambda: client.links()[0].state != LinkState.WEBSOCKET)
        # Browsing still works from the store; the prediction waits in the outbox.
        record = await client.submit(open_game(client).game_id, 0, 3)
        await asyncio.sleep(0.3)
        pid = record.prediction.prediction_id
        assert client.prediction(pid).deliveries["stub"].confirmation is None  # type: ignore[union-attr]

    stub = StubServer(StubConfig(port=port or 0, db=str(db), speed=0, games=6))
    await stub.start()
    try:
        async with make_client(url, ss58, store) as client:
            assert client.games, "games come from the store before any connection"
            answer = await client.confirmations(pid, timeout=5)
            assert answer["stub"].accepted
            assert stub.stats()["accepted"] == 1
    finally:
        await stub.stop()


async def test_a_validator_with_another_hotkey_is_refused(
    stub: StubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configured ss58 that does not match the signer: nothing is applied or sent."""
    wrong = Signer.from_uri("//someone-else").ss58
    caplog.set_level(logging.INFO, "bettensor_core")
    async with make_client(stub.url, wrong, tmp_path / "m.sqlite3") as client:
        await until(lambda: client.links()[0].last_error is not None)
        status = client.links()[0]
        assert status.state in (LinkState.OFFLINE, LinkState.CONNECTING)
        assert "untrusted_validator" in (status.last_error or "")
        assert client.games == {}
    assert "untrusted" not in caplog.text or wrong in caplog.text


async def test_the_first_hotkey_seen_is_remembered(
    stub: StubServer, tmp_path: Path
) -> None:
    """Without a configured ss58 the first signer is trusted, then required."""
    store = tmp_path / "m.sqlite3"
    async with make_client(stub.url, None, store) as client:
        await until(lambda: client.links()[0].validator_ss58 == stub.ss58)
    other = StubServer(
        StubConfig(
            port=0, db=":memory:", speed=0, games=3, signer=Signer.from_uri("//other")
        )
    )
    await other.start()
    try:
        # The same validator name now signs with another key: refused.
        async with make_client(other.url, None, store) as client:
            await until(lambda: client.links()[0].last_error is not None)
            assert "untrusted_validator" in (client.links()[0].last_error or "")
    finally:
        await other.stop()


async def test_power_state_changes_heartbeat_live(
    stub: StubServer, tmp_path: Path
) -> None:
    """The validator is told the heartbeat interval in the hello and again, at
    once, when the power state changes; the policy's own changes are followed."""
    power = quick_power(heartbeat=0.3)
    client = make_client(stub.url, stub.ss58, tmp_path / "m.sqlite3", power=power)

    def told() -> float | None:
        assert stub.hub is not None
        intervals = [c.heartbeat_interval for c in stub.hub.connections]
        return intervals[0] if len(intervals) == 1 else None

    async with client:
        await until(lambda: client.links()[0].state == LinkState.WEBSOCKET)
        await until(lambda: told() == 0.3)

        client.set_power_state(PowerState.IDLE)
        assert client.links()[0].power_state == "idle"
        await until(lambda: told() == 0.6, timeout=0.25)
        await asyncio.sleep(0.8)
        assert client.links()[0].state == LinkState.WEBSOCKET

        power.on_focus(False)
        assert client.links()[0].power_state == "background"
        power.on_input()
        assert client.links()[0].power_state == "active"
        await until(lambda: told() == 0.3, timeout=0.25)


async def test_two_validators_each_confirm_and_the_budget_is_the_strictest(
    tmp_path: Path,
) -> None:
    """A prediction goes to every validator; one away keeps it pending there and
    the budget counts it."""
    first = StubServer(
        StubConfig(port=0, db=str(tmp_path / "a.sqlite"), speed=0, games=4, seed=3)
    )
    second = StubServer(
        StubConfig(
            port=0,
            db=str(tmp_path / "b.sqlite"),
            speed=0,
            games=4,
            seed=3,
            signer=Signer.from_uri("//second-validator"),
        )
    )
    await first.start()
    await second.start()
    client = MinerClient(
        Signer.from_uri("//two"),
        [
            ValidatorConfig(first.url, ss58=first.ss58, name="a"),
            ValidatorConfig(second.url, ss58=second.ss58, name="b"),
        ],
        store_path=tmp_path / "m.sqlite3",
        power=quick_power(),
        link_options=FAST,
    )
    try:
        async with client:
            await until(lambda: len(client.games) == 4)
            await until(
                lambda: all(s.state == LinkState.WEBSOCKET for s in client.links())
            )
            game = open_game(client).game_id
            record = await client.submit(game, 0, 100)
            answers = await client.confirmations(
                record.prediction.prediction_id, timeout=5
            )
            assert set(answers) == {"a", "b"}
            assert all(a.accepted for a in answers.values())

            await second.stop()
            record = await client.submit(game, 1, 50)
            pid = record.prediction.prediction_id
            with pytest.raises(TimeoutError):
                await client.confirmations(pid, timeout=0.5)
            assert (
                client.prediction(pid).deliveries["a"].state == DeliveryState.ACCEPTED
            )  # type: ignore[union-attr]
            assert client.prediction(pid).deliveries["b"].confirmation is None  # type: ignore[union-attr]
            assert client.budget_left() == 850
    finally:
        await first.stop()
        await second.stop()


@pytest.mark.parametrize("websocket", [True, False])
async def test_a_validator_that_lost_its_history_sends_a_snapshot(
    tmp_path: Path, websocket: bool
) -> None:
    """A validator restarted empty (head below our seq) leads to a fresh snapshot
    that replaces its games, on either transport."""
    old = StubServer(
        StubConfig(port=0, db=str(tmp_path / "old.sqlite"), speed=0, games=8, seed=1)
    )
    await old.start()
    port, url, ss58 = old.port, old.url, old.ss58
    store = tmp_path / "m.sqlite3"
    async with make_client(url, ss58, store) as client:
        await until(lambda: len(client.games) == 8)
        for game in old.games()[:3]:
            await old.kickoff(game.game_id)
        await until(lambda: client.links()[0].last_seq == old.stats()["head"])
    await old.stop()

    new = StubServer(
        StubConfig(port=port or 0, db=":memory:", speed=0, games=3, seed=2)
    )
    await new.start()
    try:
        new.set_websocket_enabled(websocket)
        async with make_client(url, ss58, store) as client:
            expected = {g.game_id: g for g in new.games()}
            await until(lambda: dict(client.games) == expected)
            assert client.links()[0].last_seq == new.stats()["head"]
    finally:
        await new.stop()
