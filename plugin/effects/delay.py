"""Stereo feedback delay with a tone filter and ping-pong.

Written here, not wrapped from pedalboard (0.9.26): its `process` returns a newly allocated
array on every call and cannot write into the host's bus; its Delay (JUCE's DelayLine,
no interpolation) truncates the time to whole samples (10 ms at 48 kHz gives 479), jumps
when the time changes (a click), and has no tone filter and no ping-pong.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from timbrel.engine.plugin_api import Effect, Parameter
from timbrel.engine.realtime.kernels import delay_line as dl

SWITCH = ("off", "on")
MAX_TIME_MS = 2000.0

PARAMETERS = (
    Parameter("time_ms", "Time", "ms", 1.0, MAX_TIME_MS, 350.0, scale="log", smoothing_ms=30.0),
    Parameter("feedback", "Feedback", "", 0.0, 0.95, 0.35),
    Parameter("mix", "Mix", "", 0.0, 1.0, 0.3),
    Parameter("tone_hz", "Tone", "Hz", 200.0, 20000.0, 20000.0, scale="log"),
    Parameter("ping_pong", "Ping-pong", "", 0.0, 1.0, 0.0, choices=SWITCH),
)


class DelayLineEffect(Effect):
    """An effect around a stereo delay line of `longest_ms`, run block by block by a `delay_line` kernel.

    Subclasses name the kernel and the state it starts from (`start_state`).
    """

    longest_ms: float
    kernel: Callable[..., None]

    @property
    def tail_s(self) -> float:
        """Repeats until the feedback has taken them below -120 dB, each `longest_ms` apart at most."""
        feedback = float(self.params.get("feedback"))
        repeats = 1 if feedback <= 0.0 else 1 + math.ceil(6.0 / -math.log10(feedback))
        return repeats * self.longest_ms / 1000.0

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self._rate = float(self.sample_rate)
        self._line = np.zeros((2, dl.line_size(self.longest_ms * self._rate / 1000)), dtype=np.float32)
        self._state = np.zeros(3)
        self._counters = np.zeros(1, dtype=np.int64)
        self._previous = self.params.values.copy()
        self.warm_up()

    def start_state(self) -> tuple[float, float, float]:
        """The kernel's three state values for a silent line at the current parameters."""
        raise NotImplementedError

    def reset(self) -> None:
        self._line[:] = 0.0
        self._state[0], self._state[1], self._state[2] = self.start_state()
        self._counters[:] = 0
        self._previous[:] = self.params.values

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        self.params.advance(out.shape[1] / self.sample_rate)
        self.kernel(out, self._line, self._state, self._counters, self._previous, self.params.values, self._rate)


class Delay(DelayLineEffect):
    """Echoes `time_ms` apart, each `feedback` times the last, low-passed at `tone_hz`.

    The time glides (`smoothing_ms` 30, then `delay_line.GLIDE_MS` per sample) through a
    fractional, cubic-interpolated delay, so a change bends pitch briefly instead of
    clicking; the ping-pong switch crossfades too.
    """

    name = "delay"
    parameters = PARAMETERS
    longest_ms = MAX_TIME_MS
    kernel = staticmethod(dl.echo)

    def start_state(self) -> tuple[float, float, float]:
        return 0.0, 0.0, self.params.values[dl.ECHO_TIME_MS] * self._rate / 1000
