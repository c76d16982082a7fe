"""Voice allocation for the MIDI instrument (numba): which voice a note takes, which one is
stolen, what the pedal, the mono stack and the all-notes messages do.

One call per block applies every MIDI message of the block (`apply_events`), and one call
per control frame frees the voices whose fade ended and starts the notes that waited for
them (`finish_voices`). Both run on the audio thread and touch only preallocated arrays:

- `ints` `[INT_FIELDS, voices]` int64: state, note, envelope stage, age (the clock at its
  start), the note, velocity and key waiting for the voice while it fades (-1: none), and
  the voice's key: the MPE member channel it plays on, or -1 outside MPE zones;
- `floats` `[FLOAT_FIELDS, voices]` float64: velocity, envelope (dB), pitch (MIDI note),
  glide start (MIDI note), vibrato phase (cycles), and this frame's bend (semitones),
  pressure (0 … 1), brightness (-1 … 1) and harmonic tilt (exponent);
- `stack` `[128]` int64: the keys held in a mono mode, oldest first;
- `controls` `[CONTROLS]` float64: pitch bend (-1 … 1), mod wheel and pressure (0 … 1),
  expression (dB), timbre (CC 74, -1 … 1), instrument-wide (or the MPE zone's master's);
- `zones`, `channels`: the MPE state (`timbrel.plugin.mpe`);
- `counters` `[COUNTERS]` int64: keys on the mono stack, the note clock, the pedal (0/1);
- the synth bank's voice arrays and the GRU state `[voices, hidden]`, so a started voice
  sounds afresh.

Rules: a note already sounding is retriggered in place (in an MPE zone, the same note on the
same member channel); otherwise it takes a free voice;
with none free it steals the quietest releasing voice, else the oldest held one, which
fades over one frame before the new note starts in it. CC 64 holds released keys, CC 120
(all sound off) fades every voice, CC 121 resets the controllers, CC 123 (all notes off)
releases every key; CC 120 and 123 act on every channel, whatever channel the instrument
listens to, so a panic always silences it.
"""

from __future__ import annotations

import math

import numba

from timbrel.engine.realtime.events import CHANNEL_PRESSURE, CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PITCH_BEND, unpack
from timbrel.engine.realtime.kernels.synth import start_voice, stop_voice
from timbrel.plugin import expression, mpe
from timbrel.plugin import voices as vk
from timbrel.plugin.voices import ATTACK, ENVELOPE_FLOOR_DB, FADING, HELD, IDLE, RELEASE, RELEASED, SUSTAINED

POLY, MONO, LEGATO = 0, 1, 2
"""Voice modes, as `MidiInstrument`'s `voice_mode` switch numbers them."""
STATE, NOTE, STAGE, AGE, WAITING_NOTE, WAITING_VELOCITY, WAITING_KEY, KEY = range(8)
INT_FIELDS = 8
VELOCITY, ENV_DB, PITCH, GLIDE_FROM, VIBRATO_PHASE, BEND_ST, PRESSURE_AMOUNT, BRIGHTNESS, TILT = range(9)
FLOAT_FIELDS = 9
BEND, MOD, PRESSURE, EXPRESSION_DB, TIMBRE = range(5)
CONTROLS = 5
HELD_KEYS, CLOCK, SUSTAIN = range(3)
COUNTERS = 3
FRAME_SOURCES = ("attack_s", "decay_s", "sustain_db", "release_s", "bend_range_st", "glide_s", "loudness_shift_db",
                 "pressure_db", "transpose_st", "velocity_curve", "voice_mode", "brightness_db", "mpe_lower", "mpe_upper",
                 "mpe_bend_range_st", "channel")
(F_ATTACK_S, F_DECAY_S, F_SUSTAIN_DB, F_RELEASE_S, F_BEND_RANGE_ST, F_GLIDE_S, F_LOUDNESS_SHIFT_DB, F_PRESSURE_DB,
 F_TRANSPOSE_ST, F_VELOCITY_CURVE, F_VOICE_MODE, F_BRIGHTNESS_DB, F_MPE_LOWER, F_MPE_UPPER, F_MPE_BEND_RANGE_ST,
 F_CHANNEL) = range(len(FRAME_SOURCES))
"""The instrument parameters the kernels read, in the order of their `sources`."""
OCTAVE_DB = 20.0 * math.log10(2.0)
"""dB per octave of a tilt `(k + 1) ** 1`: `brightness_db` over this is the tilt's exponent."""


@numba.njit(nogil=True, cache=True, _nrt=False)
def _start(v, note, velocity, key, ints, floats, counters, flags, hstate, rng, tails, gru):
    start_voice(flags, hstate, rng, tails, v)
    gru[v, :] = 0.0
    ints[STATE, v] = HELD
    ints[STAGE, v] = ATTACK
    ints[NOTE, v] = note
    ints[KEY, v] = key
    floats[ENV_DB, v] = ENVELOPE_FLOOR_DB
    floats[VELOCITY, v] = velocity
    floats[PITCH, v] = note
    floats[GLIDE_FROM, v] = note
    floats[VIBRATO_PHASE, v] = 0.0
    counters[CLOCK] += 1
    ints[AGE, v] = counters[CLOCK]


@numba.njit(nogil=True, cache=True, _nrt=False)
def _retrigger(v, velocity, ints, floats):
    ints[STATE, v] = HELD
    ints[STAGE, v] = ATTACK
    floats[VELOCITY, v] = velocity


@numba.njit(nogil=True, cache=True, _nrt=False)
def _release(v, ints):
    ints[STATE, v] = RELEASED
    ints[STAGE, v] = RELEASE


@numba.njit(nogil=True, cache=True, _nrt=False)
def _fade(v, ints, floats):
    """Silence a voice over the next frame (its model frame gets amplitude 0)."""
    ints[STATE, v] = RELEASED
    ints[STAGE, v] = RELEASE
    floats[ENV_DB, v] = ENVELOPE_FLOOR_DB


@numba.njit(nogil=True, cache=True, _nrt=False)
def _victim(ints, floats):
    """The voice to steal: the quietest releasing voice, else the oldest one; -1 when none can be."""
    best = -1
    best_rank = 2
    best_key = 0.0
    for v in range(ints.shape[1]):
        s = ints[STATE, v]
        if ints[WAITING_NOTE, v] >= 0 or s == IDLE or s == FADING:
            continue
        rank = 0 if s == RELEASED else 1
        key = floats[ENV_DB, v] if rank == 0 else float(ints[AGE, v])
        if rank < best_rank or (rank == best_rank and key < best_key):
            best, best_rank, best_key = v, rank, key
    return best


@numba.njit(nogil=True, cache=True, _nrt=False)
def _poly_on(note, velocity, key, ints, floats, counters, flags, hstate, rng, tails, gru):
    voices = ints.shape[1]
    for v in range(voices):
        s = ints[STATE, v]
        if ((s == HELD or s == SUSTAINED or s == RELEASED) and ints[NOTE, v] == note and ints[KEY, v] == key
                and ints[WAITING_NOTE, v] < 0):
            _retrigger(v, velocity, ints, floats)
            return
    for v in range(voices):
        if ints[STATE, v] == IDLE and ints[WAITING_NOTE, v] < 0:
            _start(v, note, velocity, key, ints, floats, counters, flags, hstate, rng, tails, gru)
            return
    victim = _victim(ints, floats)
    if victim >= 0:
        _fade(victim, ints, floats)
        ints[WAITING_NOTE, victim] = note
        ints[WAITING_VELOCITY, victim] = velocity
        ints[WAITING_KEY, victim] = key


@numba.njit(nogil=True, cache=True, _nrt=False)
def _poly_off(note, key, ints, counters):
    for v in range(ints.shape[1]):
        if ints[WAITING_NOTE, v] == note and ints[WAITING_KEY, v] == key:
            ints[WAITING_NOTE, v] = -1
            ints[WAITING_VELOCITY, v] = -1
        elif ints[STATE, v] == HELD and ints[NOTE, v] == note and ints[KEY, v] == key:
            if counters[SUSTAIN]:
                ints[STATE, v] = SUSTAINED
            else:
                _release(v, ints)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _mono_on(note, velocity, key, mode, ints, floats, stack, counters, flags, hstate, rng, tails, gru):
    if counters[HELD_KEYS] < stack.shape[0]:
        stack[counters[HELD_KEYS]] = note
        counters[HELD_KEYS] += 1
    s = ints[STATE, 0]
    if s == IDLE:
        _start(0, note, velocity, key, ints, floats, counters, flags, hstate, rng, tails, gru)
    elif s == FADING:
        ints[WAITING_NOTE, 0] = note
        ints[WAITING_VELOCITY, 0] = velocity
        ints[WAITING_KEY, 0] = key
    else:
        legato = mode == LEGATO and (s == HELD or s == SUSTAINED) and counters[HELD_KEYS] > 1
        ints[NOTE, 0] = note
        ints[KEY, 0] = key
        floats[PITCH, 0] = note
        if legato:
            ints[STATE, 0] = HELD
        else:
            _retrigger(0, velocity, ints, floats)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _mono_off(note, ints, floats, stack, counters):
    kept = 0
    for i in range(counters[HELD_KEYS]):
        if stack[i] != note:
            stack[kept] = stack[i]
            kept += 1
    counters[HELD_KEYS] = kept
    if ints[WAITING_NOTE, 0] == note:
        ints[WAITING_NOTE, 0] = -1
        ints[WAITING_VELOCITY, 0] = -1
    if ints[NOTE, 0] != note or ints[STATE, 0] != HELD:
        return
    if kept:
        ints[NOTE, 0] = stack[kept - 1]
        floats[PITCH, 0] = stack[kept - 1]
    elif counters[SUSTAIN]:
        ints[STATE, 0] = SUSTAINED
    else:
        _release(0, ints)


@numba.njit(nogil=True, cache=True, _nrt=False)
def _control(number, value, ints, floats, controls, counters):
    if number == 1:
        controls[MOD] = value / 127.0
    elif number == 74:
        controls[TIMBRE] = mpe.timbre(value)
    elif number == 11:
        controls[EXPRESSION_DB] = 40.0 * math.log10(max(value, 1) / 127.0)
    elif number == 64:
        counters[SUSTAIN] = 1 if value >= 64 else 0
        if not counters[SUSTAIN]:
            for v in range(ints.shape[1]):
                if ints[STATE, v] == SUSTAINED:
                    _release(v, ints)
    elif number == 120:
        for v in range(ints.shape[1]):
            s = ints[STATE, v]
            if s == HELD or s == SUSTAINED or s == RELEASED:
                _fade(v, ints, floats)
            ints[WAITING_NOTE, v] = -1
            ints[WAITING_VELOCITY, v] = -1
            ints[WAITING_KEY, v] = -1
        counters[HELD_KEYS] = 0
    elif number == 121:
        controls[BEND] = controls[MOD] = controls[PRESSURE] = controls[EXPRESSION_DB] = controls[TIMBRE] = 0.0
    elif number == 123:
        for v in range(ints.shape[1]):
            s = ints[STATE, v]
            if s == HELD or s == SUSTAINED:
                _release(v, ints)
        counters[HELD_KEYS] = 0


@numba.njit(nogil=True, cache=True, _nrt=False)
def any_voice(ints):
    """Whether any voice is in a state other than idle (sounding, fading, or about to start)."""
    for v in range(ints.shape[1]):
        if ints[STATE, v] != IDLE:
            return True
    return False


@numba.njit(nogil=True, cache=True, _nrt=False)
def _learned_value(value, low, high, log, switch):
    """A parameter value for controller value `value` (0 … 127) across `low` … `high`."""
    x = value / 127.0
    if switch:
        return float(round(low + x * (high - low)))
    if log and low > 0.0:
        return low * (high / low) ** x
    return low + x * (high - low)


@numba.njit(nogil=True, cache=True, _nrt=False)
def apply_events(events, values, sources, learn, targets, ranges, ints, floats, stack, controls, counters, zones,
                 channels, flags, hstate, rng, tails, gru):
    """Apply packed MIDI messages `events` `[n]` int32 (`timbrel.engine.realtime.events`), in
    order, under the instrument's parameter `values` (indices `sources`, in `FRAME_SOURCES`
    order): `channel` 1 to 16 listens to that channel alone (0: every channel), and MPE zones'
    channels are heard whatever it says; `voice_mode` is POLY, MONO or LEGATO. A controller
    with a parameter in `learn` `[128]` sets that parameter's entry of `targets` across
    `ranges` (`_learned_value`) instead of its usual role, except on MPE member channels."""
    channel, mode = int(values[sources[F_CHANNEL]]), int(values[sources[F_VOICE_MODE]])
    mpe.adopt_parameters(zones, values[sources[F_MPE_LOWER]], values[sources[F_MPE_UPPER]],
                         values[sources[F_MPE_BEND_RANGE_ST]])
    for i in range(events.shape[0]):
        packed = events[i]
        kind, ch, d1, d2 = unpack(packed)
        if kind == CONTROL_CHANGE and mpe.control(zones, channels, ch, d1, d2):
            continue
        role = mpe.role(zones, ch)
        panic = kind == CONTROL_CHANGE and (d1 == 120 or d1 == 123)
        if channel and ch + 1 != channel and not panic and role == mpe.NONE:
            continue
        member = role == mpe.LOWER_MEMBER or role == mpe.UPPER_MEMBER
        key = ch if member else -1
        if kind == CONTROL_CHANGE and learn[d1] >= 0 and not member:
            target = learn[d1]
            targets[target] = _learned_value(d2, ranges[0, target], ranges[1, target], ranges[2, target] > 0.0,
                                             ranges[3, target] > 0.0)
            continue
        if kind == NOTE_ON and d2 > 0:
            if mode == POLY:
                _poly_on(d1, d2, key, ints, floats, counters, flags, hstate, rng, tails, gru)
            else:
                _mono_on(d1, d2, key, mode, ints, floats, stack, counters, flags, hstate, rng, tails, gru)
        elif kind == NOTE_OFF or kind == NOTE_ON:
            if mode == POLY:
                _poly_off(d1, key, ints, counters)
            else:
                _mono_off(d1, ints, floats, stack, counters)
        elif kind == CONTROL_CHANGE:
            _control(d1, d2, ints, floats, controls, counters)
        elif kind == PITCH_BEND:
            bend = ((d1 | d2 << 7) - 8192) / 8192.0
            if member:
                channels[mpe.BEND, ch] = bend
            else:
                controls[BEND] = bend
        elif kind == CHANNEL_PRESSURE:
            if member:
                channels[mpe.PRESSURE, ch] = d1 / 127.0
            else:
                controls[PRESSURE] = d1 / 127.0


@numba.njit(nogil=True, cache=True, _nrt=False)
def finish_voices(finished, ints, floats, counters, flags, hstate, rng, tails, gru):
    """Stop the voices `voice_frame` listed in `finished` (count in its last cell), and start
    in each the note that waited for it."""
    for i in range(finished[finished.shape[0] - 1]):
        v = finished[i]
        stop_voice(flags, v)
        if ints[WAITING_NOTE, v] >= 0:
            _start(v, ints[WAITING_NOTE, v], ints[WAITING_VELOCITY, v], ints[WAITING_KEY, v], ints, floats, counters,
                   flags, hstate, rng, tails, gru)
            ints[WAITING_NOTE, v] = -1
            ints[WAITING_VELOCITY, v] = -1
            ints[WAITING_KEY, v] = -1


@numba.njit(nogil=True, cache=True, _nrt=False)
def control_frame(values, sources, controls, zones, channels, style, notes, frame_params, ints, floats, frame, order,
                  finished, counters, flags, hstate, rng, tails, gru):
    """One control frame of the MIDI instrument: assemble the frame's parameters from the
    instrument's `values` (indices `sources`: `FRAME_SOURCES`, then `expression.PARAMETERS`) and
    the controllers into `frame_params` (which holds the frame length and loudness range
    already), each voice's bend, pressure and brightness (`mpe.note_controls`) and expression
    (`expression.expression_frame`, with the model's `style`), advance every voice
    (`voices.voice_frame`) into `frame` `[3, voices]` (f0 in Hz, loudness in dB, scale), then
    free and restart voices (`finish_voices`). Returns how many voices the model runs for,
    listed in `order`; `floats[TILT]` holds their harmonic tilts and `notes[N_NOISE_GAIN]`
    their noise gains."""
    p = frame_params
    curve = values[sources[F_VELOCITY_CURVE]]
    mpe.adopt_parameters(zones, values[sources[F_MPE_LOWER]], values[sources[F_MPE_UPPER]],
                         values[sources[F_MPE_BEND_RANGE_ST]])
    p[vk.P_ATTACK_S] = values[sources[F_ATTACK_S]]
    p[vk.P_DECAY_S] = values[sources[F_DECAY_S]]
    p[vk.P_SUSTAIN_DB] = values[sources[F_SUSTAIN_DB]]
    p[vk.P_RELEASE_S] = values[sources[F_RELEASE_S]]
    p[vk.P_GLIDE_S] = values[sources[F_GLIDE_S]] if values[sources[F_VOICE_MODE]] != POLY else 0.0
    p[vk.P_LEVEL_DB] = values[sources[F_LOUDNESS_SHIFT_DB]] + controls[EXPRESSION_DB]
    p[vk.P_PRESSURE_DB] = values[sources[F_PRESSURE_DB]]
    p[vk.P_TRANSPOSE_ST] = values[sources[F_TRANSPOSE_ST]]
    p[vk.P_VELOCITY_CURVE] = curve
    mpe.note_controls(zones, channels, controls[BEND], controls[PRESSURE], controls[TIMBRE],
                      values[sources[F_BEND_RANGE_ST]], ints[KEY],
                      ints[STATE], floats[BEND_ST], floats[PRESSURE_AMOUNT], floats[BRIGHTNESS])
    expression.expression_frame(ints[STATE], ints[AGE], floats[PITCH], floats[VELOCITY], curve, controls[MOD],
                                floats[VIBRATO_PHASE], floats[BEND_ST], style, values, sources[len(FRAME_SOURCES):],
                                p[vk.P_FRAME_S], notes)
    tilt = values[sources[F_BRIGHTNESS_DB]] / OCTAVE_DB
    for v in range(ints.shape[1]):
        floats[TILT, v] = floats[BRIGHTNESS, v] * tilt
    count = vk.voice_frame(ints[STATE], floats[VELOCITY], floats[ENV_DB], ints[STAGE], floats[PITCH], floats[GLIDE_FROM],
                           floats[BEND_ST], floats[PRESSURE_AMOUNT], notes[expression.N_LEVEL_DB], p, frame[0],
                           frame[1], frame[2], order, finished)
    finish_voices(finished, ints, floats, counters, flags, hstate, rng, tails, gru)
    return count
