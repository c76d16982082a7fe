"""Following MIDI program changes: program N selects the Nth preset of the library (factory
first), the way a keyboard's patch buttons would.

The audio thread only counts program changes (`MidiState.programs`: per channel, the last
number and a count). This thread looks at that count now and then and asks for the switch; it also does
the runtime policy's young-generation collections and lets the engine free what it retired,
so that all of that happens off the audio thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from timbrel.engine.io.thread_names import name_native_thread
from timbrel.engine.realtime.host import Engine
from timbrel.runtime_policy import RealtimePolicy

POLL_S = 0.05
"""How often the count is looked at: a switch starts at most this late after its program change."""
COLLECT_EVERY = 10
"""Young-generation collections happen every this many polls (twice a second)."""


class ProgramWatcher:
    """Calls `switch(number, channel)` (channel 0 to 15) with the latest program of each channel
    whose program changes `engine` counted since the last look; `stop` ends it."""

    def __init__(self, engine: Engine, switch: Callable[[int, int], None], policy: RealtimePolicy):
        self.engine = engine
        self.switch = switch
        self.policy = policy
        self._stopping = threading.Event()
        self._seen = engine.keyboard.programs[1].copy()
        self._thread = threading.Thread(target=self._run, name="timbrel-programs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        name_native_thread()
        ticks = 0
        while not self._stopping.wait(POLL_S):
            ticks += 1
            if ticks % COLLECT_EVERY == 0:
                self.policy.collect_young()
            numbers, counts = self.engine.keyboard.programs
            for channel in range(16):
                if counts[channel] != self._seen[channel]:
                    self._seen[channel] = counts[channel]
                    self.switch(int(numbers[channel]), channel)
            self.engine.collect()
