"""Public offline DSP API and its streaming counterparts (see docs/DSP.md).

The offline functions render whole arrays with NumPy and define what the streaming
kernels must reproduce, block by block, within 1e-6.
"""

from engine.kernels.convolution import Convolver
from engine.kernels.harmonic import HarmonicOscillator
from engine.kernels.noise import FilteredNoise
from engine.kernels.synth import SynthBank
from engine.offline.harmonic import harmonic_amplitudes, harmonic_synth
from engine.offline.noise import filtered_noise, noise_filter_matrix, white_noise
from engine.offline.reverb import reverb

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
