"""The stub's SQLite storage: predictions, day totals, games, events, nonces.

Writes go into one open transaction on the event loop's thread and are
committed together on the next loop iteration (group commit), so a flood of
predictions costs one commit per batch rather than one per prediction. No
answer leaves the stub before `Store.durable` says its writes are committed;
``before_commit`` adds last writes to a batch (the validator's head seq) and
``on_commit`` runs right after each commit, which is where the validator
publishes the events that commit made durable.

WAL mode with ``synchronous=NORMAL`` survives a killed process (kill -9);
``durable_sync=True`` uses ``synchronous=FULL`` to also survive power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

# Least seconds between two commits; see `Store._schedule_commit`. Zero
# commits on the next loop turn: writes that arrive in the same turn (a busy
# validator reads many frames per turn) still share one commit, and a lone
# miner is not made to wait (2 ms here cost a sequential miner 2.3 ms a
# round trip, docs/benchmarks.md).
COMMIT_GAP = 0.0

# Rows are appended in time order (rowid tables); only the lookups a
# validator needs are indexed, since every index costs pages on each commit.
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS games (game_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    miner TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    content BLOB NOT NULL,
    confirmation BLOB NOT NULL,
    accepted INTEGER NOT NULL,
    game_id TEXT,
    wager REAL,
    odds_taken REAL,
    day TEXT NOT NULL,
    confirmed_at REAL NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS predictions_key
    ON predictions (miner, prediction_id);
CREATE INDEX IF NOT EXISTS predictions_by_miner ON predictions (miner);
CREATE INDEX IF NOT EXISTS predictions_open
    ON predictions (game_id) WHERE accepted = 1 AND settled = 0;
CREATE TABLE IF NOT EXISTS settlements (
    miner TEXT NOT NULL,
    prediction_id TEXT NOT NULL,
    data BLOB NOT NULL,
    settled_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS settlements_by_miner ON settlements (miner);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    miner TEXT,
    at REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nonces (
    sender TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts INTEGER NOT NULL
);
"""


class StoreError(RuntimeError):
    """The stub's database cannot be opened (in use, or another schema)."""


class Store:
    """One SQLite connection, used only from the event loop's thread."""

    def __init__(
        self,
        path: str,
        *,
        durable_sync: bool = False,
        on_commit: Callable[[], None] | None = None,
        before_commit: Callable[[], None] | None = None,
    ):
        self.path = path
        self._db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=1.0
        )
        try:
            # One stub per file: a second one would number events twice.
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                f"PRAGMA synchronous={'FULL' if durable_sync else 'NORMAL'}"
            )
            self._create_schema()
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise StoreError(
                    f"{path} is in use by another validator stub; "
                    "stop it or pass --db with another file"
                ) from None
            raise StoreError(f"cannot open {path}: {exc}") from None
        self.on_commit = on_commit
        self.before_commit = before_commit
        self._in_tx = False
        self._commit_done: asyncio.Future[None] | None = None
        self._last_commit = 0.0
        self.commit_gap = COMMIT_GAP
        self.commits = 0

    def _create_schema(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        (tables,) = self._db.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()
        if tables and version != SCHEMA_VERSION:
            raise sqlite3.OperationalError(
                f"{self.path} was written by another version of the stub "
                f"(schema {version}, expected {SCHEMA_VERSION}); move it away "
                "or pass --db with a new file"
            )
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # Writing: one open transaction, committed on the next loop iteration.

    def write(self, sql: str, params: Iterable[Any] = ()) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True
        self._db.execute(sql, tuple(params))
        self._schedule_commit()

    def _schedule_commit(self) -> None:
        if self._commit_done is None:
            loop = asyncio.get_running_loop()
            self._commit_done = loop.create_future()
            # Under load, gather a few milliseconds of writes into one commit;
            # a lone write after a quiet spell is committed on the next turn.
            wait = self._last_commit + self.commit_gap - loop.time()
            if wait > 0:
                loop.call_later(wait, self._commit)
            else:
                loop.call_soon(self._commit)

    def _commit(self) -> None:
        try:
            # Still inside this batch: these writes schedule no second commit.
            if self._in_tx and self.before_commit is not None:
                self.before_commit()
        finally:
            done, self._commit_done = self._commit_done, None
        try:
            self.commit_now()
        except Exception as exc:
            log.exception("commit failed")
            if done is not None and not done.done():
                done.set_exception(exc)
                # Nobody may be waiting; do not warn about an unretrieved error.
                done.exception()
            return
        if done is not None and not done.done():
            done.set_result(None)

    def commit_now(self) -> None:
        """Commit whatever is pending, then tell ``on_commit``."""
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False
            self.commits += 1
            with contextlib.suppress(RuntimeError):
                self._last_commit = asyncio.get_running_loop().time()
        if self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:
                # The data is committed; a failed push must not fail the answers.
                log.exception("after-commit hook failed")

    async def durable(self) -> None:
        """Return once every write made so far is committed."""
        if self._commit_done is not None:
            await asyncio.shield(self._commit_done)

    def close(self) -> None:
        if self._commit_done is not None:
            self._commit()
        self._db.close()

    # Reading (sees the open transaction too: one connection).

    def one(self, sql: str, params: Iterable[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._db.execute(sql, tuple(params)).fetchone()
        return row

    def all(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._db.execute(sql, tuple(params)).fetchall())

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: object) -> None:
        self.write(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )
