"""A timbre model made ready to play at a host rate: batched inference plus synthesis.

Both instruments (`MidiInstrument`, `TimbreTransfer`) play a model the same way: at each
hop boundary the model runs once for every sounding voice, with a GRU state per voice,
and the fused numba kernel synthesises and mixes them; the model's learned reverb then
follows. `ModelSynth` holds everything that takes, allocated once in `prepare`, so the
audio-thread methods (`run`, `render`, `finish`) allocate no arrays.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from timbrel.engine.offline.reverb import reverb
from timbrel.engine.plugin_api import Plugin
from timbrel.engine.realtime.kernels.convolution import Convolver
from timbrel.engine.realtime.kernels.mixing import is_silent, mono_to_bus
from timbrel.engine.realtime.kernels.synth import SynthBank
from timbrel.engine.realtime.stages import SYNTH, TIMES
from timbrel.plugin import voices as vk
from timbrel.plugin.model import INPUTS, OUTPUTS, TimbreModel, load_model

T = TypeVar("T")


class ModelRunner:
    """One model's onnxruntime session with its input and output buffers for up to `voices`
    voices, and an IO binding per batch size, all made here, off the audio thread. Players take
    one (`take_runner`, or within a synth, `take_synth`) and hand it back when the engine has
    let go of them."""

    def __init__(self, model: TimbreModel, voices: int):
        info = model.info
        h = info.hidden
        self.model = model
        self.voices = int(voices)
        self._in = (np.zeros((voices, 1), np.float32), np.zeros((voices, 1), np.float32), np.zeros((voices, h), np.float32))
        self._out = (np.zeros((voices, 1), np.float32), np.zeros((voices, 1, info.harmonics), np.float32),
                     np.zeros((voices, 1, info.noise_bands), np.float32), np.zeros((voices, h), np.float32))
        self.session = model.open_session()
        """This player's own onnxruntime session (see `TimbreModel.open_session`)."""
        self._bindings = [None] + [self._bind(count) for count in range(1, voices + 1)]
        for binding in self._bindings[1:]:
            # onnxruntime plans memory for each batch size on its first run, and a binding's
            # first run costs more than the next: both happen here, not on the audio thread.
            self.session.run_with_iobinding(binding)
        self.muted_frames = 0
        """Voice-frames muted because the model produced NaN or inf."""
        self.runs = 0
        """onnxruntime calls made by `run` so far."""
        self.clear()

    def clear(self) -> None:
        """As new for the next player: outputs zeroed, counters at 0 (off the audio thread)."""
        for array in (*self._in, *self._out):
            array[:] = 0.0
        self.muted_frames = self.runs = 0

    def _bind(self, count: int):
        """An onnxruntime IO binding for `count` voices over the preallocated buffers (no copies)."""
        binding = self.session.io_binding()
        for name, array in zip(INPUTS, self._in):
            binding.bind_input(name, "cpu", 0, np.float32, [count, *array.shape[1:]], array.ctypes.data)
        for name, array in zip(OUTPUTS, self._out):
            binding.bind_output(name, "cpu", 0, np.float32, [count, *array.shape[1:]], array.ctypes.data)
        return binding

    def run(self, order: np.ndarray, count: int, f0_hz: np.ndarray, loudness_db: np.ndarray, scale: np.ndarray,
            tilt: np.ndarray, noise_gain: np.ndarray, gru: np.ndarray, frame: tuple) -> None:
        """Run the model once for the voices `order[:count]` (indices into the per-voice arrays
        `f0_hz`, `loudness_db`, `scale`, `tilt`, `noise_gain`, the GRU states `gru` and the synth
        `frame`), and write their synth frames (`voices.scatter_outputs`)."""
        vk.gather_inputs(order, count, f0_hz, loudness_db, gru, *self._in)
        self.session.run_with_iobinding(self._bindings[count])
        self.runs += 1
        self.muted_frames += vk.scatter_outputs(order, count, scale, tilt, noise_gain, *self._out, frame[1], frame[2],
                                                frame[3], gru)


class Shelf:
    """What players have handed back, kept by key for the next player that asks with the same
    key: onnxruntime runners (`RUNNERS`) and whole synths (`SYNTHS`).

    Opening an onnxruntime session holds the GIL for milliseconds at a time, long enough to
    make the audio callback start late, and so can preparing a synth (its noise bands, the
    learned reverb's partitions); a new runner also plans each batch size once. A preset
    switch that finds what it needs here does none of it. At most `KEEP` things a key are
    kept; the rest are freed. Keys start with `id(model)`, and a kept thing holds its model,
    so an id cannot be reused while it is kept. Control threads only: a lock guards it.
    """

    KEEP = 2

    def __init__(self) -> None:
        self._idle: dict[tuple, list] = {}
        self._lock = threading.Lock()
        self.made = 0
        """Things made afresh so far (the others were reused)."""

    def take(self, key: tuple, make: Callable[[], T]) -> T:
        """A kept thing for `key`, else `make()`'s."""
        with self._lock:
            kept = self._idle.get(key)
            thing = kept.pop() if kept else None
        if thing is None:
            self.made += 1
            thing = make()
        return thing

    def give_back(self, key: tuple, thing: object) -> None:
        """Keep `thing`, which its player has stopped using for good, for the next one asking with `key`."""
        with self._lock:
            kept = self._idle.setdefault(key, [])
            if len(kept) < self.KEEP and all(k is not thing for k in kept):
                kept.append(thing)


RUNNERS = Shelf()
"""Runners between players (ensembles take theirs here), by `(id(model), voices)`."""
SYNTHS = Shelf()
"""Synths between players (`take_synth`), by `(id(model), voices, sample_rate, max_block, seed)`."""


def take_runner(model: TimbreModel, voices: int) -> ModelRunner:
    """A `ModelRunner` of `model` for `voices` voices that no player is using, cleared."""
    runner = RUNNERS.take((id(model), int(voices)), lambda: ModelRunner(model, voices))
    runner.clear()
    return runner


def give_back_runner(runner: ModelRunner) -> None:
    """Keep `runner` for the next player of its model (`take_runner`)."""
    RUNNERS.give_back((id(runner.model), runner.voices), runner)


class ReverbStage:
    """A model's learned reverb at the host rate, and the gain stage after it, for one bus.

    The IR is resampled once, here, with soxr, so the audio itself is never resampled."""

    skip_silent_reverb = True
    """Skip the convolver while it could only add zeros (see `finish`)."""

    def __init__(self, model: TimbreModel, sample_rate: int, max_block: int):
        import soxr

        info = model.info
        ir = model.reverb_ir.astype(np.float64)
        if sample_rate != info.sample_rate:
            ir = soxr.resample(ir, info.sample_rate, sample_rate, quality="VHQ")
        self.reverb = Convolver(ir.astype(np.float32), max_block)
        self._reverb_tail = ir.size + 4 * max_block
        """Samples after which a silent input has left the convolver all zeros (its response plus
        the block-sized partitions it finishes late), with room to spare."""
        self._silent = 0
        """Samples of silence the voices have made in a row."""
        self._mono = np.zeros(max_block, dtype=np.float32)

    def reset(self) -> None:
        """Clear the reverb."""
        self.reverb.reset()
        self._silent = 0

    def finish(self, mix: np.ndarray, out: np.ndarray, reverb_mix: float, gain_from: float, gain_to: float) -> None:
        """Reverb the mono `mix` `[n]` and write it to the stereo bus `out` `[2, n]`, the gain ramping.

        Once the voices have been silent for longer than the reverb's response, the convolver
        would only add rounding dust (about 1e-21): it is skipped, and the bus zeroed, until a
        voice sounds again."""
        n = mix.shape[0]
        if self.skip_silent_reverb and is_silent(mix):
            if self._silent >= self._reverb_tail:
                out[:, :n] = 0.0
                return
            self._silent += n
        else:
            self._silent = 0
        mono = self._mono[:n]
        np.copyto(mono, mix, casting="same_kind")
        self.reverb.mix = reverb_mix
        self.reverb.process(mono, mono)
        mono_to_bus(mono, out, gain_from, gain_to)


class ModelSynth:
    """`model` played by up to `voices` voices at `sample_rate` Hz, in blocks of up to `max_block`:
    a `ModelRunner`, the fused synth bank and a `ReverbStage`.

    Noise bands are mapped by frequency once, here. Voice v plays noise stream (seed, v).
    """

    def __init__(self, model: TimbreModel, voices: int, sample_rate: int, max_block: int, seed: int = 0):
        info = model.info
        self.model = model
        self.host_hop_samples = info.hop_at(sample_rate)
        self.bank = SynthBank(voices, info.harmonics, info.noise_bands, sample_rate, self.host_hop_samples, seed=seed,
                              band_nyquist_hz=info.sample_rate / 2)
        self.stage = ReverbStage(model, sample_rate, max_block)
        self.reverb = self.stage.reverb
        self.gru = np.zeros((voices, info.hidden), dtype=np.float32)
        """GRU state per voice `[voices, hidden]`; zero a row to start a voice afresh."""
        self.frame = new_frame(voices, info.harmonics, info.noise_bands)
        """The synth's next frame per voice: f0 (Hz), amplitude, distribution, noise magnitudes."""
        self.runner = take_runner(model, voices)
        self._mix = np.zeros(max_block)
        self.key = synth_key(model, voices, sample_rate, max_block, seed)
        """What `take_synth` asks for to get this synth again."""

    @property
    def muted_frames(self) -> int:
        """Voice-frames muted because the model produced NaN or inf."""
        return self.runner.muted_frames

    def reset(self) -> None:
        """Silence every voice, clear the reverb, the GRU states and the next frame: as new."""
        self.bank.reset()
        self.stage.reset()
        self.gru[:] = 0.0
        for array in self.frame:
            array[:] = 0.0

    def run(self, order: np.ndarray, count: int, f0_hz: np.ndarray, loudness_db: np.ndarray, scale: np.ndarray,
            tilt: np.ndarray, noise_gain: np.ndarray) -> None:
        """Run the model once for the voices `order[:count]` and write their synth frames.

        `f0_hz`, `loudness_db`, `scale` (1 to sound, 0 to fade out this hop) and `tilt` (the
        brightness exponent, `voices.scatter_outputs`; 0: as the model says) and `noise_gain`
        are indexed by voice. Non-finite model outputs mute the voice for the frame (`muted_frames`).
        """
        if count == 0:
            return
        frame = self.frame
        self.runner.run(order, count, f0_hz, loudness_db, scale, tilt, noise_gain, self.gru, frame)
        np.copyto(frame[0], f0_hz, casting="same_kind")

    def render(self, n: int, on_boundary: Callable[[int], None]) -> np.ndarray:
        """Synthesise `n` samples; `on_boundary(offset)` runs where a new hop starts, to set `frame`.

        Returns the mono mix, a float64 view `[n]` valid until the next call.
        """
        mix = self._mix[:n]
        mix[:] = 0.0
        render_frames(self.bank, mix, self.frame, on_boundary)
        return mix

    def mix_buffer(self, n: int) -> np.ndarray:
        """The mono mix `[n]` (float64) zeroed, for callers that render it in pieces with
        `render_frames`; valid until the next call."""
        mix = self._mix[:n]
        mix[:] = 0.0
        return mix

    def silence(self, n: int) -> np.ndarray:
        """`render` for a block in which no voice sounds and none starts: the hop grid moves on,
        and the mix `[n]` (float64 zeros, valid until the next call) is returned."""
        mix = self._mix[:n]
        mix[:] = 0.0
        self.bank.advance_silent(n)
        return mix

    def finish(self, mix: np.ndarray, out: np.ndarray, reverb_mix: float, gain_from: float, gain_to: float) -> None:
        """Reverb the mono `mix` `[n]` into the stereo bus `out` `[2, n]` (`ReverbStage.finish`)."""
        self.stage.finish(mix, out, reverb_mix, gain_from, gain_to)


def synth_key(model: TimbreModel, voices: int, sample_rate: int, max_block: int, seed: int) -> tuple:
    """The key `SYNTHS` keeps a synth of these constructor arguments by."""
    return id(model), int(voices), int(sample_rate), int(max_block), int(seed)


def take_synth(model: TimbreModel, voices: int, sample_rate: int, max_block: int, seed: int = 0) -> ModelSynth:
    """A `ModelSynth` (as its constructor's arguments) that no player is using, silent and
    its runner cleared: one a player handed back (`ModelPlugin.release`), else a new one."""
    key = synth_key(model, voices, sample_rate, max_block, seed)
    synth = SYNTHS.take(key, lambda: ModelSynth(model, voices, sample_rate, max_block, seed))
    synth.reset()
    synth.runner.clear()
    return synth


def new_frame(voices: int, harmonics: int, bands: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A synth frame for `voices` voices: f0 (Hz) and amplitude `[voices]`, harmonic distribution
    `[voices, harmonics]`, noise magnitudes `[voices, bands]`, all float32 zeros."""
    return (np.zeros(voices, np.float32), np.zeros(voices, np.float32), np.zeros((voices, harmonics), np.float32),
            np.zeros((voices, bands), np.float32))


def render_frames(bank: SynthBank, mix: np.ndarray, frame: tuple, on_boundary: Callable[[int], None]) -> None:
    """Add `n` samples of `bank` into `mix` (`[n]`, or `[buses, n]`), calling `on_boundary(offset)`
    where a new hop starts, to set `frame` (`new_frame`), in at most two calls of the fused kernel."""
    n = mix.shape[-1]
    hop = bank.hop
    pos = 0
    while pos < n:
        remaining = bank.remaining
        m = min(n - pos, remaining + hop)
        if m > remaining:
            on_boundary(pos + remaining)
        bank.process(mix[..., pos : pos + m], frame[0], frame[1], frame[2], frame[3])
        TIMES.mark(SYNTH)
        pos += m


class ModelPlugin(Plugin):
    """Base of the plugins that play a timbre model: `model` is a `TimbreModel` or a `.onnx` path.

    Subclasses create `self.synth` (a `ModelSynth`) in `prepare` and keep `active_voices`.
    """

    def __init__(self, model: TimbreModel | str | os.PathLike, seed: int = 0):
        super().__init__()
        self.model = model if isinstance(model, TimbreModel) else load_model(model)
        self.seed = int(seed)
        self.active_voices = 0

    @property
    def muted_frames(self) -> int:
        """Voice-frames muted because the model produced NaN or inf."""
        synth = getattr(self, "synth", None)
        return synth.muted_frames if synth is not None and self.sample_rate else 0

    def release(self) -> None:
        synth, self.synth = getattr(self, "synth", None), None
        if synth is not None:
            SYNTHS.give_back(synth.key, synth)


def resynthesise(model: TimbreModel, f0_hz: np.ndarray, loudness_db: np.ndarray, seed: int = 0) -> np.ndarray:
    """One voice played from features `[frames]` (Hz, dB) exactly as live: onnxruntime frame by
    frame, the numba kernels, the learned reverb. Returns float64 audio `[frames * hop]` at the
    model's rate (voice 0's noise stream of `seed`)."""
    info = model.info
    bank = SynthBank(1, info.harmonics, info.noise_bands, info.sample_rate, info.model_hop_samples, seed=seed)
    bank.start_voice(0)
    state = np.zeros((1, info.hidden), dtype=np.float32)
    out = np.zeros(f0_hz.size * info.model_hop_samples)
    for i in range(f0_hz.size):
        f = np.array([[f0_hz[i]]], dtype=np.float32)
        ld = np.array([[loudness_db[i]]], dtype=np.float32)
        amp, dist, noise, state = model.step(f, ld, state)
        bank.process(out[i * info.model_hop_samples : (i + 1) * info.model_hop_samples], f[:, 0], amp[:, 0], dist[:, 0], noise[:, 0])
    return reverb(out, model.reverb_ir, 1.0).astype(np.float64)
