"""Stereo chorus: a delay swept by an LFO, the two channels' LFOs apart in phase.

Written here, not wrapped from pedalboard (0.9.26): its `process` returns a newly allocated
array on every call and cannot write into the host's bus; its Chorus (JUCE's) sweeps both
channels with one LFO (no stereo spread), its depth is a unitless 0…1 rather than
milliseconds, and it interpolates linearly.
"""

from __future__ import annotations

from timbrel.engine.plugin_api import Parameter
from timbrel.engine.realtime.kernels import delay_line as dl
from timbrel.plugin.effects.delay import DelayLineEffect

MAX_DELAY_MS, MAX_DEPTH_MS = 30.0, 10.0

PARAMETERS = (
    Parameter("rate_hz", "Rate", "Hz", 0.05, 5.0, 0.8, scale="log"),
    Parameter("depth_ms", "Depth", "ms", 0.0, MAX_DEPTH_MS, 3.0),
    Parameter("delay_ms", "Delay", "ms", 1.0, MAX_DELAY_MS, 7.0),
    Parameter("mix", "Mix", "", 0.0, 1.0, 0.5),
    Parameter("feedback", "Feedback", "", 0.0, 0.9, 0.0),
    Parameter("spread_deg", "Stereo spread", "deg", 0.0, 180.0, 90.0),
)


class Chorus(DelayLineEffect):
    """Each channel is delayed by `delay_ms … delay_ms + depth_ms`, swept at `rate_hz`,
    the right channel's sweep `spread_deg` ahead of the left's; cubic interpolation."""

    name = "chorus"
    parameters = PARAMETERS
    longest_ms = MAX_DELAY_MS + MAX_DEPTH_MS
    kernel = staticmethod(dl.chorus)

    def start_state(self) -> tuple[float, float, float]:
        values = self.params.values
        return 0.0, values[dl.CHORUS_DELAY_MS], values[dl.CHORUS_DEPTH_MS]
