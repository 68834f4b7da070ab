"""The demo season: seeded games whose odds drift, which kick off and settle.

Time in the season runs ``speed`` times faster than the wall clock, but every
kickoff is a real Unix time, so the validator's rules apply unchanged. With
``speed`` 0 nothing happens on its own; only the test controls change games.
The simulator sleeps until its next due action (no per-second ticks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bettensor_core.protocol import OUTCOME_TEAM_A, OUTCOME_TEAM_B, OUTCOME_TIE, Game
from validator_stub.validator import Validator

log = logging.getLogger(__name__)

SEASON_FILE = Path(__file__).resolve().parents[1] / "assets" / "demo_season.json"

# Bookmaker margin over the fair odds, and season-time constants (seconds).
MARGIN = 1.05
SCHEDULE_SPAN = 24 * 3600.0
FIRST_KICKOFF = 15 * 60.0
DRIFT_EVERY = 10 * 60.0
KEEP_FINAL = 3600.0


@dataclass(frozen=True, slots=True)
class League:
    sport: str
    league: str
    can_tie: bool
    duration: float
    teams: tuple[str, ...]

    @property
    def code(self) -> str:
        return self.league.lower().replace(" ", "")


def load_leagues(path: Path = SEASON_FILE) -> list[League]:
    """The leagues and teams of the demo season file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"demo season file missing: {path}") from None
    return [
        League(
            sport=item["sport"],
            league=item["league"],
            can_tie=bool(item["can_tie"]),
            duration=float(item["duration_minutes"]) * 60.0,
            teams=tuple(item["teams"]),
        )
        for item in data["leagues"]
    ]


def fair_odds(probabilities: list[float]) -> list[float]:
    """Decimal odds with the bookmaker's margin, rounded to cents, above 1.01."""
    total = sum(probabilities)
    return [max(1.01, round(total / (p * MARGIN), 2)) for p in probabilities]


class Simulator:
    """Fills the validator with games and plays them out over time."""

    def __init__(
        self,
        validator: Validator,
        *,
        seed: int,
        games: int,
        speed: float,
        leagues: list[League] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.validator = validator
        self.target = max(1, games)
        self.speed = speed
        self.leagues = leagues if leagues is not None else load_leagues()
        self.clock = clock
        self._make = random.Random(seed)
        self._play = random.Random(seed + 1)
        self._durations = {lg.league: lg.duration for lg in self.leagues}
        self._wake = asyncio.Event()
        self._next_drift: float | None = None

    def _real(self, season_seconds: float) -> float:
        """Wall-clock seconds for a span of season time (speed 0 counts as 1)."""
        return season_seconds / (self.speed if self.speed > 0 else 1.0)

    # Making games.

    def new_game(self, kickoff: float) -> Game:
        number = int(self.validator.store.get_meta("next_game") or 1)
        self.validator.store.set_meta("next_game", number + 1)
        league = self._make.choice(self.leagues)
        team_a, team_b = self._make.sample(league.teams, 2)
        tie = self._make.uniform(0.22, 0.30) if league.can_tie else 0.0
        share = self._make.uniform(0.25, 0.75)
        chances = [(1 - tie) * share, (1 - tie) * (1 - share)]
        odds = fair_odds([*chances, tie] if league.can_tie else chances)
        return Game(
            game_id=f"{league.code}-{number:05d}",
            sport=league.sport,
            league=league.league,
            team_a=team_a,
            team_b=team_b,
            kickoff=round(kickoff, 3),
            odds_a=odds[0],
            odds_b=odds[1],
            odds_tie=odds[2] if league.can_tie else None,
            can_tie=league.can_tie,
        )

    def seed_games(self) -> None:
        """Create the first schedule when the validator has no games yet."""
        if self.validator.games:
            return
        now = self.clock()
        spacing = SCHEDULE_SPAN / self.target
        for i in range(self.target):
            offset = FIRST_KICKOFF + i * spacing + self._make.uniform(0, spacing / 2)
            self.validator.add_game(self.new_game(now + self._real(offset)))

    def _top_up(self, now: float) -> None:
        open_games = [g for g in self.validator.games.values() if g.status != "final"]
        if len(open_games) >= self.target:
            return
        latest = max((g.kickoff for g in open_games), default=now)
        spacing = self._real(SCHEDULE_SPAN / self.target)
        for _ in range(self.target - len(open_games)):
            latest = max(latest + spacing, now + self._real(FIRST_KICKOFF))
            self.validator.add_game(self.new_game(latest))

    # Playing them out.

    def result_time(self, game: Game) -> float:
        return game.kickoff + self._real(self._durations.get(game.league, 7200.0))

    def _draw_outcome(self, game: Game) -> int:
        outcomes = [OUTCOME_TEAM_A, OUTCOME_TEAM_B]
        weights = [1 / game.odds_a, 1 / game.odds_b]
        if game.can_tie and game.odds_tie:
            outcomes.append(OUTCOME_TIE)
            weights.append(1 / game.odds_tie)
        return self._play.choices(outcomes, weights)[0]

    def _drift(self, now: float) -> None:
        scheduled = [
            g
            for g in self.validator.games.values()
            if g.status == "scheduled" and g.kickoff > now + 1
        ]
        if not scheduled:
            return
        game = self._play.choice(sorted(scheduled, key=lambda g: g.game_id))
        chances = [1 / game.odds_a, 1 / game.odds_b]
        if game.can_tie and game.odds_tie:
            chances.append(1 / game.odds_tie)
        chances = [c * self._play.uniform(0.92, 1.08) for c in chances]
        odds = fair_odds(chances)
        tie = odds[2] if len(odds) > 2 else None
        if (odds[0], odds[1], tie) != (game.odds_a, game.odds_b, game.odds_tie):
            self.validator.change_odds(game.game_id, odds[0], odds[1], tie)

    def step(self, now: float) -> float:
        """Do everything due by ``now``; return when the next thing is due."""
        v = self.validator
        for game in sorted(v.games.values(), key=lambda g: g.kickoff):
            if game.status == "scheduled" and game.kickoff <= now:
                v.kickoff(game.game_id)
        for game in list(v.games.values()):
            if game.status == "live" and self.result_time(game) <= now:
                v.settle(game.game_id, self._draw_outcome(game))
            elif game.status == "final" and (
                self.result_time(game) + self._real(KEEP_FINAL) <= now
            ):
                v.forget_game(game.game_id)

        if self._next_drift is None:
            self._next_drift = now + self._drift_gap()
        elif self._next_drift <= now:
            self._drift(now)
            self._next_drift = now + self._drift_gap()
        self._top_up(now)

        due = [self._next_drift]
        for game in v.games.values():
            if game.status == "scheduled":
                due.append(game.kickoff)
            elif game.status == "live":
                due.append(self.result_time(game))
            else:
                due.append(self.result_time(game) + self._real(KEEP_FINAL))
        return min(due)

    def _drift_gap(self) -> float:
        count = max(
            1, sum(g.status == "scheduled" for g in self.validator.games.values())
        )
        return self._real(self._play.expovariate(count / DRIFT_EVERY))

    def wake(self) -> None:
        """Recompute the schedule now (a control changed a game)."""
        self._wake.set()

    async def run(self) -> None:
        """Play the season until cancelled; does nothing at speed 0."""
        if self.speed <= 0:
            return
        log.info("simulator running at speed %g", self.speed)
        while True:
            now = self.clock()
            try:
                due = self.step(now)
            except Exception:
                log.exception("simulator step failed")
                due = now + 5.0
            self._wake.clear()
            delay = min(max(0.0, due - self.clock()), 3600.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
