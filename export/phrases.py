"""Random expressive monophonic phrases for General MIDI instruments: example material.

A `Phrase` is a melody (notes with onsets, durations in s, MIDI note numbers, velocities and
legato flags) plus two control curves sampled at `CONTROL_RATE_HZ`: CC11 expression (0..127)
and pitch bend (semitones). `make_phrase` draws one from a seed, `phrase_to_midi` encodes it
exactly (1 ms ticks, curves sent when their MIDI value changes), and `reference_f0` gives the
pitch the rendered audio should have, frame by frame, for testing pitch trackers.

Everything the MIDI file carries is already quantised in the `Phrase` (onsets and durations
on the 5 ms control grid, CC11 to integers, bends to the 14-bit grid), so the MIDI is a
lossless encoding of the phrase and `reference_f0` describes exactly what the synth is told.

Legato: the channel holds the legato pedal (CC68) down, which puts FluidSynth's channel in
monophonic legato mode; a slurred note starts `LEGATO_OVERLAP_S` before the previous one
ends, so FluidSynth slurs into it (its default legato mode reuses the sounding voice where
the new note maps to the same sample and releases it quickly otherwise). Detached notes
leave a gap. The channel is otherwise never asked to sound two notes at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import mido
import numpy as np

from timbrel.engine.errors import TimbrelError

__all__ = [
    "BEND_RANGE_SEMITONES",
    "CONTROL_RATE_HZ",
    "INSTRUMENTS",
    "Instrument",
    "LEGATO_OVERLAP_S",
    "MIN_PHRASE_S",
    "Note",
    "Phrase",
    "instrument",
    "make_phrase",
    "phrase_to_midi",
    "reference_f0",
]

CONTROL_RATE_HZ = 200
BEND_RANGE_SEMITONES = 12
LEGATO_OVERLAP_S = 0.01
MIN_PHRASE_S = 2.0
TICKS_PER_BEAT = 500
MIDI_TEMPO_US = 500_000
_TICKS_PER_S = TICKS_PER_BEAT * 1_000_000 // MIDI_TEMPO_US
_BEND_STEPS = 8192
_LEAD_IN_S = (0.1, 0.3)
_END_MARGIN_S = 0.6
_CHANNEL = 0


@dataclass(frozen=True)
class Instrument:
    """How one General MIDI instrument is played.

    `program` is the 0-based GM program; `low`/`high` the comfortable range (MIDI note
    numbers, sounding pitch); `tempo_bpm` the range tempos are drawn from; `min_note_s` the
    shortest note it speaks cleanly (s); `vibrato_hz`/`vibrato_cents` the typical vibrato
    rate (Hz) and depth (cents, peak); `legato` the chance (0..1) that a note slurs into the
    next; `glide` the chance that a slur slides via pitch bend; `scoop` the chance that a
    detached note bends up into pitch. `category` follows the GM families: `strings`
    (40-47), `voice` (52-54), `brass` (56-63), `reed` (64-71: saxophones, oboe, bassoon,
    clarinet), `woodwind` (72-79, the GM "pipe" family: flutes).
    """

    name: str
    program: int
    category: str
    low: int
    high: int
    tempo_bpm: tuple[float, float]
    min_note_s: float
    vibrato_hz: float
    vibrato_cents: float
    legato: float
    glide: float
    scoop: float


def _table(*rows: tuple) -> dict[str, Instrument]:
    return {row[0]: Instrument(*row) for row in rows}


INSTRUMENTS: dict[str, Instrument] = _table(
    ("violin", 40, "strings", 55, 88, (70, 120), 0.10, 6.0, 25.0, 0.65, 0.10, 0.00),
    ("viola", 41, "strings", 48, 81, (66, 112), 0.11, 5.8, 25.0, 0.65, 0.10, 0.00),
    ("cello", 42, "strings", 36, 69, (60, 104), 0.12, 5.5, 25.0, 0.65, 0.12, 0.00),
    ("contrabass", 43, "strings", 28, 55, (56, 92), 0.18, 5.2, 18.0, 0.55, 0.08, 0.00),
    ("choir_aah", 52, "voice", 50, 76, (56, 92), 0.20, 5.5, 35.0, 0.75, 0.15, 0.10),
    ("trumpet", 56, "brass", 55, 82, (72, 120), 0.10, 5.5, 12.0, 0.40, 0.03, 0.05),
    ("trombone", 57, "brass", 40, 72, (60, 104), 0.14, 5.2, 12.0, 0.45, 0.20, 0.05),
    ("tuba", 58, "brass", 28, 58, (56, 90), 0.20, 4.8, 6.0, 0.45, 0.03, 0.00),
    ("french_horn", 60, "brass", 41, 77, (60, 100), 0.14, 5.0, 6.0, 0.55, 0.05, 0.00),
    ("alto_sax", 65, "reed", 49, 80, (72, 126), 0.09, 5.5, 25.0, 0.60, 0.08, 0.15),
    ("tenor_sax", 66, "reed", 44, 75, (66, 120), 0.10, 5.2, 25.0, 0.60, 0.08, 0.15),
    ("oboe", 68, "reed", 58, 86, (66, 112), 0.10, 5.5, 20.0, 0.60, 0.02, 0.00),
    ("english_horn", 69, "reed", 52, 81, (60, 104), 0.11, 5.2, 18.0, 0.60, 0.02, 0.00),
    ("bassoon", 70, "reed", 34, 72, (60, 108), 0.11, 5.0, 15.0, 0.55, 0.02, 0.00),
    ("clarinet", 71, "reed", 50, 86, (66, 120), 0.09, 5.0, 4.0, 0.65, 0.03, 0.00),
    ("flute", 73, "woodwind", 60, 93, (72, 126), 0.08, 5.0, 20.0, 0.60, 0.03, 0.00),
)

_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
_BEATS = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
_BEAT_WEIGHTS = np.array([0.06, 0.24, 0.30, 0.10, 0.16, 0.08, 0.06])
_DEGREE_STEPS = np.array([0, 1, 2, 3, 4, 5, 7])
_STEP_WEIGHTS = np.array([0.06, 0.56, 0.20, 0.08, 0.05, 0.03, 0.02])


def instrument(name: str) -> Instrument:
    """The table entry for `name`; TimbrelError naming the known instruments otherwise."""
    try:
        return INSTRUMENTS[name]
    except KeyError:
        raise TimbrelError(f"{name}: unknown instrument (known: {', '.join(sorted(INSTRUMENTS))})") from None


@dataclass(frozen=True)
class Note:
    """One note: onset and sounding duration (s, note-on to note-off), MIDI pitch, velocity
    (1..127), and `legato`: slurred into the next note (which then starts
    `LEGATO_OVERLAP_S` before this one ends)."""

    onset_s: float
    duration_s: float
    pitch: int
    velocity: int
    legato: bool

    @property
    def end_s(self) -> float:
        return self.onset_s + self.duration_s


@dataclass(eq=False)
class Phrase:
    """A monophonic phrase: notes in onset order, and control curves `[frames]` sampled at
    `control_rate_hz` (frame `k` is the value from `k / control_rate_hz` s until the next
    frame): `expression` (CC11, integers 0..127) and `bend` (semitones, on the 14-bit grid of
    `±bend_range` semitones). `seconds` is the length of the MIDI file; the last note ends
    at least `_END_MARGIN_S` before it."""

    instrument: str
    seed: int
    seconds: float
    notes: list[Note]
    expression: np.ndarray
    bend: np.ndarray
    control_rate_hz: int = CONTROL_RATE_HZ
    bend_range: int = BEND_RANGE_SEMITONES
    tempo_bpm: float = 120.0
    key: str = ""

    @property
    def program(self) -> int:
        return INSTRUMENTS[self.instrument].program

    def to_dict(self) -> dict:
        """A JSON-ready description (the dataset sidecar); `Phrase.from_dict` inverts it."""
        return {
            "instrument": self.instrument,
            "program": self.program,
            "seed": self.seed,
            "seconds": self.seconds,
            "tempo_bpm": self.tempo_bpm,
            "key": self.key,
            "control_rate_hz": self.control_rate_hz,
            "bend_range_semitones": self.bend_range,
            "notes": [asdict(n) for n in self.notes],
            "expression": [int(v) for v in self.expression],
            "bend_semitones": [float(v) for v in self.bend],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Phrase:
        return cls(
            instrument=d["instrument"],
            seed=int(d["seed"]),
            seconds=float(d["seconds"]),
            notes=[Note(**n) for n in d["notes"]],
            expression=np.asarray(d["expression"], dtype=np.float64),
            bend=np.asarray(d["bend_semitones"], dtype=np.float64),
            control_rate_hz=int(d["control_rate_hz"]),
            bend_range=int(d["bend_range_semitones"]),
            tempo_bpm=float(d["tempo_bpm"]),
            key=d.get("key", ""),
        )


def _grid(seconds: float) -> float:
    """Round a time (s) to the control grid."""
    return round(seconds * CONTROL_RATE_HZ) / CONTROL_RATE_HZ


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _scale_pitches(inst: Instrument, tonic: int, scale: tuple[int, ...]) -> np.ndarray:
    """All pitches of the scale inside the instrument's range, ascending."""
    return np.array([p for p in range(inst.low, inst.high + 1) if (p - tonic) % 12 in scale])


def _melody(rng: np.random.Generator, pitches: np.ndarray, count: int, start: int) -> tuple[list[int], int]:
    """`count` scale indices into `pitches`: mostly steps, some leaps (followed by a step
    back), kept inside the range. Returns pitches and the last index."""
    out, idx, last_move = [], start, 0
    top = pitches.size - 1
    for _ in range(count):
        size = int(rng.choice(_DEGREE_STEPS, p=_STEP_WEIGHTS))
        direction = 1 if rng.random() < 0.5 else -1
        if abs(last_move) >= 3 and rng.random() < 0.75:
            size, direction = int(rng.integers(1, 3)), -int(np.sign(last_move))
        centre_pull = (idx - top / 2) / max(top, 1)
        if rng.random() < abs(centre_pull):
            direction = -int(np.sign(centre_pull)) or direction
        nxt = idx + direction * size
        if nxt < 0 or nxt > top:
            nxt = idx - direction * size
        idx_new = int(np.clip(nxt, 0, top))
        last_move, idx = idx_new - idx, idx_new
        out.append(int(pitches[idx]))
    return out, idx


def _arc(rng: np.random.Generator, t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """A dynamics arc over `[t0, t1]` (s): crescendo to a peak, then diminuendo; 0..1."""
    start, peak, end = rng.uniform(0.35, 0.75), rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.75)
    where = rng.uniform(0.2, 0.8)
    u = np.clip((t - t0) / max(t1 - t0, 1e-6), 0.0, 1.0)
    rise = start + (peak - start) * _smoothstep(u / where)
    fall = peak + (end - peak) * _smoothstep((u - where) / (1.0 - where))
    return np.where(u < where, rise, fall)


def make_phrase(instrument_name: str, seconds: float, seed: int, vibrato: tuple[float, float] | None = None) -> Phrase:
    """A random expressive phrase of `seconds` (s, at least `MIN_PHRASE_S`) for `instrument_name`, fully determined by
    `seed` (a numpy Generator is seeded from it): a melody in a random key and mode made of
    breath groups separated (mostly) by rests, with slurred and detached notes, dynamics
    arcs in CC11, velocity variation, vibrato that fades in on long notes, and occasional
    slides (pitch bend) between slurred notes. `vibrato` (rate in Hz, depth in cents) replaces
    the instrument's typical vibrato."""
    inst = instrument(instrument_name)
    if vibrato is not None:
        inst = replace(inst, vibrato_hz=float(vibrato[0]), vibrato_cents=float(vibrato[1]))
    if not seconds >= MIN_PHRASE_S:
        raise TimbrelError(f"{instrument_name}: a phrase needs at least {MIN_PHRASE_S} s (got {seconds})")
    rng = np.random.default_rng(seed)
    tempo = float(rng.uniform(*inst.tempo_bpm))
    beat_s = 60.0 / tempo
    ok = _BEATS * beat_s >= max(inst.min_note_s, 2.0 / CONTROL_RATE_HZ)
    beat_p = _BEAT_WEIGHTS * ok / np.sum(_BEAT_WEIGHTS * ok)
    tonic = int(rng.integers(0, 12))
    mode = str(rng.choice(list(_SCALES)))
    pitches = _scale_pitches(inst, tonic, _SCALES[mode])
    lo, hi = pitches.size // 4, max(pitches.size * 3 // 4, pitches.size // 4 + 1)
    idx = int(rng.integers(lo, hi))

    end_limit = seconds - _END_MARGIN_S
    shortest = max(inst.min_note_s, 0.1)
    t = _grid(rng.uniform(*_LEAD_IN_S))
    notes: list[Note] = []
    groups: list[tuple[float, float]] = []
    while t < end_limit - shortest:
        group_s = rng.uniform(2.0, 6.0)
        beats = rng.choice(_BEATS, size=64, p=beat_p)
        durs = [_grid(b * beat_s * rng.uniform(0.97, 1.03)) for b in beats]
        total, count = 0.0, 0
        while count < len(durs) and (count == 0 or total + durs[count] <= group_s):
            total, count = total + durs[count], count + 1
        melody, idx = _melody(rng, pitches, count, idx)
        g0, base_velocity, cut = t, rng.uniform(55, 100), False
        for i, (dur, pitch) in enumerate(zip(durs[:count], melody)):
            if t + dur > end_limit:
                dur = _grid(end_limit - t)
                if dur < shortest:
                    cut = True
                    break
            last = i == count - 1
            slur = not last and melody[i + 1] != pitch and rng.random() < inst.legato
            if slur:
                sound = dur + LEGATO_OVERLAP_S
            else:
                gap = max(0.04, dur * rng.uniform(0.08, 0.4))
                sound = _grid(max(dur - gap, inst.min_note_s / 2, 2.0 / CONTROL_RATE_HZ))
            accent = 12 if i == 0 else 0
            velocity = base_velocity + accent + rng.normal(0, 7)
            notes.append(Note(round(t, 6), round(sound, 6), pitch, int(round(velocity)), bool(slur)))
            t = _grid(t + dur)
        if notes and notes[-1].legato:
            n = notes[-1]
            notes[-1] = Note(n.onset_s, n.duration_s - LEGATO_OVERLAP_S, n.pitch, n.velocity, False)
        if t > g0:
            groups.append((g0, t))
        if cut:
            break
        if rng.random() < 0.8:
            t = _grid(t + rng.uniform(0.25, 1.2))

    frames = int(math.ceil(seconds * CONTROL_RATE_HZ))
    expression = _expression(rng, inst, notes, groups, frames)
    bend = _bend(rng, inst, notes, frames)
    notes = [_with_dynamics(n, expression) for n in notes]
    return Phrase(
        instrument=inst.name,
        seed=int(seed),
        seconds=float(seconds),
        notes=notes,
        expression=expression,
        bend=bend,
        tempo_bpm=round(tempo, 3),
        key=f"{['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][tonic]} {mode}",
    )


def _with_dynamics(note: Note, expression: np.ndarray) -> Note:
    """`note` with its velocity following the CC11 level at its onset, clipped to 20..127."""
    level = expression[min(_frame(note.onset_s), expression.size - 1)] / 127.0
    velocity = int(np.clip(note.velocity + round(50 * (level - 0.65)), 20, 127))
    return Note(note.onset_s, note.duration_s, note.pitch, velocity, note.legato)


def _frame(seconds: float) -> int:
    """The control frame at a grid time (s)."""
    return int(round(seconds * CONTROL_RATE_HZ))


def _expression(rng, inst: Instrument, notes: list[Note], groups, frames: int) -> np.ndarray:
    """CC11 `[frames]`: one arc per breath group, joined through rests, with swells on long
    notes; integers 30..127."""
    times = np.arange(frames) / CONTROL_RATE_HZ
    level = np.full(frames, np.nan)
    for g0, g1 in groups:
        span = slice(_frame(g0), min(_frame(g1), frames))
        level[span] = _arc(rng, times[span], g0, g1)
    for note in notes:
        if note.duration_s >= 1.0 and rng.random() < 0.5:
            span = slice(_frame(note.onset_s), min(_frame(note.end_s), frames))
            u = (times[span] - note.onset_s) / note.duration_s
            level[span] *= 0.8 + 0.2 * np.sin(np.pi * u)
    known = ~np.isnan(level)
    level = np.interp(times, times[known], level[known])
    return np.clip(np.round(30 + 97 * level), 30, 127).astype(np.float64)


def _bend(rng, inst: Instrument, notes: list[Note], frames: int) -> np.ndarray:
    """Pitch bend `[frames]` (semitones): slides into slurred notes, scoops into detached
    ones, vibrato fading in on long notes; held through gaps; on the 14-bit grid."""
    bend = np.zeros(frames)
    for i, note in enumerate(notes):
        prev = notes[i - 1] if i > 0 else None
        start = _frame(note.onset_s)
        stop = _frame(notes[i + 1].onset_s) if i + 1 < len(notes) else frames
        u = np.arange(stop - start) / CONTROL_RATE_HZ
        b = np.zeros(u.size)
        settle = 0.0
        interval = note.pitch - prev.pitch if prev is not None else 0
        if prev is not None and prev.legato and 1 <= abs(interval) <= 7 and rng.random() < inst.glide:
            settle = rng.uniform(0.06, 0.18)
            b += -interval * (1.0 - _smoothstep(u / settle))
        elif (prev is None or not prev.legato) and rng.random() < inst.scoop:
            settle = rng.uniform(0.05, 0.12)
            b += -rng.uniform(0.3, 1.0) * (1.0 - _smoothstep(u / settle))
        if note.duration_s >= 0.35 and inst.vibrato_cents > 0:
            delay = settle + rng.uniform(0.12, 0.3)
            fade = rng.uniform(0.2, 0.5)
            rate = inst.vibrato_hz * rng.uniform(0.92, 1.08)
            depth = inst.vibrato_cents * rng.uniform(0.6, 1.2) / 100.0
            b += depth * _smoothstep((u - delay) / fade) * np.sin(2.0 * np.pi * rate * np.maximum(u - delay, 0.0))
        released = _frame(note.duration_s)
        if not note.legato and 0 < released < b.size:
            b[released:] = b[released - 1]
        bend[start:stop] = b
    first = _frame(notes[0].onset_s)
    bend[:first] = bend[first] if first < frames else 0.0
    return _quantise_bend(bend, BEND_RANGE_SEMITONES)


def _bend_value(semitones: np.ndarray | float, bend_range: int) -> np.ndarray:
    """MIDI pitch-wheel values (-8192..8191) for bends in semitones."""
    steps = np.round(np.asarray(semitones) / bend_range * _BEND_STEPS)
    return np.clip(steps, -_BEND_STEPS, _BEND_STEPS - 1).astype(int)


def _quantise_bend(semitones: np.ndarray, bend_range: int) -> np.ndarray:
    return _bend_value(semitones, bend_range) * (bend_range / _BEND_STEPS)


def phrase_to_midi(phrase: Phrase) -> mido.MidiFile:
    """A type-0 MIDI file playing `phrase` on channel 1: program change, pitch-bend range
    (RPN 0, `±phrase.bend_range` semitones, then RPN null), volume, pan, legato pedal (CC68)
    down, the notes, and CC11 and pitch-bend messages at control frames where their MIDI
    value changes. 1 tick = 1 ms; the track ends at `phrase.seconds`."""
    ticks_per_frame = _TICKS_PER_S // phrase.control_rate_hz
    if _TICKS_PER_S % phrase.control_rate_hz:
        raise TimbrelError(f"{phrase.instrument}: control rate {phrase.control_rate_hz} Hz does not divide 1 kHz")

    def cc(control: int, value: int) -> mido.Message:
        return mido.Message("control_change", channel=_CHANNEL, control=control, value=value)

    setup = [
        mido.MetaMessage("track_name", name=f"{phrase.instrument} seed {phrase.seed}"),
        mido.MetaMessage("set_tempo", tempo=MIDI_TEMPO_US),
        mido.Message("program_change", channel=_CHANNEL, program=phrase.program),
        cc(101, 0), cc(100, 0), cc(6, int(phrase.bend_range)), cc(38, 0), cc(101, 127), cc(100, 127),
        cc(7, 100), cc(10, 64), cc(68, 127),
    ]
    events: list[tuple[int, int, mido.Message]] = []
    for note in phrase.notes:
        on = round(note.onset_s * _TICKS_PER_S)
        off = round(note.end_s * _TICKS_PER_S)
        events.append((on, 2, mido.Message("note_on", channel=_CHANNEL, note=note.pitch, velocity=note.velocity)))
        events.append((off, 0, mido.Message("note_off", channel=_CHANNEL, note=note.pitch, velocity=0)))
    wheel = _bend_value(phrase.bend, phrase.bend_range)
    expression = np.clip(np.round(phrase.expression), 0, 127).astype(int)
    last_wheel = last_expr = None
    for k in range(phrase.bend.size):
        tick = k * ticks_per_frame
        if expression[k] != last_expr:
            events.append((tick, 1, cc(11, int(expression[k]))))
            last_expr = expression[k]
        if wheel[k] != last_wheel:
            events.append((tick, 1, mido.Message("pitchwheel", channel=_CHANNEL, pitch=int(wheel[k]))))
            last_wheel = wheel[k]
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack(setup)
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = max(round(phrase.seconds * _TICKS_PER_S), now)
    track.append(cc(68, 0).copy(time=end - now))
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def reference_f0(
    phrase: Phrase, frame_rate: float, num_frames: int | None = None, delay_s: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The pitch the rendered phrase should have: `f0_hz [frames]` and `voiced [frames]`.

    Frame `i` describes the instant `(i + 1) / frame_rate - delay_s` (s): frames end on
    their hop, as in docs/DSP.md, and `delay_s` is an analyser's delay. The sounding note
    is the latest one started and not yet released (a slur switches at the next onset);
    its pitch plus the bend curve (held between control frames, as MIDI does) gives f0
    (A4 = 440 Hz). Frames in gaps, release tails included, are unvoiced with f0 = 0.
    `num_frames` defaults to `floor(phrase.seconds * frame_rate)`.
    """
    if num_frames is None:
        num_frames = int(math.floor(phrase.seconds * frame_rate + 1e-9))
    t = (np.arange(num_frames) + 1.0) / frame_rate - delay_s
    pitch = np.full(num_frames, np.nan)
    for note in phrase.notes:
        pitch[(t >= note.onset_s) & (t < note.end_s)] = note.pitch
    voiced = ~np.isnan(pitch)
    k = np.clip(np.floor(t * phrase.control_rate_hz + 1e-9).astype(int), 0, phrase.bend.size - 1)
    midi_pitch = np.where(voiced, pitch, 69.0) + phrase.bend[k]
    f0 = np.where(voiced, 440.0 * 2.0 ** ((midi_pitch - 69.0) / 12.0), 0.0)
    return f0, voiced
