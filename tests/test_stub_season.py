"""The demo season, the event log bounds, slow miners and the command line."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest
from bittensor_wallet import Wallet
from websockets.exceptions import ConnectionClosed

from bettensor_core.codec import decode, encode
from bettensor_core.protocol import Event
from validator_stub import StubConfig, StubServer
from validator_stub.__main__ import make_config, parse_args
from validator_stub.season import load_leagues
from validator_stub.validator import EventLog, LoggedEvent


def test_season_file_has_leagues_with_and_without_ties():
    """The demo season has soccer leagues with ties and NFL and MLB without."""
    leagues = {lg.league: lg for lg in load_leagues()}
    assert {"EPL", "NFL", "MLB"} <= set(leagues)
    assert leagues["EPL"].can_tie and leagues["EPL"].sport == "soccer"
    assert not leagues["NFL"].can_tie and not leagues["MLB"].can_tie
    assert all(len(lg.teams) >= 10 for lg in leagues.values())


async def test_same_seed_same_games(tmp_path: Path):
    """Two stubs with one seed draw the same games, teams and odds."""
    drawn = []
    for _ in range(2):
        config = StubConfig(port=0, db=":memory:", seed=5, games=20, speed=0)
        async with StubServer(config) as stub:
            drawn.append(
                [
                    (g.game_id, g.team_a, g.team_b, g.odds_a, g.odds_tie)
                    for g in stub.games()
                ]
            )
    assert drawn[0] == drawn[1]
    config = StubConfig(port=0, db=":memory:", seed=6, games=20, speed=0)
    async with StubServer(config) as stub:
        assert [(g.team_a, g.odds_a) for g in stub.games()] != [
            (d[1], d[3]) for d in drawn[0]
        ]


async def test_games_are_sound(stub: StubServer):
    """Seeded games kick off in the future, have odds above 1 and ties where allowed."""
    now = time.time()
    for game in stub.games():
        assert game.kickoff > now + 60 and game.status == "scheduled"
        assert game.odds_a > 1 and game.odds_b > 1
        assert (game.odds_tie is not None) == game.can_tie
        assert game.team_a != game.team_b


async def test_frozen_season_pushes_nothing(stub: StubServer, ws_miner, miner_signer):
    """At speed 0 nothing drifts, kicks off or is pushed unless a control asks."""
    miner = await ws_miner(miner_signer)
    head = stub.stats()["head"]
    with pytest.raises(TimeoutError):
        await miner.recv(timeout=0.5)
    assert stub.stats()["head"] == head


async def test_fast_season_plays_out(tmp_path: Path, miner_signer, prediction_for):
    """At high speed games drift, kick off, end, settle and get replaced."""
    config = StubConfig(
        port=0, db=tmp_path / "fast.sqlite", seed=3, games=3, speed=30000
    )
    async with StubServer(config) as stub, httpx.AsyncClient() as client:
        # A prediction on the last game, which kicks off well after this; its
        # odds drift every few milliseconds here, so try until they hold still.
        for _ in range(50):
            game = stub.games()[-1]
            p = prediction_for(game, wager=10, outcome=0)
            sent = await client.post(
                stub.url + "/v1/predictions", content=encode(p, miner_signer)
            )
            if decode(sent.content).body.accepted:
                break
        assert decode(sent.content).body.accepted

        events: list[Event] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            events = stub.validator.events_after(0, miner_signer.ss58) or []
            if any(e.settlement for e in events) and _added(events) > 4:
                break
            await asyncio.sleep(0.05)
        kinds = {e.kind for e in events}
        assert {"game_added", "odds_changed", "kickoff", "result"} <= kinds
        assert _added(events) > 4  # finished games were replaced
        results = [e.game for e in events if e.kind == "result" and e.game]
        assert results and all(g.outcome in (0, 1, 2) for g in results)
        settlement = next(e.settlement for e in events if e.settlement)
        assert settlement.prediction_id == p.prediction_id
        assert settlement.payout == (
            pytest.approx(10 * game.odds_a) if settlement.won else 0
        )
        assert len([g for g in stub.games() if g.status != "final"]) >= 3


def _added(events: list[Event]) -> int:
    return sum(e.kind == "game_added" for e in events)


def test_event_log_bounds():
    """The log keeps events by age and count; older seqs need a snapshot."""
    log = EventLog(max_age=10, max_size=5)
    log.extend(
        [
            LoggedEvent(Event(seq=i, kind="kickoff", at=float(i)), None)
            for i in range(1, 9)
        ]
    )
    assert log.head == 8 and log.after(8, "m") == []
    log.trim(now=8)  # only the size bound bites
    assert log.floor == 3 and log.after(2, "m") is None
    assert [e.seq for e in log.after(3, "m")] == [4, 5, 6, 7, 8]
    log.trim(now=16.5)  # events older than 6.5 go
    assert log.floor == 6 and [e.seq for e in log.after(6, "m")] == [7, 8]
    assert log.after(9, "m") is None  # ahead of the head


def test_event_log_targets():
    """A miner's resume skips other miners' own events."""
    log = EventLog(max_age=100, max_size=100)
    log.extend(
        [
            LoggedEvent(Event(seq=1, kind="confirmation", at=1.0), "alice"),
            LoggedEvent(Event(seq=2, kind="odds_changed", at=1.0), None),
            LoggedEvent(Event(seq=3, kind="settlement", at=1.0), "bob"),
        ]
    )
    assert [e.seq for e in log.after(0, "alice")] == [1, 2]
    assert [e.seq for e in log.after(0, "bob")] == [2, 3]
    assert log.has_after(2, "bob") and not log.has_after(2, "alice")


async def test_housekeeping_trims_storage(stub: StubServer, miner_signer, post_signed):
    """Housekeeping drops expired events and nonces from memory and from SQLite."""
    from bettensor_core.protocol import Heartbeat

    await post_signed("/v1/heartbeat", Heartbeat(n=1), miner_signer)
    validator = stub.validator
    validator.clock = lambda: time.time() + 7200
    validator.housekeeping()
    await validator.durable()
    assert len(validator.log) == 0 and validator.log.floor == validator.head
    assert stub.store.one("SELECT COUNT(*) FROM events") == (0,)
    assert stub.store.one("SELECT COUNT(*) FROM nonces") == (0,)


async def test_slow_miner_is_dropped_not_waited_for(
    stub: StubServer, ws_miner, miner_signer, other_signer
):
    """A miner whose send queue overflows is closed (1013); others still get pushes."""
    slow = await ws_miner(miner_signer)
    fast = await ws_miner(other_signer)
    conn = next(c for c in stub.hub.connections if c.miner == miner_signer.ss58)
    # The slow miner reads nothing: once the sockets' buffers are full, pushes
    # wait in its queue until that overflows too. (Random text, because the
    # connection compresses.)
    frame = os.urandom(32768).hex().encode()
    for _ in range(stub.hub.limits.send_queue_frames + 1000):
        conn.push(frame)
        if conn.close_reason is not None:
            break
    assert conn.close_reason == "send queue full; reconnect and resume"
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(slow.ws.recv(), 5)
    assert closed.value.rcvd.code == 1013
    game = stub.games()[0]
    event = await stub.push_odds(game.game_id, 1.4, 4.0, game.odds_tie)
    assert (await fast.recv()).body.events[0].seq == event.seq


async def test_a_backed_up_miner_gets_its_pushes_in_order(
    stub: StubServer, ws_miner, miner_signer
):
    """Pushes sent at once, one left waiting on the socket, then queued: in order."""
    miner = await ws_miner(miner_signer)
    conn = next(c for c in stub.hub.connections if c.miner == miner_signer.ss58)
    filler = os.urandom(32768).hex()
    count = 600  # about 40 MB before compression: more than the buffers hold
    for i in range(count):
        conn.push(f"{i:05d}{filler}".encode())
    assert conn.close_reason is None
    received = [
        int((await asyncio.wait_for(miner.ws.recv(), 10))[:5]) for _ in range(count)
    ]
    assert received == list(range(count))


def test_cli_flags_make_the_config():
    """The command-line flags land in StubConfig and Limits."""
    args = parse_args(
        [
            *("--host", "127.0.0.2", "--port", "0", "--db", ":memory:"),
            *("--seed", "9", "--games", "4", "--speed", "0", "--no-websocket"),
            *("--max-connections", "3", "--max-message-bytes", "1024", "--rate", "7"),
        ]
    )
    config = make_config(args)
    assert (config.host, config.port, config.db, config.seed) == (
        "127.0.0.2",
        0,
        ":memory:",
        9,
    )
    assert (config.games, config.speed, config.websocket_enabled) == (4, 0.0, False)
    assert (
        config.limits.max_connections == 3 and config.limits.max_message_bytes == 1024
    )
    assert (config.limits.rate, config.limits.burst) == (7, 14)
    assert config.signer is not None
    assert config.signer.ss58 == "5GRkxiv66yJXmyjrXzzjMtF2pnirfc8VMGShewe8QbCoc9uA"


def test_cli_wallet_flags(tmp_path: Path):
    """--wallet.* flags sign with that wallet's hotkey."""
    wallet = Wallet(name="stub", hotkey="validator", path=str(tmp_path))
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    args = parse_args(
        [
            "--wallet.path",
            str(tmp_path),
            "--wallet.name",
            "stub",
            "--wallet.hotkey",
            "validator",
        ]
    )
    config = make_config(args)
    assert config.signer is not None
    assert config.signer.ss58 == wallet.hotkey.ss58_address
