"""Frame-rate features of audio, causal and block-size independent.

`PitchTracker` / `estimate_pitch`: f0 (Hz) with voicing confidence. `LoudnessMeter` /
`loudness_db`: A-weighted loudness (dB). Each pair shares one kernel, so training features
computed offline equal what the live path computes (docs/DSP.md, "Frames and hops").
"""

from timbrel.engine.realtime.features.loudness import LoudnessMeter, a_weighting_sos, loudness_db
from timbrel.engine.realtime.features.pitch import PitchTracker, estimate_pitch

__all__ = ["LoudnessMeter", "PitchTracker", "a_weighting_sos", "estimate_pitch", "loudness_db"]
