"""`MinerClient`: the miner's side of the wire, for the app, scripts and models.

One client holds one local store and one `Link` per validator. It shows the
games the validators push, takes predictions into the outbox and sends them
to every validator until each has confirmed, and tells its subscribers what
changed. See ``docs/client.md`` for a runnable example.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType

from bettensor_core.codec import Signer
from bettensor_core.config import ValidatorConfig
from bettensor_core.errors import ConfigError, WagerError
from bettensor_core.link import Link, LinkOptions
from bettensor_core.models import (
    ClientEvent,
    GamesChanged,
    LinkStatus,
    PredictionChanged,
    PredictionRecord,
)
from bettensor_core.outbox import new_prediction
from bettensor_core.power import DEFAULT_PROFILES, PowerPolicy, PowerProfile, PowerState
from bettensor_core.protocol import Confirmation, Game
from bettensor_core.rules import budget_left, utc_day
from bettensor_core.store import Store

log = logging.getLogger("bettensor_core.client")


class Subscription:
    """One subscriber's stream of `ClientEvent`s; iterate it with ``async for``.

    Events are queued from the moment `MinerClient.subscribe` returns, so
    none is missed between subscribing and iterating. The stream ends when
    the client closes or `aclose` is called.
    """

    def __init__(self, client: MinerClient):
        self._client = client
        self._queue: asyncio.Queue[ClientEvent | None] = asyncio.Queue()
        self._ended = False

    def __aiter__(self) -> AsyncIterator[ClientEvent]:
        return self

    async def __anext__(self) -> ClientEvent:
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is None:
            self._ended = True
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """Stop receiving events."""
        self._client._unsubscribe(self)
        self._end()

    def _put(self, event: ClientEvent) -> None:
        if not self._ended:
            self._queue.put_nowait(event)

    def _end(self) -> None:
        if not self._ended:
            self._queue.put_nowait(None)


class MinerClient:
    """Connects a miner to its validators; see the module docstring.

    ``validators`` are the validators to connect to (their labels must be
    unique: they key the store). ``store_path`` is the SQLite file (see
    `bettensor_core.store.default_store_path`). ``power`` supplies the
    heartbeat interval and long-poll hold of each power state; the client
    follows its state changes. ``link_options`` tunes timings (tests use
    short ones). ``durable_sync=False`` trades the power-cut safety of new
    predictions for about 0.3 ms a submit (see `Store`); a killed process
    still loses nothing.
    """

    def __init__(
        self,
        signer: Signer,
        validators: Sequence[ValidatorConfig],
        *,
        store_path: Path | str,
        power: PowerPolicy | None = None,
        link_options: LinkOptions | None = None,
        durable_sync: bool = True,
    ):
        labels = [v.label for v in validators]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ConfigError(
                f"validators share a name or url: {', '.join(duplicates)}"
            )

        self.signer = signer
        self.validators = list(validators)
        self._power = power
        self._power_state = power.state if power is not None else PowerState.ACTIVE
        self._unsubscribe_power = (
            power.subscribe(self._on_power) if power is not None else None
        )
        self._store = Store(store_path, durable_sync=durable_sync)
        self._games: dict[str, Game] = self._store.games()
        self._subscribers: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._links = [
            Link(
                config,
                signer,
                self._store,
                profile=self._profile,
                power_state=lambda: self._power_state.value,
                emit=self._emit,
                options=link_options,
            )
            for config in self.validators
        ]
        self._started = False
        self._closed = False

    # Lifecycle.

    async def start(self) -> None:
        """Start connecting to every validator; returns at once."""
        if self._closed:
            raise RuntimeError("this MinerClient is closed")
        if self._started:
            return
        self._started = True
        pending = sum(
            1
            for record in self._store.predictions()
            for d in record.deliveries.values()
            if d.confirmation is None
        )
        log.info(
            "miner %s starting with %d validator(s), %d pending deliveries",
            self.signer.ss58,
            len(self._links),
            pending,
        )
        for link in self._links:
            link.start()

    async def close(self) -> None:
        """Disconnect, close the store and end every subscription."""
        if self._closed:
            return
        self._closed = True
        for link in self._links:
            await link.close()
        if self._unsubscribe_power is not None:
            self._unsubscribe_power()
        for subscription in list(self._subscribers):
            subscription._end()
        for events in self._waiters.values():
            for event in events:
                event.set()
        self._store.close()

    async def __aenter__(self) -> MinerClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Reading.

    @property
    def games(self) -> Mapping[str, Game]:
        """The current games by id (from the store at start, then live)."""
        return MappingProxyType(self._games)

    @property
    def store_path(self) -> Path:
        return self._store.path

    def predictions(self) -> list[PredictionRecord]:
        """Every prediction this miner made, newest first."""
        return self._store.predictions()

    def prediction(self, prediction_id: str) -> PredictionRecord | None:
        return self._store.prediction(prediction_id)

    def links(self) -> list[LinkStatus]:
        """The status of each validator link, in configuration order."""
        return [link.status for link in self._links]

    def budget_left(self) -> float:
        """What may still be wagered today (UTC), at the strictest validator.

        Counts today's predictions accepted or still pending at each
        validator (rejected ones give their wager back).
        """
        totals = self._store.day_totals(
            utc_day(time.time()), [link.name for link in self._links]
        )
        return budget_left(max(totals.values(), default=0.0))

    # Predicting.

    async def submit(
        self,
        game_id: str,
        outcome: int,
        wager: float,
        *,
        confidence: float | None = None,
    ) -> PredictionRecord:
        """Store a prediction in the outbox and start sending it; returns at once.

        The prediction takes ``game_id``'s current odds from `games`. Raises
        `WagerError` (and stores nothing) when the game is unknown or no
        longer open, the outcome is impossible, or the wager is not a
        positive amount with at most two decimals within `budget_left`.
        """
        if self._closed:
            raise RuntimeError("this MinerClient is closed")
        game = self._games.get(game_id)
        if game is None:
            raise WagerError(f"Game {game_id!r} is not known.")
        if game.status != "scheduled":
            raise WagerError("The game has already started.")

        prediction = new_prediction(
            game,
            outcome,
            wager,
            budget=self.budget_left(),
            confidence=confidence,
            now=time.time(),
        )
        record = self._store.add_prediction(
            prediction, [link.name for link in self._links]
        )
        log.debug("queued prediction %s", prediction.prediction_id)
        self._emit(PredictionChanged(prediction.prediction_id))
        for link in self._links:
            link.wake()
        return record

    async def confirmations(
        self, prediction_id: str, *, timeout: float | None = None
    ) -> dict[str, Confirmation]:
        """Wait until every validator confirmed ``prediction_id``; return them by name.

        Raises `KeyError` for an unknown id and `TimeoutError` when
        ``timeout`` seconds pass first.
        """
        if self._store.prediction(prediction_id) is None:
            raise KeyError(prediction_id)
        async with asyncio.timeout(timeout):
            while True:
                found = self._confirmed(prediction_id)
                if found is not None:
                    return found
                if self._closed:
                    raise RuntimeError("this MinerClient is closed")
                changed = asyncio.Event()
                self._waiters.setdefault(prediction_id, set()).add(changed)
                try:
                    await changed.wait()
                finally:
                    waiters = self._waiters.get(prediction_id)
                    if waiters is not None:
                        waiters.discard(changed)
                        if not waiters:
                            del self._waiters[prediction_id]

    def subscribe(self) -> Subscription:
        """A new stream of `GamesChanged`, `PredictionChanged` and `LinkChanged`."""
        subscription = Subscription(self)
        if self._closed:
            subscription._end()
        else:
            self._subscribers.add(subscription)
        return subscription

    # Power.

    def set_power_state(self, state: PowerState) -> None:
        """Switch heartbeat interval and long-poll hold to ``state``'s, live."""
        state = PowerState(state)
        if state == self._power_state:
            return
        self._power_state = state
        log.info("links follow power state %s", state.value)
        for link in self._links:
            link.power_changed()

    # Internals.

    def _profile(self) -> PowerProfile:
        if self._power is not None:
            return self._power.profile_for(self._power_state)
        return DEFAULT_PROFILES[self._power_state]

    def _on_power(self, state: PowerState, profile: PowerProfile) -> None:
        self.set_power_state(state)

    def _confirmed(self, prediction_id: str) -> dict[str, Confirmation] | None:
        record = self._store.prediction(prediction_id)
        if record is None:
            return None
        found: dict[str, Confirmation] = {}
        for link in self._links:
            delivery = record.deliveries.get(link.name)
            if delivery is None or delivery.confirmation is None:
                return None
            found[link.name] = delivery.confirmation
        return found

    def _emit(self, event: ClientEvent) -> None:
        if isinstance(event, GamesChanged) and event.snapshot:
            self._games = self._store.games()
        elif isinstance(event, GamesChanged):
            # Copy on write: a mapping handed out earlier stays as it was.
            games = dict(self._games)
            for game_id in event.game_ids:
                game = self._store.game(game_id)
                if game is None:
                    games.pop(game_id, None)
                else:
                    games[game_id] = game
            self._games = games
        elif isinstance(event, PredictionChanged):
            for waiter in self._waiters.get(event.prediction_id, ()):
                waiter.set()
        for subscription in list(self._subscribers):
            subscription._put(event)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
