"""The miner's local store: games, predictions, the outbox and link cursors.

One SQLite file (WAL) holds everything the miner knows, so the app can be
browsed offline and nothing is lost when the process dies:

- ``games``: the latest view of each game, per validator;
- ``predictions``: every prediction the miner made, and its settlement;
- ``deliveries``: each prediction at each validator (queued, sent,
  accepted, rejected) and the confirmation that came back. A delivery that
  is queued or sent is the outbox: it is resent until confirmed;
- ``cursors``: per validator, the last event seq applied and the hotkey it
  signed with.

Each change is one transaction. A prediction is committed before anything is
sent. The store keeps an in-memory copy of games, prediction records and the
outbox, so reads never touch the disk. That a prediction was sent is written
with the next transaction (usually its confirmation's): it is only shown,
and a prediction found queued after a crash is resent just as a sent one is.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import platformdirs

from bettensor_core.models import Delivery, DeliveryState, PredictionRecord
from bettensor_core.protocol import (
    Confirmation,
    Event,
    Game,
    Prediction,
    Settlement,
    Snapshot,
)
from bettensor_core.rules import utc_day

log = logging.getLogger("bettensor_core.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS games (
    validator TEXT NOT NULL,
    game_id TEXT NOT NULL,
    data BLOB NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (validator, game_id)
);
CREATE TABLE IF NOT EXISTS predictions (
    prediction_id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    settlement BLOB
);
CREATE TABLE IF NOT EXISTS deliveries (
    prediction_id TEXT NOT NULL REFERENCES predictions (prediction_id),
    validator TEXT NOT NULL,
    state TEXT NOT NULL,
    via TEXT,
    sent_at REAL,
    confirmation BLOB,
    PRIMARY KEY (prediction_id, validator)
);
CREATE INDEX IF NOT EXISTS deliveries_outbox ON deliveries (validator, state);
CREATE TABLE IF NOT EXISTS cursors (
    validator TEXT PRIMARY KEY,
    last_seq INTEGER,
    validator_ss58 TEXT
);
"""

_OPEN = (DeliveryState.QUEUED.value, DeliveryState.SENT.value)
_encoder = msgspec.json.Encoder()
_games = msgspec.json.Decoder(Game)
_predictions = msgspec.json.Decoder(Prediction)
_confirmations = msgspec.json.Decoder(Confirmation)
_settlements = msgspec.json.Decoder(Settlement)


def default_store_path() -> Path:
    """Where the store lives unless told otherwise: the user data dir."""
    return Path(platformdirs.user_data_dir("bettensor")) / "miner.sqlite3"


@dataclass(slots=True)
class Applied:
    """What applying pushed events or a snapshot changed."""

    game_ids: set[str] = field(default_factory=set)
    prediction_ids: set[str] = field(default_factory=set)
    snapshot: bool = False
    last_seq: int | None = None


class Store:
    """The SQLite store of one miner; one instance per file, one event loop.

    ``durable_sync`` (the default) syncs each new prediction to the disk
    itself before `add_prediction` returns, so not even a power cut loses it;
    without it a new prediction survives a killed process, not a power cut,
    and each submit is about 0.3 ms faster (``docs/benchmarks.md``).
    """

    def __init__(self, path: Path | str, *, durable_sync: bool = True):
        self.path = Path(path)
        self._new_prediction_sync = "FULL" if durable_sync else "NORMAL"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL keeps every commit across a killed process; a power cut may
        # lose the last pushes or confirmations, which a resume or a resend
        # brings back. New predictions are synced in full (`add_prediction`),
        # unless ``durable_sync`` is off.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

        self._games: dict[str, dict[str, tuple[float, Game]]] = {}
        self._records: dict[str, PredictionRecord] = {}
        # Cents wagered per (UTC day of creation, validator), rejections left
        # out: the budget check before every submit is one lookup, however
        # many predictions the day holds. Kept in whole cents so that adding
        # and taking away wagers never drifts.
        self._day_cents: dict[tuple[str, str], int] = {}
        # Per validator, the ids still to confirm there, oldest first.
        self._open: dict[str, dict[str, None]] = {}
        # Sent marks not yet written: (id, validator) -> (via, sent_at).
        self._unsaved_sent: dict[tuple[str, str], tuple[str, float]] = {}
        self._load()

    def close(self) -> None:
        if self._unsaved_sent:
            # An empty transaction: opening one writes the sent marks.
            with self._transaction():
                pass
        self._db.close()

    # Reading (from memory).

    def games(self) -> dict[str, Game]:
        """Every game, each as the validator that updated it last sees it."""
        merged: dict[str, tuple[float, Game]] = {}
        for games in self._games.values():
            for game_id, (updated_at, game) in games.items():
                if game_id not in merged or merged[game_id][0] < updated_at:
                    merged[game_id] = (updated_at, game)
        return {game_id: game for game_id, (_, game) in merged.items()}

    def game(self, game_id: str) -> Game | None:
        """One game, as the validator that updated it last sees it."""
        best: tuple[float, Game] | None = None
        for games in self._games.values():
            entry = games.get(game_id)
            if entry is not None and (best is None or best[0] < entry[0]):
                best = entry
        return None if best is None else best[1]

    def games_of(self, validator: str) -> dict[str, Game]:
        return {gid: game for gid, (_, game) in self._games.get(validator, {}).items()}

    def prediction(self, prediction_id: str) -> PredictionRecord | None:
        return self._records.get(prediction_id)

    def predictions(self) -> list[PredictionRecord]:
        """Every prediction, newest first."""
        return sorted(
            self._records.values(),
            key=lambda r: (r.created_at, r.prediction.prediction_id),
            reverse=True,
        )

    def day_totals(self, day: str, validators: Iterable[str]) -> dict[str, float]:
        """Per validator, the wagers of ``day`` (UTC) not rejected there."""
        return {name: self._day_cents.get((day, name), 0) / 100 for name in validators}

    def pending(self, validator: str, limit: int) -> list[Prediction]:
        """The oldest predictions not yet confirmed by ``validator``."""
        ids = itertools.islice(self._open.get(validator, ()), limit)
        return [self._records[pid].prediction for pid in ids]

    def cursor(self, validator: str) -> tuple[int | None, str | None]:
        """The last seq applied from ``validator`` and the hotkey it signs with."""
        row = self._db.execute(
            "SELECT last_seq, validator_ss58 FROM cursors WHERE validator = ?",
            (validator,),
        ).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    # Writing (one transaction each).

    def add_prediction(
        self, prediction: Prediction, validators: Sequence[str]
    ) -> PredictionRecord:
        """Store a new prediction, queued for every validator, before any send."""
        created_at = prediction.created_at or time.time()
        # This commit is a promise to the miner: sync it to disk, so that not
        # even a power cut loses a prediction `submit` returned.
        self._db.execute(f"PRAGMA synchronous={self._new_prediction_sync}")
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO predictions (prediction_id, data, created_at)"
                    " VALUES (?, ?, ?)",
                    (prediction.prediction_id, _encoder.encode(prediction), created_at),
                )
                self._db.executemany(
                    "INSERT INTO deliveries (prediction_id, validator, state)"
                    " VALUES (?, ?, ?)",
                    [
                        (prediction.prediction_id, name, DeliveryState.QUEUED.value)
                        for name in validators
                    ],
                )
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")
        record = PredictionRecord(
            prediction=prediction,
            created_at=created_at,
            deliveries={name: Delivery(validator=name) for name in validators},
        )
        self._records[prediction.prediction_id] = record
        for name in validators:
            self._count_wager(record, name, +1)
            self._open.setdefault(name, {})[prediction.prediction_id] = None
        return record

    def mark_sent(
        self, validator: str, prediction_ids: Sequence[str], via: str, now: float
    ) -> set[str]:
        """Note that these predictions went out to ``validator`` over ``via``.

        Returns the ids sent for the first time (queued until now).
        """
        first: set[str] = set()
        for pid in prediction_ids:
            delivery = self._delivery(pid, validator)
            if delivery is not None and delivery.state in _OPEN:
                if delivery.state == DeliveryState.QUEUED:
                    first.add(pid)
                delivery.state = DeliveryState.SENT
                delivery.via = via
                delivery.sent_at = now
                # Written with the next transaction: no commit of its own.
                self._unsaved_sent[(pid, validator)] = (via, now)
        return first

    def confirm(
        self, validator: str, confirmations: Iterable[Confirmation]
    ) -> set[str]:
        """Record confirmations from ``validator``; return the ids that changed.

        The first confirmation of a prediction wins: a validator answers a
        resend with the original, so a later one changes nothing.
        """
        with self._transaction():
            return self._confirm(validator, confirmations)

    def apply_events(
        self, validator: str, events: Sequence[Event], head: int
    ) -> Applied:
        """Apply pushed events newer than the cursor, in seq order, idempotently."""
        applied = Applied()
        with self._transaction():
            last_seq, _ = self.cursor(validator)
            for event in sorted(events, key=lambda e: e.seq):
                if last_seq is not None and event.seq <= last_seq:
                    continue
                self._apply_event(validator, event, applied)
                last_seq = event.seq

            # A validator whose log restarted below our cursor lost its
            # history: forget the cursor so the next resume asks a snapshot.
            if last_seq is not None and head < last_seq:
                log.warning(
                    "validator %s is at seq %d, behind our %d: asking a snapshot",
                    validator,
                    head,
                    last_seq,
                )
                last_seq = None
            self._set_cursor(validator, last_seq)
        applied.last_seq = last_seq
        return applied

    def apply_snapshot(self, validator: str, snapshot: Snapshot) -> Applied:
        """Replace this validator's games, record its confirmations and settlements."""
        applied = Applied(snapshot=True, last_seq=snapshot.seq)
        now = time.time()
        with self._transaction():
            old = set(self._games.get(validator, {}))
            self._db.execute("DELETE FROM games WHERE validator = ?", (validator,))
            self._games[validator] = {}
            for game in snapshot.games:
                self._put_game(validator, game, now)
            applied.game_ids = old | {game.game_id for game in snapshot.games}
            applied.prediction_ids |= self._confirm(validator, snapshot.confirmations)
            applied.prediction_ids |= self._settle(snapshot.settlements)
            self._set_cursor(validator, snapshot.seq)
        return applied

    def set_validator_ss58(self, validator: str, ss58: str) -> None:
        """Remember the hotkey ``validator`` signed its first welcome with."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO cursors (validator, validator_ss58) VALUES (?, ?)"
                " ON CONFLICT (validator)"
                " DO UPDATE SET validator_ss58 = excluded.validator_ss58",
                (validator, ss58),
            )

    # Internals.

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._write_sent_marks)

    def _write_sent_marks(self) -> None:
        if not self._unsaved_sent:
            return
        marks, self._unsaved_sent = self._unsaved_sent, {}
        self._db.executemany(
            "UPDATE deliveries SET state = ?, via = ?, sent_at = ?"
            " WHERE prediction_id = ? AND validator = ? AND state IN (?, ?)",
            [
                (DeliveryState.SENT.value, via, sent_at, pid, validator, *_OPEN)
                for (pid, validator), (via, sent_at) in marks.items()
            ],
        )

    def _delivery(self, prediction_id: str, validator: str) -> Delivery | None:
        record = self._records.get(prediction_id)
        return None if record is None else record.deliveries.get(validator)

    def _confirm(
        self, validator: str, confirmations: Iterable[Confirmation]
    ) -> set[str]:
        changed: set[str] = set()
        for confirmation in confirmations:
            pid = confirmation.prediction_id
            delivery = self._delivery(pid, validator)
            # Unknown to us (another store's prediction) or already answered.
            if delivery is None or delivery.state not in _OPEN:
                continue
            state = (
                DeliveryState.ACCEPTED
                if confirmation.accepted
                else DeliveryState.REJECTED
            )
            self._db.execute(
                "UPDATE deliveries SET state = ?, confirmation = ?"
                " WHERE prediction_id = ? AND validator = ?",
                (state.value, _encoder.encode(confirmation), pid, validator),
            )
            delivery.state = state
            delivery.confirmation = confirmation
            self._open.get(validator, {}).pop(pid, None)
            if state == DeliveryState.REJECTED:
                self._count_wager(self._records[pid], validator, -1)
            changed.add(pid)
        return changed

    def _settle(self, settlements: Iterable[Settlement]) -> set[str]:
        changed: set[str] = set()
        for settlement in settlements:
            record = self._records.get(settlement.prediction_id)
            if record is None or record.settlement == settlement:
                continue
            self._db.execute(
                "UPDATE predictions SET settlement = ? WHERE prediction_id = ?",
                (_encoder.encode(settlement), settlement.prediction_id),
            )
            record.settlement = settlement
            changed.add(settlement.prediction_id)
        return changed

    def _apply_event(self, validator: str, event: Event, applied: Applied) -> None:
        if event.game is not None:
            self._put_game(validator, event.game, time.time())
            applied.game_ids.add(event.game.game_id)
        if event.confirmation is not None:
            applied.prediction_ids |= self._confirm(validator, [event.confirmation])
        if event.settlement is not None:
            applied.prediction_ids |= self._settle([event.settlement])

    def _count_wager(self, record: PredictionRecord, validator: str, sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) a wager in its day's total."""
        key = (utc_day(record.created_at), validator)
        cents = round((record.prediction.wager or 0.0) * 100)
        self._day_cents[key] = self._day_cents.get(key, 0) + sign * cents

    def _put_game(self, validator: str, game: Game, now: float) -> None:
        self._db.execute(
            "INSERT INTO games (validator, game_id, data, updated_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (validator, game_id)"
            " DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            (validator, game.game_id, _encoder.encode(game), now),
        )
        self._games.setdefault(validator, {})[game.game_id] = (now, game)

    def _set_cursor(self, validator: str, last_seq: int | None) -> None:
        self._db.execute(
            "INSERT INTO cursors (validator, last_seq) VALUES (?, ?)"
            " ON CONFLICT (validator) DO UPDATE SET last_seq = excluded.last_seq",
            (validator, last_seq),
        )

    def _load(self) -> None:
        for validator, data, updated_at in self._db.execute(
            "SELECT validator, data, updated_at FROM games"
        ):
            game = _games.decode(data)
            self._games.setdefault(validator, {})[game.game_id] = (updated_at, game)

        for data, created_at, settlement in self._db.execute(
            "SELECT data, created_at, settlement FROM predictions"
        ):
            prediction = _predictions.decode(data)
            self._records[prediction.prediction_id] = PredictionRecord(
                prediction=prediction,
                created_at=created_at,
                settlement=None
                if settlement is None
                else _settlements.decode(settlement),
            )
        for pid, validator, state, via, sent_at, confirmation in self._db.execute(
            "SELECT prediction_id, validator, state, via, sent_at, confirmation"
            " FROM deliveries"
        ):
            record = self._records.get(pid)
            if record is None:
                continue
            record.deliveries[validator] = Delivery(
                validator=validator,
                state=DeliveryState(state),
                via=via,
                sent_at=sent_at,
                confirmation=(
                    None
                    if confirmation is None
                    else _confirmations.decode(confirmation)
                ),
            )
            if state != DeliveryState.REJECTED.value:
                self._count_wager(record, validator, +1)
        # The outbox, oldest first, as `pending` hands it out. Only open
        # deliveries are sorted, not the whole history.
        outbox = sorted(
            (record.created_at, record.prediction.prediction_id, validator)
            for record in self._records.values()
            for validator, delivery in record.deliveries.items()
            if delivery.state in _OPEN
        )
        for _, pid, validator in outbox:
            self._open.setdefault(validator, {})[pid] = None


class _Transaction:
    """``BEGIN IMMEDIATE``, ``first()``, the body, then ``COMMIT`` (or ``ROLLBACK``)."""

    def __init__(self, db: sqlite3.Connection, first: Callable[[], None]):
        self._db = db
        self._first = first

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._first()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
