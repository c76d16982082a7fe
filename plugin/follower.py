"""What live transfer plays and what its MIDI out says, decided once per analysed frame.

One numba kernel, `follow_frame`, turns each frame of the pitch tracker and loudness meter
into the pitch the instrument plays, a gain, and MIDI messages; the live transfer calls it
once per hop on the audio thread, `timbrel transcribe` calls `follow_frames` over a whole
file, so both say exactly the same.

The gate:

- **Opens** on a voiced frame whose loudness (dB) is at or above `gate_db`.
- **Follows** the input while it stays open: voiced frames give the pitch, unvoiced ones hold
  the last pitch (a consonant, a breath, a noisy frame in a tail), so a soft tail keeps its
  note down to the gate.
- **Never jumps in a tail.** Once the loudness has fallen `tail_db` under the note's peak,
  a pitch more than `jump_cents` from the one playing is not taken: the note holds. While
  the loudness falls (a release), such a jump is taken only after `confirm_frames` frames
  agree on it (within 50 cents). A new note comes with an attack, which lifts the
  loudness back out of the tail and is followed at once. In the tail, where noise jitters the estimates, the pitch
  moves a share `tail_smoothing` of the way to each estimate within `jump_cents` of it (a
  one-pole in cents, about 4 frames), so slow glides are still followed; twice `tail_db` under
  the peak (the deep tail, where noise dominates the estimates) only estimates within
  `tail_jump_cents` (50) count, so a run of them 50-100 cents off cannot drag the pitch.
- **Closes smoothly**: when the loudness falls under the gate, or nothing has been voiced
  for `hold_frames`, the gain falls linearly to 0 over `release_frames` at the held pitch.
  A voiced frame above the gate during the fade opens it again.

MIDI (when `midi` is on): a note on where the gate opens, as soon as `onset_confirm`
voiced frames in a row agree on its pitch within 50 cents (2: one frame, 3.3 ms, after the
opening at the earliest; an attack's first estimate can be a semitone off), with velocity from loudness
(`loud_floor_db` … `loud_peak_db` onto 1 … 127); pitch bend for the deviation of the pitch
from the note (`bend_range_st`); a new note when the pitch moves more than
`0.5 + hysteresis_st` semitones from the sounding note; CC 11 for loudness; note off where
the gate starts to close. With `mpe` each note takes the next member channel of the lower
zone (2 … 16), else every note plays on `channel`. Before the first note, and whenever the
bend range, MPE or the channel change, it says so: the MPE configuration message (RPN 6 on
channel 1: 15 member channels) when MPE is on, then the bend range (RPN 0) on every channel
a note may take.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from timbrel.engine.realtime.events import CONTROL_CHANGE, NOTE_OFF, NOTE_ON, PITCH_BEND
from timbrel.engine.realtime.outbox import outbox_push

# params
GATE_DB, HOLD, RELEASE, TAIL_DB, CONFIRM, JUMP_CENTS, MIDI, BEND_RANGE, MPE, CHANNEL, LOUD_FLOOR, LOUD_PEAK, \
    HYSTERESIS, PEAK_DECAY, TAIL_SMOOTHING, FALLING_DB, TAIL_JUMP_CENTS, ONSET_CONFIRM = range(18)
N_PARAMS = 18
# state
OPEN, FADE, PITCH, SINCE_VOICED, PEAK, CANDIDATE, AGREED, NOTE, NOTE_CHANNEL, BEND, CC, NEXT_MEMBER, FRAME, \
    CLOSING, LAST_DB, SAID_RANGE, SAID_MPE, SAID_CHANNEL, ONSET_PITCH, ONSET_AGREED = range(20)
N_STATE = 20
# controls
F0_HZ, GAIN, SOUNDING = range(3)
N_CONTROLS = 3

EXPRESSION_CC = 11


def default_params() -> np.ndarray:
    """The follower's parameters `[N_PARAMS]` at their defaults (frames at 300 per second)."""
    params = np.zeros(N_PARAMS)
    params[GATE_DB] = -70.0
    params[HOLD] = 45.0
    params[RELEASE] = 15.0
    params[TAIL_DB] = 20.0
    params[CONFIRM] = 4.0
    params[JUMP_CENTS] = 100.0
    params[BEND_RANGE] = 2.0
    params[LOUD_FLOOR] = -60.0
    params[LOUD_PEAK] = -15.0
    params[HYSTERESIS] = 0.2
    params[PEAK_DECAY] = 0.1
    params[TAIL_SMOOTHING] = 0.25
    params[FALLING_DB] = 0.5
    params[TAIL_JUMP_CENTS] = 50.0
    params[ONSET_CONFIRM] = 2.0
    return params


def initial_state() -> np.ndarray:
    """A closed gate with no note `[N_STATE]`."""
    state = np.zeros(N_STATE)
    reset_state(state)
    return state


def reset_state(state: np.ndarray) -> None:
    """Close the gate and forget the note, in place (the caller sends any note off first)."""
    state[:] = 0.0
    state[NOTE] = -1.0
    state[BEND] = -1.0
    state[CC] = -1.0
    state[SAID_RANGE] = -1.0


@njit(nogil=True, cache=True, _nrt=False)
def _emit(ring, frames, counts, status: int, data1: int, data2: int, frame: int) -> None:
    outbox_push(ring, frames, counts, status | data1 << 8 | data2 << 16, frame)


@njit(nogil=True, cache=True, _nrt=False)
def _level(loudness_db: float, params) -> float:
    """Loudness (dB) as a share of the input's range, 0 … 1."""
    span = max(params[LOUD_PEAK] - params[LOUD_FLOOR], 1e-6)
    return min(max((loudness_db - params[LOUD_FLOOR]) / span, 0.0), 1.0)


@njit(nogil=True, cache=True, _nrt=False)
def _midi_note(f0_hz: float) -> float:
    return 69.0 + 12.0 * math.log2(f0_hz / 440.0)


@njit(nogil=True, cache=True, _nrt=False)
def _send_bend(state, params, ring, frames, counts, midi: float, frame: int, force: bool) -> None:
    channel = int(state[NOTE_CHANNEL])
    deviation = (midi - state[NOTE]) / max(params[BEND_RANGE], 1e-6)
    value = int(round(8192.0 + 8192.0 * deviation))
    value = min(max(value, 0), 16383)
    if force or abs(value - state[BEND]) >= 4.0:
        _emit(ring, frames, counts, PITCH_BEND | channel, value & 0x7F, value >> 7, frame)
        state[BEND] = value


@njit(nogil=True, cache=True, _nrt=False)
def _send_level(state, params, ring, frames, counts, loudness_db: float, frame: int, force: bool) -> None:
    value = int(round(127.0 * _level(loudness_db, params)))
    if force or value != state[CC]:
        _emit(ring, frames, counts, CONTROL_CHANGE | int(state[NOTE_CHANNEL]), EXPRESSION_CC, value, frame)
        state[CC] = value


@njit(nogil=True, cache=True, _nrt=False)
def _rpn(ring, frames, counts, channel: int, number: int, msb: int, lsb: int, frame: int) -> None:
    """Set registered parameter `number` on `channel`, then deselect it (RPN null)."""
    status = CONTROL_CHANGE | channel
    _emit(ring, frames, counts, status, 101, 0, frame)
    _emit(ring, frames, counts, status, 100, number, frame)
    _emit(ring, frames, counts, status, 6, msb, frame)
    _emit(ring, frames, counts, status, 38, lsb, frame)
    _emit(ring, frames, counts, status, 101, 127, frame)
    _emit(ring, frames, counts, status, 100, 127, frame)


@njit(nogil=True, cache=True, _nrt=False)
def _announce(state, params, ring, frames, counts, frame: int) -> None:
    """Say the MPE zone and the bend range when they are new or changed."""
    if state[SAID_RANGE] == params[BEND_RANGE] and state[SAID_MPE] == params[MPE] and \
            state[SAID_CHANNEL] == params[CHANNEL]:
        return
    semitones = int(params[BEND_RANGE])
    cents = int(round(100.0 * (params[BEND_RANGE] - semitones)))
    if params[MPE] != 0.0:
        _rpn(ring, frames, counts, 0, 6, 15, 0, frame)
        for channel in range(1, 16):
            _rpn(ring, frames, counts, channel, 0, semitones, cents, frame)
    else:
        _rpn(ring, frames, counts, int(params[CHANNEL]), 0, semitones, cents, frame)
    state[SAID_RANGE] = params[BEND_RANGE]
    state[SAID_MPE] = params[MPE]
    state[SAID_CHANNEL] = params[CHANNEL]


@njit(nogil=True, cache=True, _nrt=False)
def _note_on(state, params, ring, frames, counts, midi: float, loudness_db: float, frame: int) -> None:
    note = int(round(midi))
    note = min(max(note, 0), 127)
    if params[MPE] != 0.0:
        member = int(state[NEXT_MEMBER])
        state[NOTE_CHANNEL] = 1 + member
        state[NEXT_MEMBER] = (member + 1) % 15
    else:
        state[NOTE_CHANNEL] = params[CHANNEL]
    state[NOTE] = note
    _send_bend(state, params, ring, frames, counts, midi, frame, True)
    _send_level(state, params, ring, frames, counts, loudness_db, frame, True)
    velocity = 1 + int(round(126.0 * _level(loudness_db, params)))
    _emit(ring, frames, counts, NOTE_ON | int(state[NOTE_CHANNEL]), note, velocity, frame)


@njit(nogil=True, cache=True, _nrt=False)
def _agree(state, candidate: int, count: int, f0_hz: float) -> float:
    """Count `f0_hz` into the run of estimates within 50 cents of the run's first,
    `state[candidate]`, or start a new run with it; the run's length (`state[count]`)."""
    if state[count] > 0.0 and abs(1200.0 * math.log2(f0_hz / state[candidate])) < 50.0:
        state[count] += 1.0
    else:
        state[candidate] = f0_hz
        state[count] = 1.0
    return state[count]


@njit(nogil=True, cache=True, _nrt=False)
def _onset(state, params, ring, frames, counts, loudness_db: float, frame: int) -> None:
    """The note on of an opening gate, once `ONSET_CONFIRM` voiced frames in a row have agreed
    on its pitch (`_agree`): an attack's first estimates may be a
    semitone or more off, and a note sent on them would sound a blip before the right one."""
    if state[ONSET_AGREED] >= params[ONSET_CONFIRM]:
        state[ONSET_AGREED] = 0.0
        _note_on(state, params, ring, frames, counts, _midi_note(state[PITCH]), loudness_db, frame)


@njit(nogil=True, cache=True, _nrt=False)
def _note_off(state, ring, frames, counts, frame: int) -> None:
    if state[NOTE] >= 0.0:
        _emit(ring, frames, counts, NOTE_OFF | int(state[NOTE_CHANNEL]), int(state[NOTE]), 0, frame)
        state[NOTE] = -1.0


@njit(nogil=True, cache=True, _nrt=False)
def follow_frame(f0_hz: float, confidence: float, loudness_db: float, state, params, controls,
                 ring, frames, counts) -> None:
    """Advance the gate by one analysed frame and write `controls` (f0 Hz, gain 0 … 1, sounding).

    `f0_hz` and `confidence` come from the pitch tracker (confidence 0: unvoiced), `loudness_db`
    from the loudness meter. `state [N_STATE]` carries over between frames, `params [N_PARAMS]`
    as in `default_params`. MIDI goes to the outbox arrays (`timbrel.engine.realtime.outbox`).
    """
    frame = int(state[FRAME])
    state[FRAME] = frame + 1
    midi_on = params[MIDI] != 0.0
    voiced = confidence > 0.0 and f0_hz > 0.0 and loudness_db >= params[GATE_DB]
    if voiced:
        state[SINCE_VOICED] = 0.0
    else:
        state[SINCE_VOICED] += 1.0

    if state[OPEN] == 0.0 or state[CLOSING] != 0.0:
        if voiced:
            reopened = state[OPEN] != 0.0
            state[OPEN] = 1.0
            state[CLOSING] = 0.0
            state[FADE] = 1.0
            state[PEAK] = loudness_db if not reopened else max(state[PEAK], loudness_db)
            state[PITCH] = f0_hz
            state[AGREED] = 0.0
            state[ONSET_AGREED] = 0.0
            _agree(state, ONSET_PITCH, ONSET_AGREED, f0_hz)
            if midi_on:
                _announce(state, params, ring, frames, counts, frame)
                _onset(state, params, ring, frames, counts, loudness_db, frame)
        elif state[OPEN] != 0.0:
            state[FADE] -= 1.0 / max(params[RELEASE], 1.0)
            if state[FADE] <= 0.0:
                state[FADE] = 0.0
                state[OPEN] = 0.0
                state[CLOSING] = 0.0
    else:
        if loudness_db < params[GATE_DB] or state[SINCE_VOICED] > params[HOLD]:
            state[CLOSING] = 1.0
            state[FADE] -= 1.0 / max(params[RELEASE], 1.0)
            if midi_on:
                _note_off(state, ring, frames, counts, frame)
        else:
            state[PEAK] = max(loudness_db, state[PEAK] - params[PEAK_DECAY])
            if voiced:
                jump = abs(1200.0 * math.log2(f0_hz / state[PITCH]))
                in_tail = loudness_db < state[PEAK] - params[TAIL_DB]
                falling = loudness_db < state[LAST_DB] - params[FALLING_DB]
                if in_tail:
                    deep = loudness_db < state[PEAK] - 2.0 * params[TAIL_DB]
                    if jump <= (params[TAIL_JUMP_CENTS] if deep else params[JUMP_CENTS]):
                        state[PITCH] *= (f0_hz / state[PITCH]) ** params[TAIL_SMOOTHING]
                        state[AGREED] = 0.0
                elif jump <= params[JUMP_CENTS] or not falling:
                    state[PITCH] = f0_hz
                    state[AGREED] = 0.0
                else:
                    if _agree(state, CANDIDATE, AGREED, f0_hz) >= params[CONFIRM]:
                        state[PITCH] = f0_hz
                        state[AGREED] = 0.0
            if state[ONSET_AGREED] > 0.0:
                if voiced:
                    _agree(state, ONSET_PITCH, ONSET_AGREED, f0_hz)
                if midi_on:
                    _onset(state, params, ring, frames, counts, loudness_db, frame)
            elif midi_on:
                midi = _midi_note(state[PITCH])
                if abs(midi - state[NOTE]) > 0.5 + params[HYSTERESIS]:
                    _note_off(state, ring, frames, counts, frame)
                    _note_on(state, params, ring, frames, counts, midi, loudness_db, frame)
                else:
                    _send_bend(state, params, ring, frames, counts, midi, frame, False)
                    _send_level(state, params, ring, frames, counts, loudness_db, frame, False)

    state[LAST_DB] = loudness_db
    controls[F0_HZ] = state[PITCH]
    controls[GAIN] = state[FADE] if state[OPEN] != 0.0 else 0.0
    controls[SOUNDING] = 1.0 if state[OPEN] != 0.0 else 0.0


@njit(nogil=True, cache=True, _nrt=False)
def follow_frames(f0_hz, confidence, loudness_db, state, params, controls_out, ring, frames, counts) -> None:
    """`follow_frame` over whole tracks `[frames]`, writing `controls_out [frames, N_CONTROLS]` (offline)."""
    for i in range(f0_hz.shape[0]):
        follow_frame(f0_hz[i], confidence[i], loudness_db[i], state, params, controls_out[i], ring, frames, counts)


@njit(nogil=True, cache=True, _nrt=False)
def finish(state, ring, frames, counts) -> None:
    """Send the note off of a note still sounding (end of a file, a stopped stream)."""
    _note_off(state, ring, frames, counts, int(state[FRAME]))
