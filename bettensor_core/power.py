"""The power policy: how busy the miner is allowed to be, as plain state.

Three states, decided from two facts the app reports (when the user last
touched the keyboard or mouse, and whether the terminal or browser tab is in
front):

- ``active``: the user is here; heartbeats are frequent and the screen is
  refreshed promptly.
- ``idle``: no input for ``idle_after`` seconds; heartbeats stretch and the
  screen is refreshed less often.
- ``background``: the terminal lost focus or the app is hidden; the quietest
  profile. Background wins over idle.

`PowerPolicy` owns no timer. The caller reports input and focus, and asks
`PowerPolicy.next_change_at` when idle would begin, so it can schedule one
timer instead of polling. `docs/power.md` explains every number.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

logger = logging.getLogger(__name__)


class PowerState(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    BACKGROUND = "background"


@dataclass(frozen=True, slots=True)
class PowerProfile:
    """What one power state allows (all in seconds)."""

    heartbeat_interval: float
    long_poll_hold: float
    ui_flush_interval: float


DEFAULT_IDLE_AFTER = 60.0

# Validators hold a long-poll for at most this long, whatever the miner asks.
MAX_LONG_POLL_HOLD = 25.0

DEFAULT_PROFILES: Mapping[PowerState, PowerProfile] = MappingProxyType(
    {
        PowerState.ACTIVE: PowerProfile(
            heartbeat_interval=15.0, long_poll_hold=25.0, ui_flush_interval=0.1
        ),
        PowerState.IDLE: PowerProfile(
            heartbeat_interval=45.0, long_poll_hold=25.0, ui_flush_interval=1.0
        ),
        PowerState.BACKGROUND: PowerProfile(
            heartbeat_interval=90.0, long_poll_hold=25.0, ui_flush_interval=2.0
        ),
    }
)

PowerListener = Callable[[PowerState, PowerProfile], None]


def check_profiles(profiles: Mapping[PowerState, PowerProfile]) -> None:
    """Raise ValueError unless every state has a profile with sane numbers."""
    for state in PowerState:
        profile = profiles.get(state)
        if profile is None:
            raise ValueError(f"no power profile for state {state.value!r}")
        for knob in ("heartbeat_interval", "long_poll_hold", "ui_flush_interval"):
            value = getattr(profile, knob)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"{state.value}.{knob} must be a finite number")
            if value <= 0:
                raise ValueError(f"{state.value}.{knob} must be above 0")
        if profile.long_poll_hold > MAX_LONG_POLL_HOLD:
            raise ValueError(
                f"{state.value}.long_poll_hold must be at most "
                f"{MAX_LONG_POLL_HOLD:g} s (validators hold no longer)"
            )


class PowerPolicy:
    """Decides the power state from input and focus; no timers, no I/O.

    ``clock`` must be monotonic; every ``now`` argument is on that clock.
    Input implies the user is in front of the app, so `on_input` also marks
    it focused and visible: a lost focus event never leaves it stuck in the
    background.
    """

    def __init__(
        self,
        profiles: Mapping[PowerState, PowerProfile] = DEFAULT_PROFILES,
        idle_after: float = DEFAULT_IDLE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ):
        check_profiles(profiles)
        if not (math.isfinite(idle_after) and idle_after > 0):
            raise ValueError("idle_after must be a positive number of seconds")
        self._profiles = dict(profiles)
        self._idle_after = float(idle_after)
        self._clock = clock
        self._last_input = clock()
        self._focused = True
        self._visible = True
        self._state = PowerState.ACTIVE
        self._listeners: list[PowerListener] = []

    @property
    def state(self) -> PowerState:
        return self._state

    @property
    def profile(self) -> PowerProfile:
        """The profile of the current state."""
        return self._profiles[self._state]

    @property
    def profiles(self) -> Mapping[PowerState, PowerProfile]:
        return MappingProxyType(self._profiles)

    @property
    def idle_after(self) -> float:
        return self._idle_after

    @property
    def last_input(self) -> float:
        return self._last_input

    def profile_for(self, state: PowerState) -> PowerProfile:
        return self._profiles[state]

    def subscribe(self, callback: PowerListener) -> Callable[[], None]:
        """Call ``callback(state, profile)`` on every change; returns an unsubscribe."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def on_input(self, now: float | None = None) -> bool:
        """The user pressed a key or moved the mouse; True if the state changed."""
        self._last_input = self._now(now)
        self._focused = True
        self._visible = True
        return self.update(self._last_input)

    def on_focus(self, focused: bool, now: float | None = None) -> bool:
        """The terminal gained or lost focus; True if the state changed.

        Coming back counts as input: the user just returned to the window.
        """
        now = self._now(now)
        self._focused = focused
        if focused and self._visible:
            self._last_input = now
        return self.update(now)

    def on_visible(self, visible: bool, now: float | None = None) -> bool:
        """The app was hidden (e.g. a browser tab) or shown; True if changed."""
        now = self._now(now)
        self._visible = visible
        if visible and self._focused:
            self._last_input = now
        return self.update(now)

    def configure(
        self,
        profiles: Mapping[PowerState, PowerProfile] | None = None,
        idle_after: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Replace the profiles or the idle delay (settings changed).

        Listeners hear about it when the state or its profile changed.
        """
        if profiles is not None:
            check_profiles(profiles)
        if idle_after is not None and not (
            math.isfinite(idle_after) and idle_after > 0
        ):
            raise ValueError("idle_after must be a positive number of seconds")
        before = self.profile
        if profiles is not None:
            self._profiles = dict(profiles)
        if idle_after is not None:
            self._idle_after = float(idle_after)
        if self.update(now):
            return True
        if self.profile != before:
            self._notify()
            return True
        return False

    def update(self, now: float | None = None) -> bool:
        """Re-evaluate the state at ``now``; True if it changed."""
        new = self._evaluate(self._now(now))
        if new is self._state:
            return False
        old, self._state = self._state, new
        logger.info("power state %s -> %s", old.value, new.value)
        self._notify()
        return True

    def next_change_at(self) -> float | None:
        """When the state will change by itself (idle begins), or None.

        Only ``active`` ends on its own; idle and background end on input or
        focus, which the caller reports.
        """
        if self._state is PowerState.ACTIVE:
            return self._last_input + self._idle_after
        return None

    def _evaluate(self, now: float) -> PowerState:
        if not (self._focused and self._visible):
            return PowerState.BACKGROUND
        if now - self._last_input >= self._idle_after:
            return PowerState.IDLE
        return PowerState.ACTIVE

    def _notify(self) -> None:
        profile = self.profile
        # A copy: a listener may unsubscribe itself while being called.
        for callback in list(self._listeners):
            try:
                callback(self._state, profile)
            except Exception:
                logger.exception("power listener %r failed", callback)

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def __repr__(self) -> str:
        return (
            f"PowerPolicy(state={self._state.value}, idle_after={self._idle_after:g})"
        )
