"""The client under faults: cut links, refused WebSockets, stalls, restarts, kills.

Every test runs a real validator stub and, where links must break, the fault
proxy (`tests/faultproxy.py`) between the miners and the stub. Each loop is
bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from faultproxy import FaultProxy

from bettensor_core import LinkOptions, MinerClient, Signer
from bettensor_core.config import ValidatorConfig
from bettensor_core.models import GamesChanged, LinkState
from bettensor_core.power import PowerPolicy, PowerProfile, PowerState
from bettensor_core.store import Store
from validator_stub.config import StubConfig
from validator_stub.server import StubServer

FAST = LinkOptions(
    websocket_timeout=1.0,
    http_timeout=2.0,
    request_timeout=3.0,
    backoff_base=0.05,
    backoff_cap=0.3,
    stable_after=0.5,
    probe_interval=0.5,
    probe_cap=1.0,
)


def quick_power(heartbeat: float) -> PowerPolicy:
    """Every power state heartbeats every ``heartbeat`` seconds; short long-polls."""
    profile = PowerProfile(
        heartbeat_interval=heartbeat, long_poll_hold=2.0, ui_flush_interval=0.1
    )
    return PowerPolicy(profiles=dict.fromkeys(PowerState, profile))


def client_for(
    url: str, ss58: str, store: Path, hotkey: str, heartbeat: float = 1.0
) -> MinerClient:
    return MinerClient(
        Signer.from_uri(hotkey),
        [ValidatorConfig(url, ss58=ss58, name="stub")],
        store_path=store,
        power=quick_power(heartbeat),
        link_options=FAST,
    )


async def until(check: Callable[[], bool], timeout: float, what: str = "") -> None:
    """Wait until ``check()`` holds, polling briefly; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        await asyncio.sleep(0.02)


def confirmed(client: MinerClient) -> int:
    """How many of the client's predictions the stub has answered."""
    return sum(
        1
        for record in client.predictions()
        if record.deliveries["stub"].confirmation is not None
    )


def stub_ids(stub: StubServer, miner: str) -> list[str]:
    """The prediction ids the stub stored for ``miner`` (one row per counted id)."""
    assert stub.store is not None
    rows = stub.store.all(
        "SELECT prediction_id FROM predictions WHERE miner = ?", (miner,)
    )
    return [row[0] for row in rows]


async def restart(stub: StubServer) -> StubServer:
    """Stop ``stub`` and start a new one on the same port and database file."""
    port = stub.port
    config = stub.config
    await stub.stop()
    await asyncio.sleep(0.2)
    again = StubServer(
        StubConfig(
            port=port or 0, db=config.db, speed=0, games=config.games, seed=config.seed
        )
    )
    await again.start()
    return again


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_thousand_predictions_survive_cuts_refusals_and_restarts(
    tmp_path: Path,
) -> None:
    """1,000 predictions from 10 miners through cuts, refused WebSockets and two
    stub restarts: each is confirmed exactly once and every miner ends with the
    stub's games."""
    miners, per_miner = 10, 100
    stub = StubServer(
        StubConfig(port=0, db=str(tmp_path / "stub.sqlite"), speed=0, games=12)
    )
    await stub.start()
    proxy = await FaultProxy("127.0.0.1", stub.port or 0).start()
    clients = [
        client_for(proxy.url, stub.ss58, tmp_path / f"m{i}.sqlite3", f"//chaos-{i}")
        for i in range(miners)
    ]
    try:
        for client in clients:
            await client.start()
        await until(
            lambda: all(len(c.games) == 12 for c in clients), 15, "games loaded"
        )
        open_games = [g for g in stub.games() if g.status == "scheduled"]
        assert len(open_games) >= 8
        predicted, pushed = open_games[:4], open_games[4:8]

        async def produce(index: int, client: MinerClient) -> None:
            for k in range(per_miner):
                game = predicted[(index + k) % len(predicted)]
                await client.submit(game.game_id, k % 2, 1.0)
                await asyncio.sleep(0.06)

        async def push_odds(round_: int) -> None:
            for game in pushed:
                tie = (game.odds_tie or 3.0) + round_ / 10 if game.can_tie else None
                await stub.push_odds(
                    game.game_id, game.odds_a + round_ / 10, game.odds_b, tie
                )

        async def scenario() -> None:
            nonlocal stub
            await asyncio.sleep(1.0)
            proxy.refuse_websocket(True)
            await push_odds(1)
            await asyncio.sleep(1.5)
            stub = await restart(stub)
            await push_odds(2)
            await asyncio.sleep(1.5)
            proxy.refuse_websocket(False)
            await asyncio.sleep(1.5)
            stub = await restart(stub)
            await push_odds(3)

        started = time.monotonic()
        await asyncio.gather(
            proxy.chaos((0.5, 2.0), duration=8.0, seed=5),
            scenario(),
            *(produce(i, c) for i, c in enumerate(clients)),
        )
        await until(
            lambda: all(confirmed(c) == per_miner for c in clients),
            30,
            "every prediction confirmed",
        )
        expected = {g.game_id: g for g in stub.games()}
        await until(
            lambda: all(dict(c.games) == expected for c in clients),
            10,
            "games equal the stub's",
        )
        assert time.monotonic() - started < 60
        assert proxy.stats.cuts > 0 and proxy.stats.refused_websockets > 0

        # Each prediction counted once: the stub's rows, its counter and the
        # clients' records all agree, id for id.
        assert stub.stats()["accepted"] + stub.stats()["rejected"] == miners * per_miner
        for client in clients:
            ids = stub_ids(stub, client.signer.ss58)
            mine = [r.prediction.prediction_id for r in client.predictions()]
            assert len(ids) == len(set(ids)) == per_miner
            assert set(ids) == set(mine)
            assert stub.day_total(client.signer.ss58) == pytest.approx(per_miner * 1.0)
        assert any(c.links()[0].reconnects > 0 for c in clients)
    finally:
        for client in clients:
            await client.close()
        await proxy.stop()
        await stub.stop()


@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_pushes_made_while_away_are_applied_in_order_on_return(
    tmp_path: Path, transport: str
) -> None:
    """Events pushed while a miner is away arrive after it returns, as a resume in
    seq order, over either transport."""
    stub = StubServer(
        StubConfig(port=0, db=str(tmp_path / "stub.sqlite"), speed=0, games=6)
    )
    await stub.start()
    store = tmp_path / "m.sqlite3"
    try:
        stub.set_websocket_enabled(transport == "websocket")
        async with client_for(stub.url, stub.ss58, store, "//away") as client:
            await until(lambda: len(client.games) == 6, 10)
            await until(lambda: client.links()[0].state == LinkState(transport), 10)
            left_at = client.links()[0].last_seq
        assert left_at is not None

        # While away: the same game's odds move three times, another kicks off.
        game, other = [g for g in stub.games() if g.status == "scheduled"][:2]
        for step in (1, 2, 3):
            tie = (game.odds_tie or 3.0) + step if game.can_tie else None
            await stub.push_odds(game.game_id, game.odds_a + step, game.odds_b, tie)
        await stub.kickoff(other.game_id)
        head = stub.stats()["head"]

        client = client_for(stub.url, stub.ss58, store, "//away")
        changes = client.subscribe()
        async with client:
            await until(lambda: client.links()[0].last_seq == head, 10)
            assert client.links()[0].state == LinkState(transport)
            # The last odds won: the events were applied in seq order.
            assert client.games[game.game_id].odds_a == game.odds_a + 3
            assert client.games[other.game_id].status == "live"
            assert dict(client.games) == {g.game_id: g for g in stub.games()}
            seen = []
            while True:
                try:
                    seen.append(await asyncio.wait_for(changes.__anext__(), 0.05))
                except TimeoutError:
                    break
            game_changes = [e for e in seen if isinstance(e, GamesChanged)]
            assert game_changes and not any(e.snapshot for e in game_changes)
    finally:
        await stub.stop()


@pytest.mark.timeout(60)
async def test_a_slow_upgrade_falls_back_to_http_and_returns(tmp_path: Path) -> None:
    """When the WebSocket upgrade takes longer than its timeout the link uses HTTP,
    then moves back to WebSocket once the path is fast again."""
    stub = StubServer(
        StubConfig(port=0, db=str(tmp_path / "stub.sqlite"), speed=0, games=4)
    )
    await stub.start()
    proxy = await FaultProxy("127.0.0.1", stub.port or 0).start()
    # Each chunk waits 0.6 s: an upgrade (request, then answer) needs more
    # than the 1 s WebSocket timeout, a heartbeat fits the 2 s HTTP one.
    proxy.delay(0.6)
    client = client_for(
        proxy.url, stub.ss58, tmp_path / "m.sqlite3", "//slow", heartbeat=4.0
    )
    try:
        await client.start()
        await until(lambda: client.links()[0].state == LinkState.HTTP, 10)
        reason = client.links()[0].fallback_reason or ""
        assert "timed out" in reason
        await until(lambda: len(client.games) == 4, 10)

        proxy.delay(0)
        await until(lambda: client.links()[0].state == LinkState.WEBSOCKET, 10)
        assert client.links()[0].fallback_reason is None
        assert client.links()[0].reconnects == 0
    finally:
        await client.close()
        await proxy.stop()
        await stub.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["websocket", "http"])
async def test_a_stall_is_detected_within_two_heartbeats_and_recovered(
    tmp_path: Path, transport: str
) -> None:
    """A half-open link (bytes stop, nothing closes) ends within two heartbeat
    intervals, and the link recovers and delivers once bytes flow again."""
    interval = 0.5
    stub = StubServer(
        StubConfig(port=0, db=str(tmp_path / "stub.sqlite"), speed=0, games=4)
    )
    await stub.start()
    proxy = await FaultProxy("127.0.0.1", stub.port or 0).start()
    client = client_for(
        proxy.url, stub.ss58, tmp_path / "m.sqlite3", "//stall", heartbeat=interval
    )
    stub.set_websocket_enabled(transport == "websocket")
    on = LinkState(transport)
    try:
        await client.start()
        await until(lambda: client.links()[0].state == on, 10)
        # Start right after a heartbeat answer (a new round trip time), the
        # worst case for detection.
        at_connect = client.links()[0].rtt_ms
        await until(lambda: client.links()[0].rtt_ms != at_connect, 10)

        proxy.stall(True)
        stalled_at = time.monotonic()
        await until(lambda: client.links()[0].state != on, 5)
        detected = time.monotonic() - stalled_at
        assert detected <= 2 * interval + 0.1

        game = next(g for g in client.games.values() if g.status == "scheduled")
        record = await client.submit(game.game_id, 0, 2.0)
        await asyncio.sleep(0.5)
        proxy.stall(False)
        answer = await client.confirmations(record.prediction.prediction_id, timeout=10)
        assert answer["stub"].accepted
        await until(
            lambda: client.links()[0].state in (LinkState.WEBSOCKET, LinkState.HTTP),
            5,
        )
        assert client.links()[0].reconnects >= 1
        assert stub.stats()["accepted"] == 1
    finally:
        await client.close()
        await proxy.stop()
        await stub.stop()


_KILLED_CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from bettensor_core import LinkOptions, MinerClient, Signer
    from bettensor_core.config import ValidatorConfig

    async def main() -> None:
        url, ss58, store, count, durable_sync = sys.argv[1:6]
        client = MinerClient(
            Signer.from_uri("//killed"),
            [ValidatorConfig(url, ss58=ss58, name="stub")],
            store_path=store,
            link_options=LinkOptions(backoff_cap=0.3),
            durable_sync=durable_sync == "on",
        )
        await client.start()
        while not client.games:
            await asyncio.sleep(0.02)
        games = [g for g in client.games.values() if g.status == "scheduled"]
        for k in range(int(count)):
            await client.submit(games[k % len(games)].game_id, 0, 1.5)
        print("submitted", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("durable_sync", ["on", "off"])
async def test_a_killed_client_resends_its_pending_predictions_once(
    tmp_path: Path, durable_sync: str
) -> None:
    """SIGKILL while answers are on the way: the next start resends what was
    pending, and the stub counts every prediction exactly once (also with
    ``durable_sync`` off, which gives up only power-cut safety)."""
    count = 30
    stub = StubServer(
        StubConfig(port=0, db=str(tmp_path / "stub.sqlite"), speed=0, games=6)
    )
    await stub.start()
    # A slow path, so that the stub has counted predictions whose answers
    # have not reached the client when it dies.
    proxy = await FaultProxy("127.0.0.1", stub.port or 0).start()
    proxy.delay(0.3)
    store = tmp_path / "killed.sqlite3"
    script = tmp_path / "killed_client.py"
    script.write_text(_KILLED_CLIENT)
    root = Path(__file__).resolve().parent.parent
    miner = Signer.from_uri("//killed").ss58
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            proxy.url,
            stub.ss58,
            str(store),
            str(count),
            durable_sync,
            stdout=asyncio.subprocess.PIPE,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"submitted"
        await until(lambda: len(stub_ids(stub, miner)) > 0, 10, "first counted")
        process.send_signal(signal.SIGKILL)
        await process.wait()

        counted_before = len(stub_ids(stub, miner))
        killed = Store(store)
        known_before = sum(
            1
            for r in killed.predictions()
            if r.deliveries["stub"].confirmation is not None
        )
        killed.close()
        assert known_before < counted_before <= count

        async with MinerClient(
            Signer.from_uri("//killed"),
            [ValidatorConfig(stub.url, ss58=stub.ss58, name="stub")],
            store_path=store,
            link_options=FAST,
        ) as client:
            assert len(client.predictions()) == count
            await until(lambda: confirmed(client) == count, 20, "all confirmed")
            ids = stub_ids(stub, miner)
            assert len(ids) == len(set(ids)) == count
            mine = {r.prediction.prediction_id for r in client.predictions()}
            assert set(ids) == mine
            assert stub.day_total(miner) == pytest.approx(count * 1.5)
            assert stub.stats()["accepted"] == count
    finally:
        await proxy.stop()
        await stub.stop()
