"""A model's learned reverb as a standalone effect.

Written here, not wrapped: the learned impulse response is part of the model file, and
timbrel's own zero-latency partitioned convolver (`timbrel.engine.realtime.kernels.convolution`) already
plays it inside every instrument. pedalboard's `Convolution` would add a second
convolution engine and allocate a new array on every call.
"""

from __future__ import annotations

import os

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Effect, Parameter
from timbrel.engine.realtime.kernels.convolution import Convolver
from timbrel.engine.realtime.kernels.mixing import rows_equal
from timbrel.plugin.model import TimbreModel, load_model


class LearnedReverb(Effect):
    """Convolve each channel with the reverb a timbre model learned during training.

    `model`: a `TimbreModel` or `.onnx` path whose room is played (a preset's reverb plays its
    own model's; `timbrel.default_model()` is the factory violin). `skip_body_ms`
    drops the start of the response, where models learn the instrument's body resonance
    rather than the room, leaving only the room's tail.
    """

    name = "reverb"

    @property
    def tail_s(self) -> float:
        """The impulse response's length, plus the convolver's own look-back of a block."""
        return self._ir.size / self._ir_rate + 0.05

    parameters = (
        Parameter("mix", "Mix", "", 0.0, 1.0, 0.3, smoothing_ms=30.0),
        Parameter("wet_db", "Wet level", "dB", -24.0, 12.0, 0.0, smoothing_ms=30.0),
    )

    def __init__(self, model: TimbreModel | str | os.PathLike | None = None, skip_body_ms: float = 0.0):
        super().__init__()
        if model is None:
            raise TimbrelError("the learned reverb plays a model's room: give it one, "
                               "as in LearnedReverb(timbrel.default_model()) or create_effect('reverb', model=...)")
        loaded = model if isinstance(model, TimbreModel) else load_model(model)
        self.model_name = loaded.info.name
        self._ir_rate = loaded.info.sample_rate
        self._ir = np.asarray(loaded.reverb_ir, dtype=np.float64)
        self.skip_body_ms = float(skip_body_ms)
        self._convolvers: list[Convolver] = []
        self._mono = True
        """Whether every block since the reset had the same samples in both channels: the right
        channel's convolver then stands idle and the left's result is copied to it (the two
        would compute the same). The first stereo block hands it the left's state."""

    def prepare(self, sample_rate: int, max_block: int) -> None:
        import soxr

        super().prepare(sample_rate, max_block)
        ir = self._ir
        if sample_rate != self._ir_rate:
            ir = soxr.resample(ir, self._ir_rate, sample_rate, quality="VHQ")
        ir = ir[int(self.skip_body_ms * 1e-3 * sample_rate):]
        self._convolvers = [Convolver(ir.astype(np.float32), max_block, mix=1.0) for _ in range(2)]
        self._row = np.zeros(max_block, dtype=np.float32)

    def reset(self) -> None:
        for convolver in self._convolvers:
            convolver.reset()
        self._mono = True

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        self.params.advance(n / self.sample_rate)
        # Python floats, not numpy float64 scalars: numpy scales a float32 row by a float64 scalar
        # through a heap buffer, on the audio thread.
        mix, wet_db = float(self.params.values[0]), float(self.params.values[1])
        wet = mix * 10.0 ** (wet_db / 20.0)
        row = self._row[:n]
        if self._mono and not rows_equal(out):
            self._convolvers[1].copy_state_from(self._convolvers[0])
            self._mono = False
        for c, convolver in enumerate(self._convolvers):
            np.copyto(row, out[c])
            convolver.process(row, row)
            out[c] *= 1.0 - mix
            row *= wet
            out[c] += row
            if self._mono:
                np.copyto(out[1], out[0])
                break
