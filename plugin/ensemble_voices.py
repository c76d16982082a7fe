"""The voices of every part of an ensemble, in one set of arrays, so that one call of the fused
synth kernel renders them all and one onnxruntime call runs every part's model (`stacked_models`).

Part p owns the ensemble voices `offsets[p]` to `offsets[p + 1]`; its instrument plays views
of the shared arrays (`state` and `voice_arrays`), numbered from 0 as a lone instrument's
are, and the synth bank mixes each part's voices into the part's own row of the mix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.realtime.kernels.synth import SynthBank
from timbrel.plugin import voice_allocation as va
from timbrel.plugin.expression import N_NOISE_GAIN
from timbrel.plugin.instrument import new_voice_state
from timbrel.plugin.model import TimbreModel
from timbrel.plugin.model_synth import ModelRunner, give_back_runner, new_frame, take_runner
from timbrel.plugin.stacked_models import StackedRunner, give_back_stack, stack_shape, stack_weights, take_stack

MAX_RUNNERS = 32
"""Different models one ensemble keeps sessions for (the factory has 13)."""


GRU_WIDTH = 128
"""Columns of GRU state kept per voice: room for every factory model and `timbrel train`'s
default size. Models of different GRU sizes share the ensemble, each using the first columns
(a voice's row is zeroed when it starts); a larger GRU widens the ensemble made with it, and
one that joins an ensemble too narrow for it is refused in one line."""


def synth_shape(model: TimbreModel, sample_rate: int) -> tuple[int, int, int, int]:
    """What voices must share to be synthesised in one bank: harmonics, noise bands, the
    model's own rate (Hz: its noise bands' span) and the hop at `sample_rate` (samples)."""
    info = model.info
    return info.harmonics, info.noise_bands, info.sample_rate, info.hop_at(sample_rate)


class EnsembleVoices:
    """`voices[p]` voices for each part p, first playing `models[p]`, at `sample_rate` Hz.

    Every model must have the first one's `synth_shape`; a model that does not is refused in
    one line naming the part. Each distinct model gets a `ModelRunner` able to run every voice
    of the ensemble, so a part may switch to any model already running without a new session.
    """

    stacking = True
    """Run the models that stack in one onnxruntime call (`stacked_models`); off, each runs alone."""

    def __init__(self, models: Sequence[TimbreModel], voices: Sequence[int], sample_rate: int, seed: int = 0):
        if not models:
            raise TimbrelError("an ensemble needs at least one part")
        self.sample_rate = int(sample_rate)
        self.shape = synth_shape(models[0], sample_rate)
        self.gru_width = max(GRU_WIDTH, *(model.info.hidden for model in models))
        for p, model in enumerate(models):
            self.check(model, p)
        harmonics, bands, model_rate, hop = self.shape
        self.offsets = np.concatenate([[0], np.cumsum(voices)]).astype(np.int64)
        total = int(self.offsets[-1])
        self.voices = total
        self.hop_samples = hop
        bus = np.repeat(np.arange(len(voices)), voices)
        self.bank = SynthBank(total, harmonics, bands, sample_rate, hop, seed=seed, band_nyquist_hz=model_rate / 2, bus=bus)
        self.bank.number_voices(np.concatenate([np.arange(v) for v in voices]))
        self.ints, self.floats, self.inputs, self.notes = new_voice_state(total)
        self.f0, self.loudness, self.scale = self.inputs
        self.tilt = self.floats[va.TILT]
        self.noise_gain = self.notes[N_NOISE_GAIN]
        self.gru = np.zeros((total, self.gru_width), dtype=np.float32)
        self.frame = new_frame(total, harmonics, bands)
        self.runners: tuple[ModelRunner, ...] = ()
        """One per distinct model, each sized for every voice; parts name theirs by index."""
        self.orders = np.zeros((MAX_RUNNERS, total), dtype=np.int64)
        """Each runner's batch of the frame: ensemble voices, `orders[r, :batch]`."""
        self.order_rows = tuple(self.orders)
        self.stacks: tuple[StackedRunner, ...] = ()
        """One onnxruntime session per group of two or more runners whose models share a
        `stack_shape` (`stacked_models`); the others run alone."""
        self._made: list[StackedRunner] = []
        """Every stack made, published or since replaced, until `release`."""
        self._weights: dict[int, dict[str, np.ndarray]] = {}
        """Runner index → its model's `stack_weights`, for the runners whose models stack."""
        for model in models:
            self.runner_for(model, restack=False)
        for shape in {stack_shape(weights) for weights in self._weights.values()}:
            self._restack(shape)

    def check(self, model: TimbreModel, part: int) -> None:
        """Refuse, in one line, a model whose synth shape differs from the ensemble's."""
        shape = synth_shape(model, self.sample_rate)
        names = ("harmonics", "noise bands", "model rate (Hz)", "hop (samples)")
        diff = [f"{n} {a} (ensemble: {b})" for n, a, b in zip(names, shape, self.shape) if a != b]
        if model.info.hidden > self.gru_width:
            diff.append(f"GRU size {model.info.hidden} (ensemble: at most {self.gru_width})")
        if diff:
            raise TimbrelError(f"part {part + 1} ({model.info.name}): its model cannot share the ensemble's synth: "
                               + "; ".join(diff))

    def runner_for(self, model: TimbreModel, restack: bool = True) -> int:
        """The index of the runner for `model` (the same file and contents as one already running
        reuses it), made off the audio thread and published if new, with a new stack for its
        size unless `restack` is off; a one-line error once `MAX_RUNNERS` different models have
        played."""
        for i, runner in enumerate(self.runners):
            if runner.model is model or (runner.model.path.resolve() == model.path.resolve()
                                         and runner.model._bytes == model._bytes):
                return i
        if len(self.runners) >= MAX_RUNNERS:
            raise TimbrelError(f"{model.info.name}: this ensemble has played {MAX_RUNNERS} different models, "
                               "its most; load it again to play others")
        self.runners = (*self.runners, take_runner(model, self.voices))
        index = len(self.runners) - 1
        weights = stack_weights(model) if self.stacking else None
        if isinstance(weights, dict):
            self._weights[index] = weights
            if restack:
                self._restack(stack_shape(weights))
        return index

    def _restack(self, shape: tuple[int, int, int, int]) -> None:
        """Publish a new stack of every runner of `shape`, in place of that shape's stack (off
        the audio thread). The audio thread reads `stacks` once a frame, and a runner no stack
        it read holds runs alone, so a new model plays before its stack is published."""
        runners = [r for r, weights in self._weights.items() if stack_shape(weights) == shape]
        if len(runners) < 2:
            return
        stack = take_stack([self.runners[r].model for r in runners], runners, self.voices,
                           [self._weights[r] for r in runners])
        self._made.append(stack)
        self.stacks = (*(kept for kept in self.stacks if kept.shape != shape), stack)

    def release(self) -> None:
        """Hand every runner and stack back for the next player (the engine has let go of the ensemble)."""
        runners, self.runners = self.runners, ()
        stacks, self._made, self.stacks = self._made, [], ()
        for runner in runners:
            give_back_runner(runner)
        for stack in stacks:
            give_back_stack(stack)

    def state(self, part: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Views of part `part`'s voice state (`instrument.new_voice_state`'s layout)."""
        a, b = self.offsets[part], self.offsets[part + 1]
        return self.ints[:, a:b], self.floats[:, a:b], self.inputs[:, a:b], self.notes[:, a:b]

    def voice_arrays(self, part: int) -> tuple:
        """Views of part `part`'s synth voice arrays and GRU states (`MidiInstrument.attach`)."""
        a, b = self.offsets[part], self.offsets[part + 1]
        flags, hstate, rng, tails = self.bank.voice_arrays
        return flags[:, a:b], hstate[:, a:b], rng[:, a:b], tails[a:b], self.gru[a:b]
