"""Per-miner message rate: a token bucket for each hotkey."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; each message takes one."""

    __slots__ = ("_clock", "_stamp", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._stamp = clock()

    def take(self) -> bool:
        """Take one token if there is one; False means the sender is too fast."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def full(self) -> bool:
        now = self._clock()
        return self._tokens + (now - self._stamp) * self.rate >= self.burst


class RateLimiter:
    """One bucket per miner hotkey, forgotten once full again (idle miners)."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, miner: str) -> bool:
        bucket = self._buckets.get(miner)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._forget_idle()
            bucket = self._buckets[miner] = TokenBucket(self.rate, self.burst)
        return bucket.take()

    def _forget_idle(self) -> None:
        for miner in [m for m, b in self._buckets.items() if b.full()]:
            del self._buckets[miner]
