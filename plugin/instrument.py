"""The polyphonic MIDI instrument: a timbre model played from a keyboard.

Each control frame (one hop), every sounding voice gets a pitch from its note, glide,
pitch bend and mod-wheel vibrato, a loudness from its velocity curve, its ADSR (run in
dB), expression (CC11) and channel aftertouch, and a brightness from CC 74 (a tilt of its
harmonics). In an MPE zone (`timbrel.plugin.mpe`), bend, pressure and CC 74 on a note's
member channel move that note alone. One onnxruntime call then runs the model
for all sounding voices at once, each with its own GRU state, and the fused numba kernel
synthesises and mixes them; the model's learned reverb follows.

MIDI is applied at the start of each block; a new note sounds from the next hop
boundary, so the added latency is at most one block plus one hop. A stolen voice fades
out over one hop before it is reused.
"""

from __future__ import annotations

import os

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.engine.plugin_api import Parameter
from timbrel.engine.realtime.events import NOTE_OFF, NOTE_ON
from timbrel.engine.realtime.stages import INSTRUMENT_TAIL, MODEL, TIMES, VOICES
from timbrel.plugin import expression, mpe
from timbrel.plugin import voice_allocation as va
from timbrel.plugin import voices as vk
from timbrel.plugin.model import TimbreModel
from timbrel.plugin.model_synth import ModelPlugin, take_synth

MAX_VOICES = 64
VOICE_MODES = ("poly", "mono", "legato")
"""In the order of `voice_allocation.POLY`, `MONO` and `LEGATO`."""

PARAMETERS = (
    Parameter("gain_db", "Gain", "dB", -60.0, 12.0, 0.0),
    Parameter("reverb_mix", "Reverb", "", 0.0, 1.0, 1.0),
    Parameter("attack_s", "Attack", "s", 0.001, 3.0, 0.03, scale="log", smoothing_ms=0),
    Parameter("decay_s", "Decay", "s", 0.001, 5.0, 0.3, scale="log", smoothing_ms=0),
    Parameter("sustain_db", "Sustain", "dB", -60.0, 0.0, -4.0, smoothing_ms=0),
    Parameter("release_s", "Release", "s", 0.01, 5.0, 0.25, scale="log", smoothing_ms=0),
    Parameter("velocity_curve", "Velocity curve", "", 0.25, 4.0, 1.0, scale="log", smoothing_ms=0),
    Parameter("bend_range_st", "Bend range", "st", 0.0, 24.0, 2.0, smoothing_ms=0),
    Parameter("vibrato_cents", "Vibrato depth (mod wheel)", "cents", 0.0, 200.0, 40.0),
    Parameter("vibrato_hz", "Vibrato rate", "Hz", 0.5, 12.0, 5.5, scale="log"),
    Parameter("pressure_db", "Aftertouch", "dB", 0.0, 24.0, 6.0, smoothing_ms=0),
    Parameter("transpose_st", "Transpose", "st", -24.0, 24.0, 0.0, smoothing_ms=0),
    Parameter("loudness_shift_db", "Loudness shift", "dB", -24.0, 24.0, 0.0),
    Parameter("voice_mode", "Voice mode", "", 0.0, 2.0, 0.0, smoothing_ms=0, choices=VOICE_MODES),
    Parameter("glide_s", "Glide", "s", 0.0, 2.0, 0.05, smoothing_ms=0),
    Parameter("channel", "MIDI channel", "", 0.0, 16.0, 0.0, smoothing_ms=0),
    Parameter("brightness_db", "Brightness (CC 74)", "dB/oct", 0.0, 12.0, 4.0, smoothing_ms=0, group="Expression"),
    Parameter("mpe_lower", "MPE lower zone", "channels", 0.0, 15.0, 0.0, smoothing_ms=0, group="MPE"),
    Parameter("mpe_upper", "MPE upper zone", "channels", 0.0, 15.0, 0.0, smoothing_ms=0, group="MPE"),
    Parameter("mpe_bend_range_st", "MPE note bend range", "st", 0.0, 96.0, 48.0, smoothing_ms=0, group="MPE"),
    Parameter("style_amount", "Style amount", "", 0.0, 2.0, 1.0, smoothing_ms=0, group="Expression"),
    Parameter("auto_vibrato_cents", "Vibrato (automatic)", "cents", 0.0, 100.0, 0.0, smoothing_ms=0, group="Expression"),
    Parameter("vibrato_delay_s", "Vibrato delay", "s", 0.0, 2.0, 0.3, smoothing_ms=0, group="Expression"),
    Parameter("scoop_cents", "Attack scoop", "cents", 0.0, 300.0, 0.0, smoothing_ms=0, group="Expression"),
    Parameter("scoop_s", "Scoop time", "s", 0.01, 0.5, 0.06, scale="log", smoothing_ms=0, group="Expression"),
    Parameter("swell_db", "Swell", "dB", -24.0, 24.0, 0.0, smoothing_ms=0, group="Expression"),
    Parameter("swell_s", "Swell time", "s", 0.05, 5.0, 1.0, scale="log", smoothing_ms=0, group="Expression"),
    Parameter("fluctuation_db", "Dynamics fluctuation", "dB", 0.0, 6.0, 0.0, smoothing_ms=0, group="Expression"),
    Parameter("attack_noise_db", "Attack noise", "dB", 0.0, 24.0, 0.0, smoothing_ms=0, group="Expression"),
)
_I = {p.id: i for i, p in enumerate(PARAMETERS)}
RESERVED_CC = frozenset({6, 38, 64, 98, 99, 100, 101, *range(120, 128)})
"""Controllers MIDI learn leaves alone: data entry and RPN/NRPN selection (MPE and bend
ranges use them), the sustain pedal, and the channel mode messages (120 to 127: panics)."""
RESERVED_CC_TEXT = "6, 38, 64, 98 to 101 and 120 to 127"


class MidiInstrument(ModelPlugin):
    """A timbre model played polyphonically from MIDI.

    `model`: a `TimbreModel` or the path of a `.onnx` model file. `voices`: 1 to 64.
    Parameters are listed in `PARAMETERS`; `channel` 0 listens to every channel.
    """

    name = "midi-instrument"
    parameters = PARAMETERS

    def __init__(self, model: TimbreModel | str | os.PathLike, voices: int = 16, seed: int = 0):
        if not 1 <= voices <= MAX_VOICES:
            raise ValueError(f"voices must be 1 to {MAX_VOICES}, got {voices}")
        super().__init__(model, seed)
        self.voices = int(voices)
        self._learn = np.full(128, -1, dtype=np.int64)
        """The parameter index each controller sets when learned (-1: the controller's usual role)."""

    @property
    def latency_samples(self) -> int:
        """A note sounds from the next hop boundary: at most one hop late."""
        return self.host_hop_samples if self.sample_rate else 0

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        v = self.voices
        self.synth = take_synth(self.model, v, sample_rate, max_block, self.seed)
        self.stage = self.synth.stage
        self.attach(new_voice_state(v), (*self.synth.bank.voice_arrays, self.synth.gru), self.synth.host_hop_samples)
        self.reset()
        self._warm_up()

    def attach(self, state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], voice_arrays: tuple,
               hop_samples: int) -> None:
        """Play the voices whose state lives in `state` (`new_voice_state`, or views of an
        ensemble's) and whose synth arrays are `voice_arrays` (`SynthBank.voice_arrays` and the GRU
        states), at a hop of `hop_samples`. Writes nothing into them: an ensemble part being
        prepared takes over its voices at a block boundary, as they are."""
        info = self.model.info
        v = self.voices
        self.host_hop_samples = int(hop_samples)
        self._ints, self._floats, self._frame, self._notes = state
        self._state, self._note, self._stage = (self._ints[i] for i in (va.STATE, va.NOTE, va.STAGE))
        self._velocity, self._env_db, self._pitch, self._glide_from, self._vibrato_phase = (
            self._floats[i] for i in (va.VELOCITY, va.ENV_DB, va.PITCH, va.GLIDE_FROM, va.VIBRATO_PHASE))
        self._f0, self._loudness, self._scale = self._frame
        self._tilt, self._noise_gain = self._floats[va.TILT], self._notes[expression.N_NOISE_GAIN]
        """Views made here, not on the audio thread: each frame's harmonic tilts and noise gains."""
        self._voice_arrays = voice_arrays
        self._frame_params = np.zeros(vk.FRAME_PARAMS)
        self._controls = np.zeros(va.CONTROLS)
        self._counters = np.zeros(va.COUNTERS, dtype=np.int64)
        self._stack = np.zeros(128, dtype=np.int64)
        self._order = np.zeros(v, dtype=np.int64)
        self._finished = np.zeros(v + 1, dtype=np.int64)
        self._frame_params[vk.P_LOUDNESS_LO], self._frame_params[vk.P_LOUDNESS_HI] = info.loudness_range_db
        self._frame_params[vk.P_FRAME_S] = self.host_hop_samples / self.sample_rate
        self._frame_sources = np.array([_I[name] for name in (*va.FRAME_SOURCES, *expression.PARAMETERS)],
                                       dtype=np.int64)
        self._zones, self._channels = mpe.new_zones()
        self._style = self.model.style
        self._ranges = np.array([[p.minimum, p.maximum, float(p.scale == "log"), float(bool(p.choices))]
                                 for p in PARAMETERS]).T.copy()
        """Per parameter: minimum, maximum, log scale (1/0), switch (1/0), `[4, parameters]`."""
        self._gain = 10.0 ** (self.params.values[_I["gain_db"]] / 20.0)
        self.active_voices = 0

    def _warm_up(self) -> None:
        """Run every code path once (numba compiles, onnxruntime plans) before any audio block,
        on a whole bus and on a view of a wider one (the engine's), whose array layouts differ."""
        m = min(self.max_block, 64)
        wide = np.zeros((2, 2 * m), dtype=np.float32)
        silence = np.zeros(m, dtype=np.float32)
        note = np.array([NOTE_ON | 60 << 8 | 100 << 16, NOTE_OFF | 60 << 8], dtype=np.int32)
        for out in (wide[:, :m].copy(), wide[:, :m]):
            for i in range(2 * self.host_hop_samples // m + 2):
                self.process(silence, out, note[:1] if i == 0 else note[1:] if i == 1 else note[:0])
            self.reset()

    def reset(self) -> None:
        self.synth.reset()
        clear_voice_state(self._ints, self._floats, self._notes)
        self._controls[:] = 0.0
        self._counters[:] = 0
        mpe.clear(self._zones, self._channels)
        self._gain = 10.0 ** (self.params.values[_I["gain_db"]] / 20.0)
        self.active_voices = 0

    # MIDI -------------------------------------------------------------------------------

    def learn(self, controller: int, parameter_id: str | None) -> None:
        """Have MIDI CC `controller` (0 to 127) set parameter `parameter_id` across its range (on
        its log scale where it has one; a switch steps through its choices), or, with None, give
        the controller back its usual role. Mod wheel, CC 11, CC 74 and aftertouch keep their
        roles unless learned; `RESERVED_CC` cannot be. Any thread; the audio thread writes the
        parameter's target, so displays follow the knob."""
        if not isinstance(controller, int) or not 0 <= controller <= 127 or controller in RESERVED_CC:
            raise TimbrelError(f"CC {controller} cannot be learned (0 to 127, except {RESERVED_CC_TEXT})")
        self._learn[controller] = -1 if parameter_id is None else self.params.index(parameter_id)

    def learned(self) -> dict[int, str]:
        """The learned controllers and the parameters they set."""
        return {cc: PARAMETERS[i].id for cc, i in enumerate(self._learn) if i >= 0}

    def handle(self, events: np.ndarray) -> None:
        """Apply packed MIDI messages `events` `[n]` int32 (`timbrel.engine.realtime.events`),
        in order, through the numba voice allocator (`timbrel.plugin.voice_allocation`)."""
        va.apply_events(events, self.params.values, self._frame_sources, self._learn, self.params.targets, self._ranges,
                        self._ints, self._floats, self._stack, self._controls, self._counters, self._zones,
                        self._channels, *self._voice_arrays)

    # Audio ------------------------------------------------------------------------------

    def frame_voices(self) -> int:
        """Advance the voices one hop (`voice_allocation.control_frame`): returns how many the
        model runs for, listed in `order`, with their inputs in the voice state's frame."""
        # 19 arguments at most: CPython reuses argument tuples only up to that size, and a larger one is malloc'd
        count = va.control_frame(self.params.values, self._frame_sources, self._controls, self._zones, self._channels,
                                 self._style, self._notes, self._frame_params, self._ints, self._floats, self._frame,
                                 self._order, self._finished, self._counters,
                                 *self._voice_arrays)
        self.active_voices = count
        return count

    @property
    def order(self) -> np.ndarray:
        """The voices the latest `frame_voices` listed for the model, `[voices]` (its count first)."""
        return self._order

    def _control_frame(self, offset: int = 0) -> None:
        """Advance the voices one hop and run the model for every sounding voice (or, fading out,
        hold the last frame: the crossfade silences it within a few hops)."""
        if self.fading_out:
            return
        count = self.frame_voices()
        TIMES.mark(VOICES)
        self.synth.run(self._order, count, self._f0, self._loudness, self._scale, self._tilt, self._noise_gain)
        TIMES.mark(MODEL)

    def begin_block(self, n: int, events: np.ndarray) -> None:
        """Start a block of `n` samples: glide the parameters and apply its MIDI `events`."""
        self.params.advance(n / self.sample_rate)
        if events.shape[0]:
            self.handle(events)
        TIMES.mark(VOICES)

    def finish_block(self, mix: np.ndarray, out: np.ndarray) -> None:
        """End a block: the learned reverb and the gain, from the voices' mono `mix` `[n]` into `out` `[2, n]`."""
        values = self.params.values
        gain = 10.0 ** (values[_I["gain_db"]] / 20.0)
        self.stage.finish(mix, out, float(values[_I["reverb_mix"]]), self._gain, gain)
        self._gain = gain
        TIMES.mark(INSTRUMENT_TAIL)

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        self.begin_block(n, events)
        if va.any_voice(self._ints):
            mix = self.synth.render(n, self._control_frame)
        else:
            mix = self.synth.silence(n)  # every voice idle: control frames would change nothing
        self.finish_block(mix, out)


def new_voice_state(voices: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cleared per-voice state for `voices` voices: the allocator's ints `[INT_FIELDS, voices]`
    and floats `[FLOAT_FIELDS, voices]` (`voice_allocation`), the model inputs `[3, voices]`
    (f0 in Hz, loudness in dB, scale) and the expression state `[NOTE_FIELDS, voices]`."""
    state = (np.zeros((va.INT_FIELDS, voices), dtype=np.int64), np.zeros((va.FLOAT_FIELDS, voices)),
             np.zeros((3, voices)), expression.new_notes(voices))
    clear_voice_state(state[0], state[1], state[3])
    return state


def clear_voice_state(ints: np.ndarray, floats: np.ndarray, notes: np.ndarray) -> None:
    """Every voice idle, with no note waiting."""
    ints[:] = 0
    ints[va.WAITING_NOTE:] = -1
    floats[:] = 0.0
    expression.clear(notes)
