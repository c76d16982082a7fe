"""Process-wide settings for playing live, entered and left as one object.

While a performance runs:

- The GIL switch interval is 0.2 ms instead of Python's 5 ms. The audio callback needs the
  GIL every block; other threads (the preset loader, the control surface's bridge) then
  hand it over after at most that long.
- The cyclic garbage collector is off. It runs on whichever thread allocates, the audio
  thread included, and a full pass over a freshly loaded preset's objects takes
  milliseconds. Objects alive at the start are frozen out of its reach, a loaded preset's
  objects are frozen after each load (`settle`), and the young generations are collected
  off the audio thread now and then (`collect_young`).

Leaving restores the interval and the collector exactly as they were.
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_S = 0.0002


class RealtimePolicy:
    """`with RealtimePolicy():` plays under the settings above; nothing stays changed after it."""

    def __init__(self, switch_interval_s: float = SWITCH_INTERVAL_S):
        self.switch_interval_s = switch_interval_s
        self._saved: tuple[float, bool] | None = None

    @property
    def active(self) -> bool:
        """Whether the policy is in force (entered and not yet left)."""
        return self._saved is not None

    def enter(self) -> None:
        """Put the settings in force (again entering does nothing)."""
        if self._saved is None:
            self._saved = (sys.getswitchinterval(), gc.isenabled())
            sys.setswitchinterval(self.switch_interval_s)
            gc.collect()
            gc.freeze()
            gc.disable()

    def leave(self) -> None:
        """Restore the switch interval and the collector as they were (leaving twice does nothing)."""
        if self._saved is None:
            return
        interval, enabled = self._saved
        self._saved = None
        sys.setswitchinterval(interval)
        gc.unfreeze()
        if enabled:
            gc.enable()

    def __enter__(self) -> RealtimePolicy:
        self.enter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.leave()

    def settle(self) -> None:
        """After a preset load (off the audio thread): collect, then freeze what survives."""
        if self.active:
            gc.collect()
            gc.freeze()

    def collect_young(self) -> None:
        """Collect the two young generations (off the audio thread)."""
        if self.active:
            gc.collect(1)
