"""The reconnect, fallback and upgrade policy, driven with values only."""

from __future__ import annotations

import random

import pytest

from bettensor_core.backoff import Backoff, full_jitter
from bettensor_core.link import endpoints
from bettensor_core.transport.policy import HTTP, WEBSOCKET, TransportPolicy


class FixedRandom(random.Random):
    """A random source whose uniform() always returns the upper bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_full_jitter_stays_between_zero_and_the_capped_exponential() -> None:
    """Every delay lies in [0, min(cap, base * 2**attempt)], even for huge attempts."""
    rng = random.Random(7)
    for attempt in range(0, 200, 7):
        ceiling = min(30.0, 0.25 * 2.0 ** min(attempt, 62))
        for _ in range(50):
            delay = full_jitter(attempt, 0.25, 30.0, rng)
            assert 0.0 <= delay <= ceiling


def test_backoff_grows_without_limit_on_attempts_but_caps_the_delay() -> None:
    """Failures double the ceiling up to the cap and never stop the retries."""
    backoff = Backoff(base=1.0, cap=8.0)
    rng = FixedRandom()
    delays = [backoff.failed(now=float(i), rng=rng) for i in range(10)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert backoff.attempt == 10


def test_a_connection_closed_at_once_counts_as_a_failure() -> None:
    """A connection that lives less than stable_after keeps the backoff growing."""
    backoff = Backoff(base=1.0, cap=100.0, stable_after=2.0)
    rng = FixedRandom()
    delays = []
    for i in range(5):
        backoff.connected(now=i * 10.0)
        delays.append(backoff.failed(now=i * 10.0 + 0.1, rng=rng))
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_a_stable_connection_resets_the_backoff() -> None:
    """After a connection that lived long enough, the next delay starts small."""
    backoff = Backoff(base=1.0, cap=100.0, stable_after=2.0)
    rng = FixedRandom()
    for i in range(4):
        backoff.failed(now=float(i), rng=rng)
    backoff.connected(now=100.0)
    assert backoff.failed(now=105.0, rng=rng) == 1.0


def test_websocket_is_tried_first_then_http() -> None:
    """A fresh policy tries WebSocket, then HTTP in the same attempt."""
    assert TransportPolicy().attempt_order() == (WEBSOCKET, HTTP)


def test_a_failed_websocket_falls_back_and_schedules_a_jittered_probe() -> None:
    """A refused upgrade leaves only HTTP and schedules a probe within the interval."""
    policy = TransportPolicy(probe_interval=30.0)
    rng = random.Random(3)
    policy.websocket_failed("websocket upgrade refused with HTTP 403", 100.0, rng)
    assert policy.attempt_order() == (HTTP,)
    assert policy.fallback_reason == "websocket upgrade refused with HTTP 403"
    delay = policy.probe_delay(100.0)
    assert delay is not None and 15.0 <= delay <= 30.0
    assert policy.probe_delay(200.0) == 0.0


def test_probe_jitter_spreads_many_miners() -> None:
    """Different miners (random sources) probe at different times."""
    delays = set()
    for seed in range(20):
        policy = TransportPolicy(probe_interval=30.0)
        policy.websocket_failed("blocked", 0.0, random.Random(seed))
        delays.add(round(policy.probe_delay(0.0) or 0.0, 3))
    assert len(delays) > 15


def test_failed_probes_wait_longer_up_to_the_cap() -> None:
    """Each failed probe doubles the wait, capped at probe_cap."""
    policy = TransportPolicy(probe_interval=10.0, probe_cap=40.0)
    rng = FixedRandom()
    policy.websocket_failed("blocked", 0.0, rng)
    waits = [policy.probe_delay(0.0)]
    for _ in range(4):
        policy.probe_failed("still blocked", 0.0, rng)
        waits.append(policy.probe_delay(0.0))
    assert waits == [10.0, 20.0, 40.0, 40.0, 40.0]
    assert policy.attempt_order() == (HTTP,)


def test_a_successful_probe_returns_to_websocket() -> None:
    """An upgrade clears the fallback and its reason."""
    policy = TransportPolicy()
    policy.websocket_failed("blocked", 0.0, random.Random(1))
    policy.websocket_up()
    assert policy.attempt_order() == (WEBSOCKET, HTTP)
    assert policy.fallback_reason is None
    assert policy.probe_delay(0.0) is None


def test_when_everything_fails_websocket_is_tried_first_again() -> None:
    """A validator that is away entirely does not leave the link stuck on HTTP."""
    policy = TransportPolicy()
    policy.websocket_failed("connection refused", 0.0, random.Random(1))
    policy.all_failed()
    assert policy.attempt_order() == (WEBSOCKET, HTTP)


@pytest.mark.parametrize(
    ("url", "http_url", "ws_url"),
    [
        ("http://127.0.0.1:8091", "http://127.0.0.1:8091", "ws://127.0.0.1:8091/ws"),
        ("http://127.0.0.1:8091/", "http://127.0.0.1:8091", "ws://127.0.0.1:8091/ws"),
        ("ws://127.0.0.1:8091", "http://127.0.0.1:8091", "ws://127.0.0.1:8091/ws"),
        ("ws://127.0.0.1:8091/ws", "http://127.0.0.1:8091", "ws://127.0.0.1:8091/ws"),
        ("wss://v.example", "https://v.example", "wss://v.example/ws"),
        ("https://v.example/api", "https://v.example/api", "wss://v.example/api/ws"),
    ],
)
def test_endpoints_derive_both_urls(url: str, http_url: str, ws_url: str) -> None:
    """Any configured scheme gives the right HTTP base and WebSocket URL."""
    assert endpoints(url) == (http_url, ws_url)
