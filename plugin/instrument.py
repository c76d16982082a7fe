"""The polyphonic MIDI instrument: a timbre model played from a keyboard.

Each control frame (one hop), every sounding voice gets a pitch from its note, glide,
pitch bend and mod-wheel vibrato, and a loudness from its velocity curve, its ADSR (run in
dB), expression (CC11) and channel aftertouch. One onnxruntime call then runs the model
for all sounding voices at once, each with its own GRU state, and the fused numba kernel
synthesises and mixes them; the model's learned reverb follows.

MIDI is applied at the start of each block; a new note sounds from the next hop
boundary, so the added latency is at most one block plus one hop. A stolen voice fades
out over one hop before it is reused.
"""

from __future__ import annotations

import os

import numpy as np

from timbrel.engine.plugin_api import Parameter
from timbrel.engine.realtime.events import CHANNEL_PRESSURE, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PITCH_BEND
from timbrel.engine.realtime.stages import INSTRUMENT_TAIL, MODEL, TIMES, VOICES
from timbrel.plugin import voices as vk
from timbrel.plugin.model import TimbreModel
from timbrel.plugin.model_synth import ModelPlugin, ModelSynth

MAX_VOICES = 64
VOICE_MODES = ("poly", "mono", "legato")

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
)
_I = {p.id: i for i, p in enumerate(PARAMETERS)}


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

    @property
    def latency_samples(self) -> int:
        """A note sounds from the next hop boundary: at most one hop late."""
        return self.synth.host_hop_samples if self.sample_rate else 0

    def prepare(self, sample_rate: int, max_block: int) -> None:
        super().prepare(sample_rate, max_block)
        info = self.model.info
        v = self.voices
        self.synth = ModelSynth(self.model, v, sample_rate, max_block, self.seed)
        self.host_hop_samples = self.synth.host_hop_samples
        self._frame_params = np.zeros(vk.FRAME_PARAMS)
        self._state = np.zeros(v, dtype=np.int64)
        self._note = np.zeros(v, dtype=np.int64)
        self._velocity = np.zeros(v)
        self._env_db = np.zeros(v)
        self._stage = np.zeros(v, dtype=np.int64)
        self._pitch = np.zeros(v)
        self._glide_from = np.zeros(v)
        self._vibrato_phase = np.zeros(v)
        self._age = np.zeros(v, dtype=np.int64)
        self._pending = np.full((v, 2), -1, dtype=np.int64)
        self._f0 = np.zeros(v)
        self._loudness = np.zeros(v)
        self._scale = np.zeros(v)
        self._order = np.zeros(v, dtype=np.int64)
        self._finished = np.zeros(v + 1, dtype=np.int64)
        self._stack = np.zeros(128, dtype=np.int64)
        self._lo_db, self._hi_db = info.loudness_range_db
        self.reset()
        self._warm_up()

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
        self._state[:] = vk.IDLE
        self._pending[:] = -1
        self._held = 0
        self._sustain = False
        self._bend = 0.0
        self._mod = 0.0
        self._expression_db = 0.0
        self._pressure = 0.0
        self._clock = 0
        self._gain = 10.0 ** (self.params.values[_I["gain_db"]] / 20.0)
        self.active_voices = 0

    # MIDI -------------------------------------------------------------------------------

    def handle(self, packed: int) -> None:
        """Apply one packed MIDI message (see `timbrel.engine.realtime.events.parse_message`)."""
        status = packed & 0xFF
        kind = status & 0xF0
        channel = int(self.params.values[_I["channel"]])
        if channel and (status & 0x0F) + 1 != channel:
            return
        d1 = (packed >> 8) & 0x7F
        d2 = (packed >> 16) & 0x7F
        if kind == NOTE_ON and d2 > 0:
            self._note_on(d1, d2)
        elif kind == NOTE_OFF or kind == NOTE_ON:
            self._note_off(d1)
        elif kind == CONTROL_CHANGE:
            self._control(d1, d2)
        elif kind == PITCH_BEND:
            self._bend = ((d1 | d2 << 7) - 8192) / 8192.0
        elif kind == CHANNEL_PRESSURE:
            self._pressure = d1 / 127.0

    def _control(self, number: int, value: int) -> None:
        if number == 1:
            self._mod = value / 127.0
        elif number == 11:
            self._expression_db = 40.0 * np.log10(max(value, 1) / 127.0)
        elif number == 64:
            self._sustain = value >= 64
            if not self._sustain:
                for v in range(self.voices):
                    if self._state[v] == vk.SUSTAINED:
                        self._release(v)
        elif number == 120:
            for v in range(self.voices):
                if self._state[v] in (vk.HELD, vk.SUSTAINED, vk.RELEASED):
                    self._fade(v)
            self._held = 0
        elif number == 121:
            self._bend = self._mod = self._pressure = self._expression_db = 0.0
        elif number == 123:
            for v in range(self.voices):
                if self._state[v] in (vk.HELD, vk.SUSTAINED):
                    self._release(v)
            self._held = 0

    def _mode(self) -> str:
        return VOICE_MODES[int(self.params.values[_I["voice_mode"]])]

    def _note_on(self, note: int, velocity: int) -> None:
        if self._mode() != "poly":
            self._mono_on(note, velocity)
            return
        for v in range(self.voices):
            if self._state[v] in (vk.HELD, vk.SUSTAINED, vk.RELEASED) and self._note[v] == note and self._pending[v, 0] < 0:
                self._retrigger(v, velocity)
                return
        for v in range(self.voices):
            if self._state[v] == vk.IDLE and self._pending[v, 0] < 0:
                self._start(v, note, velocity)
                return
        victim = self._victim()
        if victim >= 0:
            self._fade(victim)
            self._pending[victim] = note, velocity

    def _victim(self) -> int:
        """The voice to steal: the quietest releasing voice, else the oldest one."""
        best, best_key = -1, None
        for v in range(self.voices):
            if self._pending[v, 0] >= 0 or self._state[v] in (vk.IDLE, vk.FADING):
                continue
            key = (0, self._env_db[v]) if self._state[v] == vk.RELEASED else (1, self._age[v])
            if best_key is None or key < best_key:
                best, best_key = v, key
        return best

    def _start(self, v: int, note: int, velocity: int) -> None:
        self.synth.bank.start_voice(v)
        self.synth.gru[v] = 0.0
        self._state[v] = vk.HELD
        self._stage[v] = vk.ATTACK
        self._env_db[v] = vk.ENVELOPE_FLOOR_DB
        self._note[v] = note
        self._velocity[v] = velocity
        self._pitch[v] = self._glide_from[v] = note
        self._vibrato_phase[v] = 0.0
        self._clock += 1
        self._age[v] = self._clock

    def _retrigger(self, v: int, velocity: int) -> None:
        self._state[v] = vk.HELD
        self._stage[v] = vk.ATTACK
        self._velocity[v] = velocity

    def _release(self, v: int) -> None:
        self._state[v] = vk.RELEASED
        self._stage[v] = vk.RELEASE

    def _fade(self, v: int) -> None:
        """Silence a voice over the next hop (its model frame gets amplitude 0)."""
        self._state[v] = vk.RELEASED
        self._stage[v] = vk.RELEASE
        self._env_db[v] = vk.ENVELOPE_FLOOR_DB

    def _note_off(self, note: int) -> None:
        if self._mode() != "poly":
            self._mono_off(note)
            return
        for v in range(self.voices):
            if self._pending[v, 0] == note:
                self._pending[v] = -1
            elif self._state[v] == vk.HELD and self._note[v] == note:
                if self._sustain:
                    self._state[v] = vk.SUSTAINED
                else:
                    self._release(v)

    def _mono_on(self, note: int, velocity: int) -> None:
        stack = self._stack
        if self._held < stack.size:
            stack[self._held] = note
            self._held += 1
        state = self._state[0]
        if state == vk.IDLE:
            self._start(0, note, velocity)
        elif state == vk.FADING:
            self._pending[0] = note, velocity
        else:
            legato = self._mode() == "legato" and state in (vk.HELD, vk.SUSTAINED) and self._held > 1
            self._note[0] = note
            self._pitch[0] = note
            if not legato:
                self._retrigger(0, velocity)
            else:
                self._state[0] = vk.HELD

    def _mono_off(self, note: int) -> None:
        stack = self._stack
        kept = 0
        for i in range(self._held):
            if stack[i] != note:
                stack[kept] = stack[i]
                kept += 1
        self._held = kept
        if self._pending[0, 0] == note:
            self._pending[0] = -1
        if self._note[0] != note or self._state[0] != vk.HELD:
            return
        if kept:
            self._note[0] = stack[kept - 1]
            self._pitch[0] = stack[kept - 1]
        elif self._sustain:
            self._state[0] = vk.SUSTAINED
        else:
            self._release(0)

    # Audio ------------------------------------------------------------------------------

    def _control_frame(self, offset: int = 0) -> None:
        """Advance the voices one hop and run the model for every sounding voice."""
        p, values = self._frame_params, self.params.values
        mono = self._mode() != "poly"
        p[vk.P_ATTACK_S] = values[_I["attack_s"]]
        p[vk.P_DECAY_S] = values[_I["decay_s"]]
        p[vk.P_SUSTAIN_DB] = values[_I["sustain_db"]]
        p[vk.P_RELEASE_S] = values[_I["release_s"]]
        p[vk.P_FRAME_S] = self.host_hop_samples / self.sample_rate
        p[vk.P_BEND_ST] = self._bend * values[_I["bend_range_st"]]
        p[vk.P_VIBRATO_CENTS] = self._mod * values[_I["vibrato_cents"]]
        p[vk.P_VIBRATO_HZ] = values[_I["vibrato_hz"]]
        p[vk.P_GLIDE_S] = values[_I["glide_s"]] if mono else 0.0
        p[vk.P_LEVEL_DB] = values[_I["loudness_shift_db"]] + self._expression_db
        p[vk.P_PRESSURE_DB] = self._pressure * values[_I["pressure_db"]]
        p[vk.P_TRANSPOSE_ST] = values[_I["transpose_st"]]
        p[vk.P_LOUDNESS_LO], p[vk.P_LOUDNESS_HI] = self._lo_db, self._hi_db
        p[vk.P_VELOCITY_CURVE] = values[_I["velocity_curve"]]
        count = vk.voice_frame(self._state, self._note, self._velocity, self._env_db, self._stage, self._pitch,
                               self._glide_from, self._vibrato_phase, p, self._f0, self._loudness, self._scale,
                               self._order, self._finished)
        for i in range(self._finished[-1]):
            v = self._finished[i]
            self.synth.bank.stop_voice(v)
            if self._pending[v, 0] >= 0:
                self._start(v, self._pending[v, 0], self._pending[v, 1])
                self._pending[v] = -1
        TIMES.mark(VOICES)
        self.synth.run(self._order, count, self._f0, self._loudness, self._scale)
        TIMES.mark(MODEL)
        self.active_voices = count

    def process(self, inp: np.ndarray, out: np.ndarray, events: np.ndarray) -> None:
        n = out.shape[1]
        self.params.advance(n / self.sample_rate)
        for packed in events:
            self.handle(int(packed))
        TIMES.mark(VOICES)
        mix = self.synth.render(n, self._control_frame)
        values = self.params.values
        gain = 10.0 ** (values[_I["gain_db"]] / 20.0)
        self.synth.finish(mix, out, float(values[_I["reverb_mix"]]), self._gain, gain)
        self._gain = gain
        TIMES.mark(INSTRUMENT_TAIL)
