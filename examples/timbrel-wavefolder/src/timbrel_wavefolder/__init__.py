"""timbrel-wavefolder: an example timbrel plugin package with a wave folder and a bit crusher.

Both are `timbrel.engine.plugin_api.Effect`s that timbrel finds through the `timbrel.plugins`
entry points in this package's pyproject.toml. `prepare` allocates every array and
compiles the kernels. `process` advances the parameters, writes a few floats, and hands
the bus to a numba kernel (`timbrel_wavefolder.kernels`) that transforms it in place.

    from timbrel_wavefolder import WaveFolder
    folder = WaveFolder()
    folder.params.set("drive_db", 18)
    stereo = folder(mono_or_stereo_audio, 48000)   # float32 [2, samples]
"""

from __future__ import annotations

import numpy as np

from timbrel.engine.plugin_api import Effect, Parameter
from timbrel_wavefolder.kernels import BIAS, DRIVE, FOLD_CONTROLS, GAIN, MIX, SHAPES, crush, fold

__all__ = ["BitCrusher", "WaveFolder"]


def _db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def _warm(kernel, *state) -> None:
    """Compile `kernel` for the two bus layouts a host passes (whole blocks and shorter slices of them).

    Run from `prepare`, so the audio thread never waits on the compiler. `state` is scratch.
    """
    block = np.zeros((2, 4), dtype=np.float32)
    kernel(block, *state)
    kernel(block[:, :2], *state)


class WaveFolder(Effect):
    """A wave folder. The signal is driven into a curve that folds back past full scale
    instead of clipping, which adds bright, vocal harmonics that grow with the drive.

    wet = f(drive·x + bias) - f(bias), with f(u) = sin(π/2·u) ("sine") or the triangle wave of
    the same period ("triangle"); out = output·((1 - mix)·x + mix·wet). Stateless, no latency.
    """

    name = "wavefolder"
    parameters = (
        Parameter("drive_db", "Drive", "dB", 0.0, 36.0, 12.0),
        Parameter("symmetry", "Symmetry (bias before folding)", "", -1.0, 1.0, 0.0),
        Parameter("shape", "Fold shape", "", 0.0, len(SHAPES) - 1.0, 0.0, smoothing_ms=0, choices=SHAPES),
        Parameter("mix", "Dry/wet", "", 0.0, 1.0, 1.0),
        Parameter("output_db", "Output", "dB", -36.0, 12.0, 0.0),
    )
    _DRIVE, _SYMMETRY, _SHAPE, _MIX, _OUTPUT = range(5)

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self._ramp = np.zeros((2, FOLD_CONTROLS))
        _warm(fold, 0, np.zeros((2, FOLD_CONTROLS)))
        _warm(fold, 1, np.zeros((2, FOLD_CONTROLS)))
        self.reset()

    def reset(self) -> None:
        """Start the next block at the current values, without a ramp (the folder has no tail)."""
        self._set_ramp_ends()
        self._ramp[0, :] = self._ramp[1, :]

    def _set_ramp_ends(self) -> None:
        values, ramp = self.params.values, self._ramp
        ramp[1, DRIVE] = _db_to_gain(values[self._DRIVE])
        ramp[1, BIAS] = values[self._SYMMETRY]
        ramp[1, MIX] = values[self._MIX]
        ramp[1, GAIN] = _db_to_gain(values[self._OUTPUT])

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        self.params.advance(out.shape[1] / self.sample_rate)
        self._set_ramp_ends()
        fold(out, int(self.params.values[self._SHAPE]), self._ramp)


class BitCrusher(Effect):
    """A bit crusher. Each new sample is taken every `downsample` samples and held in
    between (aliasing on purpose), then quantised to `bits`-bit PCM levels.

    With N bits the wet signal takes the 2^N values k/2^(N-1), k = -2^(N-1) … 2^(N-1) - 1.
    The hold carries across blocks, so any block partition renders the same audio. No latency.
    """

    name = "bitcrusher"
    parameters = (
        Parameter("bits", "Bit depth", "bits", 1.0, 16.0, 8.0, smoothing_ms=0),
        Parameter("downsample", "Downsample (hold)", "x", 1.0, 64.0, 1.0, scale="log", smoothing_ms=0),
        Parameter("mix", "Dry/wet", "", 0.0, 1.0, 1.0),
    )
    _BITS, _DOWNSAMPLE, _MIX = range(3)

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        self._ramp = np.zeros((2, 1))
        self._held = np.zeros(2)
        self._phase = np.zeros(1)
        _warm(crush, 8, 1.0, np.zeros((2, 1)), np.zeros(2), np.zeros(1))
        self.reset()

    def reset(self) -> None:
        """Forget the held sample; the next block starts by taking a new one, at the current mix."""
        self._held[:] = 0.0
        self._phase[0] = 0.0
        self._ramp[:, 0] = self.params.values[self._MIX]

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        self.params.advance(out.shape[1] / self.sample_rate)
        values = self.params.values
        self._ramp[1, 0] = values[self._MIX]
        crush(out, int(round(values[self._BITS])), float(values[self._DOWNSAMPLE]), self._ramp, self._held, self._phase)
