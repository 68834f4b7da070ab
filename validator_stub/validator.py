"""The stub's validator state: games, predictions, day totals and the event log.

No sockets here: the web layer calls these methods and sends what they return.
Every change is written to the `Store` first; events become visible (in the
log and to the ``publish`` hook) only once the commit that holds them is done.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from bettensor_core.codec import NonceGuard
from bettensor_core.protocol import (
    OUTCOME_TEAM_A,
    OUTCOME_TEAM_B,
    OUTCOME_TIE,
    Confirmation,
    Event,
    EventKind,
    Game,
    Prediction,
    Settlement,
    Snapshot,
)
from bettensor_core.rules import (
    REASON_TEXT,
    Reason,
    budget_left,
    check_prediction,
    odds_taken,
    same_content,
    utc_day,
)
from validator_stub.config import Limits
from validator_stub.store import Store

log = logging.getLogger(__name__)

_encode = msgspec.json.encode
_event_decoder = msgspec.json.Decoder(Event)
_game_decoder = msgspec.json.Decoder(Game)
_prediction_decoder = msgspec.json.Decoder(Prediction)
_confirmation_decoder = msgspec.json.Decoder(Confirmation)
_settlement_decoder = msgspec.json.Decoder(Settlement)


class GameError(ValueError):
    """A control asked for something a game cannot do (unknown id, bad outcome)."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event and the miner it is for (``None``: every miner).

    ``answered`` names the session (a WebSocket's id, or ``http:`` and an
    HTTP client's own name) that has this event's news as the direct answer
    to its request (a confirmation): the live push skips that session, and
    its long-poll is not woken for it. It is not stored: a replay after a
    reconnect sends the event like any other.
    """

    event: Event
    miner: str | None
    answered: str | None = None

    def concerns(self, miner: str) -> bool:
        return self.miner is None or self.miner == miner

    def is_news_to(self, session: str | None) -> bool:
        """Whether ``session`` lacks this event (it was not its answer)."""
        return self.answered is None or session != self.answered


class EventLog:
    """The recent events, bounded by age and count, in seq order.

    ``floor`` is the newest seq that has fallen out: every event after it is
    still here, so a miner resuming from ``floor`` or later gets events, and
    one resuming from before it needs a snapshot.
    """

    def __init__(self, max_age: float, max_size: int):
        self.max_age = max_age
        self.max_size = max_size
        self.head = 0
        self.floor = 0
        self._entries: list[LoggedEvent] = []
        self._seqs: list[int] = []

    def __len__(self) -> int:
        return len(self._entries)

    def extend(self, entries: list[LoggedEvent]) -> None:
        for entry in entries:
            self._entries.append(entry)
            self._seqs.append(entry.event.seq)
            self.head = entry.event.seq
        # Trim in chunks so that a full log does not shift the list every event.
        if len(self._entries) > self.max_size + max(1, self.max_size // 10):
            self._drop(len(self._entries) - self.max_size)

    def trim(self, now: float) -> None:
        """Drop events older than ``max_age`` and any beyond ``max_size``."""
        cut = bisect.bisect_left(
            self._entries, now - self.max_age, key=lambda e: e.event.at
        )
        cut = max(cut, len(self._entries) - self.max_size)
        if cut > 0:
            self._drop(cut)

    def _drop(self, count: int) -> None:
        self.floor = self._seqs[count - 1]
        del self._entries[:count]
        del self._seqs[:count]

    def after(self, seq: int, miner: str) -> list[Event] | None:
        """Events after ``seq`` for ``miner``, or None when a snapshot is needed."""
        if seq < self.floor or seq > self.head:
            return None
        start = bisect.bisect_right(self._seqs, seq)
        return [e.event for e in self._entries[start:] if e.concerns(miner)]

    def has_after(self, seq: int, miner: str) -> bool:
        """Whether anything newer than ``seq`` concerns ``miner`` (long-polls ask)."""
        if seq < self.floor or seq > self.head:
            return True
        start = bisect.bisect_right(self._seqs, seq)
        return any(e.concerns(miner) for e in self._entries[start:])


class Validator:
    """Applies the rules, keeps the state and numbers the events.

    ``publish`` is called with each batch of events right after it is
    committed, in seq order; the web layer pushes them to miners from there.
    """

    def __init__(
        self,
        store: Store,
        limits: Limits,
        *,
        clock: Callable[[], float] = time.time,
        publish: Callable[[list[LoggedEvent]], None] | None = None,
    ):
        self.store = store
        self.limits = limits
        self.clock = clock
        self.publish = publish
        self.games: dict[str, Game] = {}
        self.log = EventLog(limits.event_log_age, limits.event_log_size)
        self.day_totals: dict[tuple[str, str], float] = {}
        self.accepted_count = 0
        self.rejected_count = 0
        self.duplicate_count = 0
        self._next_seq = 1
        self._day_number = -1
        self._day_name = ""
        self._pending: list[LoggedEvent] = []
        self.nonces = NonceGuard(on_seen=self._nonce_seen)
        store.on_commit = self._committed
        store.before_commit = self._save_head
        self._load()

    # Loading what a previous run left behind.

    def _load(self) -> None:
        now = self.clock()
        for (data,) in self.store.all("SELECT data FROM games"):
            game = _game_decoder.decode(data)
            self.games[game.game_id] = game

        head = int(self.store.get_meta("head") or 0)
        floor = int(self.store.get_meta("floor") or 0)
        rows = self.store.all(
            "SELECT miner, data FROM events WHERE seq > ? ORDER BY seq", (floor,)
        )
        entries = [LoggedEvent(_event_decoder.decode(d), m) for m, d in rows]
        self.log.floor = floor
        self.log.extend(entries)
        self.log.head = max(head, self.log.head)
        self.log.trim(now)
        self._next_seq = self.log.head + 1

        yesterday = utc_day(now - 86400)
        for miner, day, total in self.store.all(
            "SELECT miner, day, SUM(wager) FROM predictions "
            "WHERE accepted = 1 AND day >= ? GROUP BY miner, day",
            (yesterday,),
        ):
            self.day_totals[(miner, day)] = float(total)
        (self.accepted_count,) = self.store.one(
            "SELECT COUNT(*) FROM predictions WHERE accepted = 1"
        ) or (0,)
        (self.rejected_count,) = self.store.one(
            "SELECT COUNT(*) FROM predictions WHERE accepted = 0"
        ) or (0,)

        # Nonces still inside the freshness window must stay refused.
        since = int((now - 2 * self.nonces.window) * 1000)
        for sender, nonce, ts in self.store.all(
            "SELECT sender, nonce, ts FROM nonces WHERE ts >= ? ORDER BY ts", (since,)
        ):
            self.nonces.remember(sender, nonce, ts)
        log.info(
            "loaded %d games, head seq %d, %d events, %d nonces from %s",
            len(self.games),
            self.log.head,
            len(self.log),
            len(self.nonces),
            self.store.path,
        )

    def _nonce_seen(self, sender: str, nonce: str, ts: int) -> None:
        self.store.write(
            "INSERT INTO nonces (sender, nonce, ts) VALUES (?, ?, ?)",
            (sender, nonce, ts),
        )

    # Events: numbered now, visible once committed.

    @property
    def head(self) -> int:
        """The newest seq miners can see (committed and published)."""
        return self.log.head

    def _emit(
        self,
        kind: EventKind,
        *,
        game: Game | None = None,
        confirmation: Confirmation | None = None,
        settlement: Settlement | None = None,
        miner: str | None = None,
        answered: str | None = None,
    ) -> Event:
        seq = self._next_seq
        self._next_seq += 1
        event = Event(
            seq=seq,
            kind=kind,
            at=self.clock(),
            game=game,
            confirmation=confirmation,
            settlement=settlement,
        )
        self.store.write(
            "INSERT INTO events (seq, miner, at, data) VALUES (?, ?, ?, ?)",
            (seq, miner, event.at, _encode(event)),
        )
        self._pending.append(LoggedEvent(event, miner, answered))
        return event

    def _save_head(self) -> None:
        # Once per commit rather than once per event.
        if self._pending:
            self.store.set_meta("head", self._pending[-1].event.seq)

    def _committed(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        self.log.extend(batch)
        if self.publish is not None:
            self.publish(batch)

    async def durable(self) -> None:
        """Wait until every change made so far is committed (and published)."""
        await self.store.durable()

    def housekeeping(self) -> None:
        """Trim the event log and forget nonces past the window (call now and then)."""
        now = self.clock()
        self.log.trim(now)
        self.store.set_meta("floor", self.log.floor)
        self.store.write("DELETE FROM events WHERE seq <= ?", (self.log.floor,))
        since = int((now - 2 * self.nonces.window) * 1000)
        self.store.write("DELETE FROM nonces WHERE ts < ?", (since,))

    # Predictions.

    def submit(
        self, miner: str, prediction: Prediction, *, answered: str | None = None
    ) -> Confirmation:
        """Decide on one prediction and record it; await `durable` before answering.

        ``answered``: the session that gets the confirmation as its answer,
        so that the confirmation event is not pushed to it as well.
        """
        now = self.clock()
        row = self.store.one(
            "SELECT content, confirmation FROM predictions "
            "WHERE miner = ? AND prediction_id = ?",
            (miner, prediction.prediction_id),
        )
        if row is not None:
            return self._resent(miner, prediction, row, now)

        day = self._day(now)
        total = self.day_totals.get((miner, day), 0.0)
        game = self.games.get(prediction.game_id) if prediction.game_id else None
        verdict = check_prediction(prediction, game, now=now, day_total=total)
        taken = None
        if verdict.accepted:
            assert prediction.wager is not None and game is not None
            total += prediction.wager
            self.day_totals[(miner, day)] = total
            taken = odds_taken(prediction, game)
            self.accepted_count += 1
        else:
            self.rejected_count += 1

        confirmation = Confirmation(
            prediction_id=prediction.prediction_id,
            accepted=verdict.accepted,
            reason=None if verdict.reason is None else str(verdict.reason),
            message=verdict.message,
            budget_left=budget_left(total),
            confirmed_at=now,
        )
        self.store.write(
            "INSERT INTO predictions (miner, prediction_id, content, confirmation, "
            "accepted, game_id, wager, odds_taken, day, confirmed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                miner,
                prediction.prediction_id,
                _encode(prediction),
                _encode(confirmation),
                int(verdict.accepted),
                prediction.game_id,
                prediction.wager,
                taken,
                day,
                now,
            ),
        )
        self._emit(
            "confirmation", confirmation=confirmation, miner=miner, answered=answered
        )
        return confirmation

    def _resent(
        self,
        miner: str,
        prediction: Prediction,
        row: tuple[bytes, bytes],
        now: float,
    ) -> Confirmation:
        # Same id again: the original answer if the content matches, else a refusal
        # that is neither stored nor pushed (the id keeps its first meaning).
        content, original = row
        if same_content(_prediction_decoder.decode(content), prediction):
            self.duplicate_count += 1
            return _confirmation_decoder.decode(original)
        total = self.day_totals.get((miner, self._day(now)), 0.0)
        return Confirmation(
            prediction_id=prediction.prediction_id,
            accepted=False,
            reason=str(Reason.DUPLICATE_ID),
            message=REASON_TEXT[Reason.DUPLICATE_ID],
            budget_left=budget_left(total),
            confirmed_at=now,
        )

    def _day(self, now: float) -> str:
        # utc_day formats a date; one format per day is plenty.
        number = int(now // 86400)
        if number != self._day_number:
            self._day_number, self._day_name = number, utc_day(now)
        return self._day_name

    def day_total(self, miner: str, day: str | None = None) -> float:
        return self.day_totals.get((miner, day or self._day(self.clock())), 0.0)

    # Games.

    def game(self, game_id: str) -> Game:
        game = self.games.get(game_id)
        if game is None:
            raise GameError(f"unknown game {game_id!r}")
        return game

    def _save_game(self, game: Game) -> None:
        self.games[game.game_id] = game
        self.store.write(
            "INSERT INTO games (game_id, data) VALUES (?, ?) "
            "ON CONFLICT (game_id) DO UPDATE SET data = excluded.data",
            (game.game_id, _encode(game)),
        )

    def add_game(self, game: Game) -> Event:
        self._save_game(game)
        return self._emit("game_added", game=game)

    def change_odds(
        self,
        game_id: str,
        odds_a: float,
        odds_b: float,
        odds_tie: float | None = None,
    ) -> Event:
        game = self.game(game_id)
        if game.status != "scheduled":
            raise GameError(f"game {game_id} has already started")
        for odds in (odds_a, odds_b, odds_tie):
            if odds is not None and not odds > 1.0:
                raise GameError("decimal odds must be above 1")
        if game.can_tie and odds_tie is None:
            odds_tie = game.odds_tie
        if not game.can_tie and odds_tie is not None:
            raise GameError(f"game {game_id} has no ties")
        changed = msgspec.structs.replace(
            game, odds_a=odds_a, odds_b=odds_b, odds_tie=odds_tie
        )
        self._save_game(changed)
        return self._emit("odds_changed", game=changed)

    def kickoff(self, game_id: str) -> Event:
        game = self.game(game_id)
        if game.status != "scheduled":
            raise GameError(f"game {game_id} has already kicked off")
        started = msgspec.structs.replace(
            game, status="live", kickoff=min(game.kickoff, self.clock())
        )
        self._save_game(started)
        return self._emit("kickoff", game=started)

    def settle(self, game_id: str, outcome: int) -> list[Settlement]:
        """End a game with ``outcome`` and settle its accepted predictions."""
        game = self.game(game_id)
        allowed = {OUTCOME_TEAM_A, OUTCOME_TEAM_B} | (
            {OUTCOME_TIE} if game.can_tie else set()
        )
        if outcome not in allowed:
            raise GameError(f"outcome {outcome} is not possible for game {game_id}")
        if game.status == "final":
            raise GameError(f"game {game_id} is already settled")
        now = self.clock()
        final = msgspec.structs.replace(
            game, status="final", outcome=outcome, kickoff=min(game.kickoff, now)
        )
        self._save_game(final)
        self._emit("result", game=final)

        settlements = []
        rows = self.store.all(
            "SELECT rowid, miner, prediction_id, content, wager, odds_taken "
            "FROM predictions WHERE game_id = ? AND accepted = 1 AND settled = 0",
            (game_id,),
        )
        for rowid, miner, prediction_id, content, wager, taken in rows:
            won = _prediction_decoder.decode(content).outcome == outcome
            settlement = Settlement(
                prediction_id=prediction_id,
                game_id=game_id,
                outcome=outcome,
                won=won,
                payout=round(wager * taken, 6) if won else 0.0,
                settled_at=now,
            )
            self.store.write(
                "INSERT INTO settlements (miner, prediction_id, data, settled_at) "
                "VALUES (?, ?, ?, ?)",
                (miner, prediction_id, _encode(settlement), now),
            )
            self.store.write(
                "UPDATE predictions SET settled = 1 WHERE rowid = ?", (rowid,)
            )
            self._emit("settlement", settlement=settlement, miner=miner)
            settlements.append(settlement)
        return settlements

    def forget_game(self, game_id: str) -> None:
        """Drop a long-finished game from the live set (the simulator prunes)."""
        self.games.pop(game_id, None)
        self.store.write("DELETE FROM games WHERE game_id = ?", (game_id,))

    # What a miner sees after a reconnect.

    def snapshot(self, miner: str | None) -> Snapshot:
        """Every game, plus ``miner``'s recent confirmations and settlements."""
        confirmations: list[Confirmation] = []
        settlements: list[Settlement] = []
        if miner is not None:
            limit = self.limits.snapshot_items
            confirmations = [
                _confirmation_decoder.decode(d)
                for (d,) in reversed(
                    self.store.all(
                        "SELECT confirmation FROM predictions WHERE miner = ? "
                        "ORDER BY rowid DESC LIMIT ?",
                        (miner, limit),
                    )
                )
            ]
            settlements = [
                _settlement_decoder.decode(d)
                for (d,) in reversed(
                    self.store.all(
                        "SELECT data FROM settlements WHERE miner = ? "
                        "ORDER BY rowid DESC LIMIT ?",
                        (miner, limit),
                    )
                )
            ]
        return Snapshot(
            seq=self.head,
            games=sorted(self.games.values(), key=lambda g: (g.kickoff, g.game_id)),
            confirmations=confirmations,
            settlements=settlements,
        )

    def events_after(self, seq: int | None, miner: str) -> list[Event] | None:
        """Everything after ``seq`` for ``miner``, or None when a snapshot is due."""
        if seq is None:
            return None
        return self.log.after(seq, miner)
