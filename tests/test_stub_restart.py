"""The stub keeps what it accepted across a restart and a kill -9."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bettensor_core.codec import decode, encode
from bettensor_core.protocol import Events, Heartbeat, ResumeRequest
from validator_stub import StubConfig, StubServer
from validator_stub.store import StoreError


async def test_restart_keeps_everything(
    stub_config: StubConfig, miner_signer, prediction_for
):
    """Predictions, day totals, seq, games and fresh nonces survive a restart."""
    async with StubServer(stub_config) as stub, httpx.AsyncClient() as client:
        game = stub.games()[0]
        p = prediction_for(game, wager=250)
        sent = encode(p, miner_signer)
        first = decode(
            (await client.post(stub.url + "/v1/predictions", content=sent)).content
        )
        await stub.push_odds(game.game_id, 1.77, 2.77, game.odds_tie)
        await stub.kickoff(stub.games()[1].game_id)
        head = stub.stats()["head"]
        games = stub.games()

    async with StubServer(stub_config) as stub, httpx.AsyncClient() as client:
        assert stub.stats()["accepted"] == 1
        assert stub.stats()["head"] == head
        assert stub.day_total(miner_signer.ss58) == 250
        assert stub.games() == games
        # A resend gets the original answer; the old envelope is a replay.
        resent = await client.post(
            stub.url + "/v1/predictions", content=encode(p, miner_signer)
        )
        assert decode(resent.content).body == first.body
        replay = await client.post(stub.url + "/v1/predictions", content=sent)
        assert replay.status_code == 409
        assert decode(replay.content).body.code == "replayed_nonce"
        # Events logged before the restart are still replayed; new seqs continue.
        answer = decode(
            (
                await client.post(
                    stub.url + "/v1/events",
                    content=encode(ResumeRequest(after_seq=head - 2), miner_signer),
                )
            ).content
        )
        assert isinstance(answer.body, Events)
        assert [e.kind for e in answer.body.events] == ["odds_changed", "kickoff"]
        event = await stub.kickoff(stub.games()[2].game_id)
        assert event.seq == head + 1
        # The budget counts what was accepted before the restart.
        big = prediction_for(stub.games()[3], wager=750.01)
        refused = await client.post(
            stub.url + "/v1/predictions", content=encode(big, miner_signer)
        )
        assert decode(refused.content).body.reason == "daily_limit"


async def test_memory_database_starts_fresh(stub_config: StubConfig):
    """With ":memory:" nothing is written to disk and a restart starts over."""
    stub_config.db = ":memory:"
    async with StubServer(stub_config) as stub:
        await stub.kickoff(stub.games()[0].game_id)
    async with StubServer(stub_config) as stub:
        assert all(g.status == "scheduled" for g in stub.games())


def _start_cli(db: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "validator_stub",
            "--port",
            str(port),
            "--db",
            str(db),
            "--speed",
            "0",
            "--games",
            "8",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.match(r"validator stub on (http://127\.0\.0\.1:\d+) hotkey (\w+)", line)
    assert match, line
    return process, match.group(1)


async def test_cli_survives_kill_9(tmp_path: Path, miner_signer, prediction_for):
    """The CLI stub, killed with SIGKILL and restarted on its port, lost nothing."""
    db = tmp_path / "cli.sqlite"
    process, url = _start_cli(db, 0)
    port = int(url.rsplit(":", 1)[1])
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/ws/health")).json()["status"] == "ok"
            games = decode((await client.get("/v1/games")).content).body.games
            p = prediction_for(games[0], wager=99)
            beat = encode(Heartbeat(n=1), miner_signer)
            assert (await client.post("/v1/heartbeat", content=beat)).status_code == 200
            first = decode(
                (
                    await client.post(
                        "/v1/predictions", content=encode(p, miner_signer)
                    )
                ).content
            )
            assert first.body.accepted
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    process, url2 = _start_cli(db, port)
    try:
        assert url2 == url
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            again = decode(
                (
                    await client.post(
                        "/v1/predictions", content=encode(p, miner_signer)
                    )
                ).content
            )
            assert again.body == first.body
            replay = await client.post("/v1/heartbeat", content=beat)
            assert replay.status_code == 409
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 10) == 0


async def test_one_stub_per_database(stub: StubServer, stub_config: StubConfig):
    """A second stub on a database file in use stops at start with a clear error."""
    with pytest.raises(StoreError, match="in use by another validator stub"):
        async with StubServer(stub_config):
            pass
    # The first one is untouched.
    assert stub.stats()["games"] == 12


async def test_database_of_another_schema_is_refused(tmp_path: Path):
    """A database written by another schema version is refused, not misread."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE predictions (x)")
    config = StubConfig(port=0, db=path, speed=0)
    with pytest.raises(StoreError, match="another version"):
        async with StubServer(config):
            pass


async def test_port_in_use_releases_the_database(stub: StubServer, tmp_path: Path):
    """A stub that cannot bind its port says so and leaves its database free."""
    config = StubConfig(port=stub.port or 0, db=tmp_path / "other.sqlite", speed=0)
    with pytest.raises(OSError):
        await StubServer(config).start()
    config.port = 0
    async with StubServer(config) as second:
        assert second.port != stub.port
