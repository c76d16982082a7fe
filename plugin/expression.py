"""Note expression: the movement inside each note that a bare MIDI note lacks (numba).

A DDSP model sounds as alive as the pitch and loudness curves that drive it. From a
microphone those come from a performance; from MIDI they came from a fixed pitch and an
ADSR. This layer adds, per voice and per control frame, causally and without allocating:

- **vibrato**: a depth (cents) that fades in over an onset delay, at a rate (Hz), on top of
  the mod wheel's;
- **attack scoop**: the pitch starts below the note and rises to it with a time constant
  (not for a note slurred from one still held: legato playing does not re-attack);
- **swell**: the loudness moves by some dB after the attack, towards the note's middle
  (positive: the peak comes late; negative: it comes early and the note dies away);
- **dynamics fluctuation**: a slow random wander of the loudness (dB, about 1.5 Hz);
- **attack noise**: the model's noise is raised at the onset and falls back within the scoop time.

Each comes from two sources that add: the instrument's parameters (what a performer dials
in, read every frame, so that a knob moves a held note), and the model's *style* (fixed
for each note at its start), fitted on its training recordings as a function of pitch and
loudness (`STYLE_FIELDS`, `timbrel.export.style`), scaled by `style_amount`. A model
without a style and the parameters at their defaults play exactly the plain ADSR sound.

MIDI-DDSP (Wu et al., 2022) describes notes by similar controls (volume, its fluctuation
and peak position, vibrato, brightness, attack noise), but generates them offline with
bidirectional networks; here every value is known at the note's start or follows from
what has already happened.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from timbrel.plugin.voices import HELD, IDLE, SUSTAINED

STYLE_FIELDS = ("vibrato_cents", "vibrato_hz", "vibrato_delay_s", "scoop_cents", "scoop_s", "swell_db", "swell_s",
                "fluctuation_db")
"""What a style predicts for a note, each as `c0 + c1 * pitch + c2 * loudness`, with pitch in
octaves from middle C (MIDI 60) and loudness in 0 … 1 across the model's usual range."""
(S_VIBRATO_CENTS, S_VIBRATO_HZ, S_VIBRATO_DELAY_S, S_SCOOP_CENTS, S_SCOOP_S, S_SWELL_DB, S_SWELL_S,
 S_FLUCTUATION_DB) = range(len(STYLE_FIELDS))
STYLE_LIMITS = ((0.0, 150.0), (2.0, 10.0), (0.0, 2.0), (0.0, 300.0), (0.01, 0.5), (-24.0, 24.0), (0.05, 5.0),
                (0.0, 6.0))
"""The range each predicted value is held to (units as in `STYLE_FIELDS`)."""
_LIMITS = np.array(STYLE_LIMITS)
"""`STYLE_LIMITS` as an array, which numba compiles in as a constant (indexing the tuple at run time allocates)."""

PARAMETERS = ("style_amount", "auto_vibrato_cents", "vibrato_delay_s", "scoop_cents", "scoop_s", "swell_db", "swell_s",
              "fluctuation_db", "attack_noise_db", "vibrato_cents", "vibrato_hz")
"""The instrument parameters the layer reads, in the order of `expression_frame`'s `sources`."""
(E_AMOUNT, E_VIBRATO_CENTS, E_VIBRATO_DELAY_S, E_SCOOP_CENTS, E_SCOOP_S, E_SWELL_DB, E_SWELL_S, E_FLUCTUATION_DB,
 E_ATTACK_NOISE_DB, E_MOD_CENTS, E_MOD_HZ) = range(len(PARAMETERS))

(N_AGE, N_ONSET_S, N_VIBRATO_CENTS, N_VIBRATO_HZ, N_VIBRATO_DELAY_S, N_SCOOP_CENTS, N_SCOOP_S, N_SWELL_DB, N_SWELL_S,
 N_FLUCTUATION_DB, N_WANDER, N_LEVEL_DB, N_NOISE_GAIN, N_SEED, N_ATTACK) = range(15)
NOTE_FIELDS = 15
"""Rows of the per-voice `notes` array: the note's start (its age stamp), time since then (s),
the style's values for it (fixed at its start, scaled by `style_amount`), the wander's state,
this frame's outputs (loudness offset, dB; noise gain), its random generator's state, and
whether it was attacked (1) or slurred from a note still held (0)."""
WANDER_HZ = 1.5


def new_notes(voices: int) -> np.ndarray:
    """A `notes` array `[NOTE_FIELDS, voices]` for `voices` voices, `clear` (allocates: call off the audio thread)."""
    notes = np.zeros((NOTE_FIELDS, voices))
    clear(notes)
    return notes


@numba.njit(nogil=True, cache=True, _nrt=False)
def clear(notes):
    """No note begun in any voice, and this frame's outputs at rest."""
    notes[:, :] = 0.0
    notes[N_AGE, :] = -1.0
    notes[N_NOISE_GAIN, :] = 1.0


@numba.njit(nogil=True, cache=True, _nrt=False)
def _uniform(notes, v):
    """A uniform number in [-1, 1) from voice `v`'s generator (a 32-bit LCG kept as a float)."""
    state = (int(notes[N_SEED, v]) * 1664525 + 1013904223) & 0xFFFFFFFF
    notes[N_SEED, v] = state
    return state / 2147483648.0 - 1.0


@numba.njit(nogil=True, cache=True, _nrt=False)
def _predict(style, field, pitch, loudness):
    value = style[field, 0] + style[field, 1] * pitch + style[field, 2] * loudness
    return min(_LIMITS[field, 1], max(_LIMITS[field, 0], value))


@numba.njit(nogil=True, cache=True, _nrt=False)
def _begin(v, age, note, reach, style, has_style, amount, legato, notes):
    """Fix voice `v`'s learned expression for a note starting now: `note` (MIDI), `reach` (0 … 1,
    its level), the style scaled by `amount`; a `legato` note (another still held when it
    starts) is slurred: no scoop and no attack noise. The parameters' own part is read every
    frame, so a knob moves a held note."""
    pitch = (note - 60.0) / 12.0
    scale = amount if has_style else 0.0
    notes[N_AGE, v] = age
    notes[N_ONSET_S, v] = 0.0
    notes[N_VIBRATO_CENTS, v] = scale * _predict(style, S_VIBRATO_CENTS, pitch, reach)
    notes[N_VIBRATO_HZ, v] = _predict(style, S_VIBRATO_HZ, pitch, reach)
    notes[N_VIBRATO_DELAY_S, v] = _predict(style, S_VIBRATO_DELAY_S, pitch, reach)
    notes[N_SCOOP_CENTS, v] = scale * _predict(style, S_SCOOP_CENTS, pitch, reach)
    notes[N_SCOOP_S, v] = _predict(style, S_SCOOP_S, pitch, reach)
    notes[N_SWELL_DB, v] = scale * _predict(style, S_SWELL_DB, pitch, reach)
    notes[N_SWELL_S, v] = _predict(style, S_SWELL_S, pitch, reach)
    notes[N_FLUCTUATION_DB, v] = scale * _predict(style, S_FLUCTUATION_DB, pitch, reach)
    notes[N_WANDER, v] = 0.0
    notes[N_ATTACK, v] = 0.0 if legato else 1.0
    notes[N_SEED, v] = (int(age) * 2654435761 + int(note) * 40503) & 0xFFFFFFFF


@numba.njit(nogil=True, cache=True, _nrt=False)
def expression_frame(states, ages, pitches, velocities, curve, modulation, vibrato_phase, bend_st, style, values,
                     sources, frame_s, notes):
    """One control frame of note expression for every sounding voice.

    `ages` (each note's start stamp), `pitches` (MIDI) and `velocities` (1 … 127, shaped by
    the velocity `curve` into the note's level, 0 … 1) are per voice;
    `modulation` is the mod wheel (0 … 1), which scales the `vibrato_cents` parameter as it
    always has. `style` `[len(STYLE_FIELDS), 3]` is all zeros for a model without one. Adds vibrato and scoop to `bend_st` (semitones) and writes the loudness
    offset (`notes[N_LEVEL_DB]`, dB) and the noise gain (`notes[N_NOISE_GAIN]`).
    """
    mod_cents = modulation * values[sources[E_MOD_CENTS]]
    mod_hz = values[sources[E_MOD_HZ]]
    own_cents = values[sources[E_VIBRATO_CENTS]]
    own_delay = values[sources[E_VIBRATO_DELAY_S]]
    own_scoop, own_scoop_s = values[sources[E_SCOOP_CENTS]], max(values[sources[E_SCOOP_S]], frame_s)
    own_swell, own_swell_s = values[sources[E_SWELL_DB]], max(values[sources[E_SWELL_S]], frame_s)
    own_wander = values[sources[E_FLUCTUATION_DB]]
    attack_noise = 10.0 ** (values[sources[E_ATTACK_NOISE_DB]] / 20.0) - 1.0
    pull = frame_s * 2.0 * math.pi * WANDER_HZ
    has_style = False
    for i in range(style.shape[0]):
        for j in range(style.shape[1]):
            has_style = has_style or style[i, j] != 0.0
    amount = values[sources[E_AMOUNT]]
    for v in range(states.shape[0]):
        if states[v] == IDLE:
            continue
        if notes[N_AGE, v] != ages[v]:
            legato = False
            for other in range(states.shape[0]):
                held = states[other] == HELD or states[other] == SUSTAINED
                legato = legato or (other != v and held and ages[other] < ages[v])
            _begin(v, ages[v], pitches[v], (velocities[v] / 127.0) ** curve, style, has_style, amount, legato, notes)
        t = notes[N_ONSET_S, v]
        learned = notes[N_VIBRATO_CENTS, v]
        auto = own_cents + learned
        delay = own_delay if auto <= 0.0 else (own_cents * own_delay + learned * notes[N_VIBRATO_DELAY_S, v]) / auto
        fade_in = 1.0 if delay <= 0.0 else min(1.0, t / delay) ** 2
        auto *= fade_in
        depth = mod_cents + auto
        auto_hz = mod_hz if learned + own_cents <= 0.0 else (
            (own_cents * mod_hz + learned * notes[N_VIBRATO_HZ, v]) / (learned + own_cents))
        rate = mod_hz if depth <= 0.0 else (mod_cents * mod_hz + auto * auto_hz) / depth
        vibrato_phase[v] = (vibrato_phase[v] + rate * frame_s) % 1.0
        cents = depth * math.sin(2.0 * math.pi * vibrato_phase[v])
        attack = notes[N_ATTACK, v]
        settle = attack * math.exp(-t / own_scoop_s)
        cents -= own_scoop * settle + attack * notes[N_SCOOP_CENTS, v] * math.exp(-t / max(notes[N_SCOOP_S, v], frame_s))
        bend_st[v] += cents / 100.0
        level = own_swell * (1.0 - math.exp(-t / own_swell_s))
        level += notes[N_SWELL_DB, v] * (1.0 - math.exp(-t / max(notes[N_SWELL_S, v], frame_s)))
        wander_depth = own_wander + notes[N_FLUCTUATION_DB, v]
        if wander_depth > 0.0:
            kick = _uniform(notes, v) * math.sqrt(3.0 * 2.0 * pull)
            notes[N_WANDER, v] += -notes[N_WANDER, v] * pull + kick
            level += wander_depth * notes[N_WANDER, v]
        notes[N_LEVEL_DB, v] = level
        notes[N_NOISE_GAIN, v] = 1.0 + attack_noise * settle
        notes[N_ONSET_S, v] = t + frame_s
