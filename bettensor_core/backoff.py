"""Reconnect pacing: full-jitter exponential backoff, with no attempt limit.

Plain state driven by values (times and a random source), so tests check it
without sockets or sleeps. A connection that is accepted and then closed at
once counts as a failure: only a connection that stayed up for
``stable_after`` seconds resets the count, so a server that accepts and drops
every connection cannot cause a reconnect storm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """A delay drawn uniformly from 0 to ``min(cap, base * 2**attempt)``."""
    # Clamp the exponent so a long outage cannot overflow the float.
    ceiling = min(cap, base * 2.0 ** min(attempt, 62))
    return rng.uniform(0.0, ceiling)


@dataclass(slots=True)
class Backoff:
    """How long to wait before the next connection attempt.

    Call `connected` when a connection is up, `failed` when an attempt (or a
    connection) ends; `failed` returns the delay to wait.
    """

    base: float = 0.25
    cap: float = 30.0
    stable_after: float = 2.0
    attempt: int = 0
    connected_at: float | None = None

    def connected(self, now: float) -> None:
        """A connection was established at ``now``."""
        self.connected_at = now

    def failed(self, now: float, rng: random.Random) -> float:
        """An attempt failed or a connection ended at ``now``; return the delay."""
        lived = None if self.connected_at is None else now - self.connected_at
        self.connected_at = None

        # A connection that lived long enough was a success: start over.
        if lived is not None and lived >= self.stable_after:
            self.attempt = 0
        delay = full_jitter(self.attempt, self.base, self.cap, rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Forget past failures (for example after the caller asked to retry now)."""
        self.attempt = 0
        self.connected_at = None
