"""Which transport a link tries next: WebSocket first, HTTP when it must.

A small state machine fed with values (what failed, when), so that the
fallback and upgrade rules are tested without sockets:

- A link prefers WebSocket. When a WebSocket attempt fails while the
  validator is otherwise reachable, the link falls back to HTTP and stops
  trying WebSocket on each reconnect (a blocked upgrade would cost its
  timeout every time).
- While on HTTP, a WebSocket probe is due after ``probe_interval`` seconds
  (with jitter, so many miners do not probe in step); a failed probe waits
  again, a little longer each time up to ``probe_cap``.
- When both transports fail, the validator itself is away: the next attempt
  starts with WebSocket again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

WEBSOCKET = "websocket"
HTTP = "http"


@dataclass(slots=True)
class TransportPolicy:
    """Fallback and upgrade decisions for one validator link."""

    probe_interval: float = 30.0
    probe_cap: float = 300.0
    prefer_websocket: bool = True
    fallback_reason: str | None = None
    next_probe_at: float | None = None
    failed_probes: int = 0

    def attempt_order(self) -> tuple[str, ...]:
        """The transports to try, in order, for the next connection."""
        if self.prefer_websocket:
            return (WEBSOCKET, HTTP)
        return (HTTP,)

    def websocket_failed(self, reason: str, now: float, rng: random.Random) -> None:
        """A WebSocket connect failed; HTTP is next, and a probe is scheduled."""
        self.prefer_websocket = False
        self.fallback_reason = reason
        self.failed_probes = 0
        self.next_probe_at = now + self._probe_delay(rng)

    def websocket_up(self) -> None:
        """A WebSocket session is established (first try or a probe)."""
        self.prefer_websocket = True
        self.fallback_reason = None
        self.next_probe_at = None
        self.failed_probes = 0

    def probe_failed(self, reason: str, now: float, rng: random.Random) -> None:
        """A background WebSocket probe failed; wait longer before the next."""
        self.fallback_reason = reason
        self.failed_probes += 1
        self.next_probe_at = now + self._probe_delay(rng)

    def all_failed(self) -> None:
        """Neither transport connected: the validator is away, not the upgrade."""
        self.prefer_websocket = True
        self.next_probe_at = None
        self.failed_probes = 0

    def probe_delay(self, now: float) -> float | None:
        """Seconds until the next WebSocket probe, or None when none is due."""
        if self.prefer_websocket or self.next_probe_at is None:
            return None
        return max(0.0, self.next_probe_at - now)

    def _probe_delay(self, rng: random.Random) -> float:
        # Double per failed probe, capped; jitter between 50% and 100%.
        ceiling = min(self.probe_cap, self.probe_interval * 2.0**self.failed_probes)
        return rng.uniform(ceiling / 2.0, ceiling)
