"""The power policy, driven with plain values on a hand-set clock."""

from __future__ import annotations

import dataclasses

import pytest

from bettensor_core.power import (
    DEFAULT_PROFILES,
    PowerPolicy,
    PowerProfile,
    PowerState,
    check_profiles,
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_starts_active_with_the_active_profile(clock: Clock) -> None:
    """A new policy is active and exposes the active profile's numbers."""
    policy = PowerPolicy(clock=clock)
    assert policy.state is PowerState.ACTIVE
    assert policy.profile == DEFAULT_PROFILES[PowerState.ACTIVE]
    assert policy.profile.heartbeat_interval == 15.0


def test_default_profiles_grow_quieter() -> None:
    """Each quieter state beats and refreshes less often; holds never exceed 25 s."""
    active, idle, background = (DEFAULT_PROFILES[s] for s in PowerState)
    assert (
        active.heartbeat_interval < idle.heartbeat_interval
        and idle.heartbeat_interval < background.heartbeat_interval
    )
    assert (
        active.ui_flush_interval < idle.ui_flush_interval
        and idle.ui_flush_interval < background.ui_flush_interval
    )
    assert all(p.long_poll_hold <= 25 for p in DEFAULT_PROFILES.values())


def test_goes_idle_exactly_at_next_change_at(clock: Clock) -> None:
    """Idle begins at next_change_at and not a moment before."""
    policy = PowerPolicy(idle_after=60, clock=clock)
    at = policy.next_change_at()
    assert at == clock.now + 60

    assert policy.update(at - 0.001) is False
    assert policy.state is PowerState.ACTIVE
    assert policy.update(at) is True
    assert policy.state is PowerState.IDLE
    assert policy.profile == DEFAULT_PROFILES[PowerState.IDLE]


def test_idle_has_no_scheduled_change(clock: Clock) -> None:
    """Once idle, nothing changes by itself, so no timer is needed."""
    policy = PowerPolicy(idle_after=5, clock=clock)
    clock.now += 5
    policy.update()
    assert policy.next_change_at() is None
    assert policy.update(clock.now + 10_000) is False


def test_input_wakes_and_pushes_idle_back(clock: Clock) -> None:
    """Input makes an idle policy active and moves the idle deadline."""
    policy = PowerPolicy(idle_after=10, clock=clock)
    clock.now += 30
    policy.update()
    assert policy.state is PowerState.IDLE

    assert policy.on_input() is True
    assert policy.state is PowerState.ACTIVE
    assert policy.next_change_at() == clock.now + 10
    clock.now += 3
    assert policy.on_input() is False
    assert policy.next_change_at() == clock.now + 10


def test_unfocused_is_background_and_wins_over_idle(clock: Clock) -> None:
    """Losing focus means background, even after the idle delay has passed."""
    policy = PowerPolicy(idle_after=10, clock=clock)
    assert policy.on_focus(False) is True
    assert policy.state is PowerState.BACKGROUND
    assert policy.next_change_at() is None
    clock.now += 100
    assert policy.update() is False
    assert policy.state is PowerState.BACKGROUND


def test_returning_focus_counts_as_presence(clock: Clock) -> None:
    """Focus coming back after a long absence makes the policy active, not idle."""
    policy = PowerPolicy(idle_after=10, clock=clock)
    policy.on_focus(False)
    clock.now += 500
    assert policy.on_focus(True) is True
    assert policy.state is PowerState.ACTIVE
    assert policy.next_change_at() == clock.now + 10


def test_hidden_app_is_background_until_shown(clock: Clock) -> None:
    """A hidden app (browser tab) is background; showing it makes it active."""
    policy = PowerPolicy(clock=clock)
    policy.on_visible(False)
    assert policy.state is PowerState.BACKGROUND
    policy.on_focus(True)
    assert policy.state is PowerState.BACKGROUND
    policy.on_visible(True)
    assert policy.state is PowerState.ACTIVE


def test_input_while_background_brings_it_back(clock: Clock) -> None:
    """Input proves the user is there, so a lost focus-in event cannot strand it."""
    policy = PowerPolicy(clock=clock)
    policy.on_focus(False)
    assert policy.on_input() is True
    assert policy.state is PowerState.ACTIVE


def test_listeners_hear_each_change_once(clock: Clock) -> None:
    """Subscribers get (state, profile) once per change and stop after unsubscribe."""
    policy = PowerPolicy(idle_after=1, clock=clock)
    heard: list[tuple[PowerState, PowerProfile]] = []
    unsubscribe = policy.subscribe(lambda state, prof: heard.append((state, prof)))

    clock.now += 1
    policy.update()
    policy.update()
    policy.on_focus(False)
    policy.on_input()
    assert [state for state, _ in heard] == [
        PowerState.IDLE,
        PowerState.BACKGROUND,
        PowerState.ACTIVE,
    ]
    assert heard[0][1] == DEFAULT_PROFILES[PowerState.IDLE]

    unsubscribe()
    policy.on_focus(False)
    assert len(heard) == 3


def test_a_failing_listener_does_not_stop_the_others(clock: Clock) -> None:
    """One broken subscriber is logged and the next one is still called."""
    policy = PowerPolicy(clock=clock)
    heard: list[PowerState] = []

    def broken(state: PowerState, profile: PowerProfile) -> None:
        raise RuntimeError("boom")

    policy.subscribe(broken)
    policy.subscribe(lambda state, profile: heard.append(state))
    policy.on_focus(False)
    assert heard == [PowerState.BACKGROUND]


def test_custom_profiles_and_configure(clock: Clock) -> None:
    """Overridden profiles are used, and configure() announces a new profile."""
    quiet = dataclasses.replace(
        DEFAULT_PROFILES[PowerState.ACTIVE], heartbeat_interval=20.0
    )
    profiles = {**DEFAULT_PROFILES, PowerState.ACTIVE: quiet}
    policy = PowerPolicy(profiles=profiles, idle_after=30, clock=clock)
    assert policy.profile.heartbeat_interval == 20.0

    heard: list[PowerProfile] = []
    policy.subscribe(lambda state, prof: heard.append(prof))
    assert policy.configure(profiles=DEFAULT_PROFILES) is True
    assert heard == [DEFAULT_PROFILES[PowerState.ACTIVE]]
    assert policy.configure(idle_after=5) is False
    assert policy.next_change_at() == clock.now + 5


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("heartbeat_interval", 0.0),
        ("long_poll_hold", 26.0),
        ("ui_flush_interval", float("nan")),
        ("heartbeat_interval", -1.0),
    ],
)
def test_bad_profiles_are_refused(knob: str, value: float) -> None:
    """Zero, negative, NaN and over-long values never make it into a policy."""
    bad = dataclasses.replace(DEFAULT_PROFILES[PowerState.IDLE], **{knob: value})
    with pytest.raises(ValueError, match=knob):
        check_profiles({**DEFAULT_PROFILES, PowerState.IDLE: bad})


def test_missing_state_and_bad_idle_after_are_refused() -> None:
    """Every state needs a profile, and idle_after must be a positive number."""
    partial = {PowerState.ACTIVE: DEFAULT_PROFILES[PowerState.ACTIVE]}
    with pytest.raises(ValueError, match="idle"):
        PowerPolicy(profiles=partial)
    with pytest.raises(ValueError, match="idle_after"):
        PowerPolicy(idle_after=0)
