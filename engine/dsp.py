"""Public offline DSP API and its streaming counterparts (see docs/DSP.md).

The offline functions render whole arrays with NumPy and define what the streaming
kernels must reproduce, block by block, within 1e-6.
"""

from timbrel.engine.offline.harmonic import harmonic_amplitudes, harmonic_synth
from timbrel.engine.offline.noise import filtered_noise, noise_filter_matrix, white_noise
from timbrel.engine.offline.reverb import reverb
from timbrel.engine.realtime.kernels.convolution import Convolver
from timbrel.engine.realtime.kernels.harmonic import HarmonicOscillator
from timbrel.engine.realtime.kernels.noise import FilteredNoise
from timbrel.engine.realtime.kernels.synth import SynthBank

__all__ = [
    "Convolver",
    "FilteredNoise",
    "HarmonicOscillator",
    "SynthBank",
    "filtered_noise",
    "harmonic_amplitudes",
    "harmonic_synth",
    "noise_filter_matrix",
    "reverb",
    "white_noise",
]
