"""Note expression and learned playing styles: their cost on the audio thread, whether a
learned vibrato comes back out of a bare MIDI note, and whether styled notes come closer to
a real performance than the plain ADSR.

    python -m bench.bench_expression [--seconds 120] [--phrases 3]

1. **cost**: `expression.expression_frame` for 16 and 64 sounding voices of the factory
   flute (styled), CPU time per voice per control frame;
2. **style recovery**: flute material rendered twice by the phrase generator with
   different vibratos (4.5 Hz ± 15 cents and 6.5 Hz ± 50 cents, `timbrel data --vibrato`),
   a style fitted on each (`timbrel style`), then a bare held E5 played with each style
   through the live path; its vibrato is measured on the audio by the pitch tracker. The
   source's depth is the generator's mean (it draws each note's depth from 0.6 to 1.2 times
   the nominal one);
3. **phrases**: held-out expressive phrases (generator seed 2) of flute and violin, rendered
   by FluidR3 with all their bends and dynamics (the reference), and their bare notes (pitch,
   velocity, on and off; nothing else) played by timbrel with the factory model's style and
   without it (`style_amount` 0, the plain ADSR). All three are analysed by the same pitch and
   loudness extractors (`export.dataset.analyse`); inside the notes: the pitch-shape distance
   (Wasserstein-1 between the distributions of each frame's deviation from its note's median
   pitch, cents), the loudness-shape distance (the same for loudness, dB) and the
   multi-scale spectral distance (log magnitudes, FFT sizes 2048 to 256). Lower is closer.
   The shapes are compared as distributions, not frame by frame: a vibrato's phase and a
   wander's path are random in any performance, so two takes of the same style differ frame
   by frame as much as a flat note does. The quantiles run from 5 to 95 %, so that the
   tracker's rare octave errors do not decide the distance.

Writes bench/results/expression.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from bench.report import report
from timbrel.engine.realtime.events import NOTE_OFF, NOTE_ON
from timbrel.engine.realtime.features import estimate_pitch
from timbrel.engine.realtime.host import Engine
from timbrel.engine.render import render_events
from timbrel.export.dataset import analyse
from timbrel.export.fluidsynth import generate_dataset
from timbrel.export.phrases import Phrase
from timbrel.export.style import style_of_folder, write_style
from timbrel.plugin import expression
from timbrel.plugin import voice_allocation as va
from timbrel.plugin.instrument import MidiInstrument
from timbrel.plugin.model import load_model
from timbrel.presets.folders import factory_models_dir

SR, HOP, FRAME_RATE = 48000, 160, 300
SOURCES = ((4.5, 15.0), (6.5, 50.0))
GENERATOR_DEPTH = 0.9
"""The phrase generator's mean depth as a share of its nominal one (uniform 0.6 to 1.2)."""


def cost(model, voices: int, calls: int = 3000) -> float:
    """CPU µs per voice per control frame of `expression_frame`, every voice sounding."""
    instrument = MidiInstrument(model, voices=voices)
    instrument.prepare(SR, 128)
    instrument.handle(np.array([NOTE_ON | (40 + v) << 8 | 90 << 16 for v in range(voices)], dtype=np.int32))
    s = instrument
    sources = s._frame_sources[len(va.FRAME_SOURCES):]

    def frame():
        expression.expression_frame(s._ints[va.STATE], s._ints[va.AGE], s._floats[va.PITCH], s._floats[va.VELOCITY],
                                    1.0, 0.0, s._floats[va.VIBRATO_PHASE], s._floats[va.BEND_ST], s._style,
                                    s.params.values, sources, 1 / FRAME_RATE, s._notes)

    for _ in range(100):
        frame()
    start = time.thread_time_ns()
    for _ in range(calls):
        frame()
    return (time.thread_time_ns() - start) / calls / voices / 1e3


def play_notes(model, events: list[tuple[float, int]], seconds: float, **params) -> np.ndarray:
    """Mono float64 audio of timed packed MIDI played by `model` through the live path."""
    instrument = MidiInstrument(model)
    for key, value in params.items():
        instrument.params.set(key, value)
    return render_events(Engine(SR, 128), instrument, events, seconds, 128)[:, 0].astype(np.float64)


def vibrato(audio: np.ndarray, note: int) -> tuple[float, float]:
    """Rate (Hz) and depth (cents, peak) of the sinusoid that best fits the pitch of `audio`."""
    f0, confidence = estimate_pitch(audio.astype(np.float32), SR, HOP)
    voiced = confidence > 0
    cents = 1200 * np.log2(f0[voiced] / (440 * 2 ** ((note - 69) / 12)))
    t = np.flatnonzero(voiced) / FRAME_RATE
    residual = cents - np.polyval(np.polyfit(t, cents, 1), t)
    rates = np.arange(2.0, 10.0, 0.01)
    power = np.abs(np.exp(-2j * np.pi * rates[:, None] * t[None, :]) @ residual)
    return float(rates[np.argmax(power)]), 2 * float(power.max()) / t.size


def recovery(flute: Path, seconds: float, work: Path) -> list[dict]:
    rows = []
    note = 76
    for rate_hz, cents in SOURCES:
        folder = work / f"flute-{rate_hz:g}hz-{cents:g}c"
        generate_dataset("flute", seconds, 3, folder, vibrato=(rate_hz, cents))
        style = style_of_folder(flute, folder)
        styled = work / f"flute-{rate_hz:g}.onnx"
        write_style(flute, style, styled)
        audio = play_notes(load_model(styled), [(0.0, NOTE_ON | note << 8 | 90 << 16)], 3.0, reverb_mix=0.0)
        played_rate, played_depth = vibrato(audio[int(1.2 * SR) : int(2.9 * SR)], note)
        source_depth = GENERATOR_DEPTH * cents
        rows.append({"source": f"{rate_hz:g} Hz, {cents:g} cents", "notes_measured": style["notes"],
                     "played_rate_hz": played_rate, "source_rate_hz": rate_hz,
                     "rate_error_hz": played_rate - rate_hz, "played_depth_cents": played_depth,
                     "source_depth_cents": source_depth, "depth_error": played_depth / source_depth - 1,
                     "within_0.5_hz_and_30_pct": abs(played_rate - rate_hz) <= 0.5
                     and abs(played_depth / source_depth - 1) <= 0.3})
    return rows


def note_events(phrase: Phrase) -> list[tuple[float, int]]:
    events = []
    for n in phrase.notes:
        events.append((n.onset_s, NOTE_ON | n.pitch << 8 | n.velocity << 16))
        events.append((n.onset_s + n.duration_s, NOTE_OFF | n.pitch << 8))
    return sorted(events, key=lambda e: (e[0], e[1] & 0xF0 == NOTE_ON))


def shapes(audio: np.ndarray, phrase: Phrase) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame deviations from each note's median: pitch (cents, voiced frames) and
    loudness (dB), over the notes from 50 ms after their onsets."""
    f0, loudness, voiced = analyse(audio.astype(np.float32), SR, HOP)
    deviations, curves = [], []
    for n in phrase.notes:
        a, b = int((n.onset_s + 0.05) * FRAME_RATE), int((n.onset_s + n.duration_s) * FRAME_RATE)
        b = min(b, f0.size)
        if b - a < 10:
            continue
        frames = np.arange(a, b)
        good = voiced[frames]
        if good.sum() > 5:
            cents = 1200 * np.log2(f0[frames][good] / 440.0)
            deviations.append(cents - np.median(cents))
        curves.append(loudness[a:b] - np.median(loudness[a:b]))
    return (np.concatenate(deviations) if deviations else np.zeros(0)), np.concatenate(curves)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    q = np.linspace(0.05, 0.95, 181)
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    total = 0.0
    for size in (2048, 1024, 512, 256):
        window = np.hanning(size)
        frames = (n - size) // (size // 4)
        idx = np.arange(size)[None, :] + (size // 4) * np.arange(frames)[:, None]
        sa = np.abs(np.fft.rfft(a[:n][idx] * window, axis=1))
        sb = np.abs(np.fft.rfft(b[:n][idx] * window, axis=1))
        total += float(np.mean(np.abs(np.log(sa + 1e-5) - np.log(sb + 1e-5))))
    return total / 4


def phrases(instrument: str, count: int, work: Path) -> list[dict]:
    folder = work / f"{instrument}-heldout"
    generate_dataset(instrument, 20.0 * count, 2, folder)
    model = load_model(factory_models_dir() / f"{instrument}.onnx")
    rows = []
    for wav in sorted(folder.glob("*.wav")):
        phrase = Phrase.from_dict(json.loads(wav.with_suffix(".json").read_text()))
        real, _ = soundfile.read(wav, dtype="float64")
        real = real if real.ndim == 1 else real.mean(axis=1)
        events = note_events(phrase)
        real_dev, real_curves = shapes(real, phrase)
        row = {"instrument": instrument, "phrase": wav.stem}
        for label, amount in (("plain", 0.0), ("styled", 1.0)):
            audio = play_notes(model, events, phrase.seconds, style_amount=amount)
            dev, curves = shapes(audio, phrase)
            row[f"pitch_shape_cents_{label}"] = wasserstein(real_dev, dev)
            row[f"loudness_shape_db_{label}"] = wasserstein(real_curves, curves)
            row[f"spectral_{label}"] = spectral_distance(real, audio)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="material rendered per source vibrato, s")
    parser.add_argument("--phrases", type=int, default=3, help="held-out phrases per instrument")
    args = parser.parse_args()
    flute = factory_models_dir() / "flute.onnx"
    model = load_model(flute)
    rows = [{"part": "cost", "voices": v, "us_per_voice_per_frame": cost(model, v)} for v in (16, 64)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows += [{"part": "style recovery", **r} for r in recovery(flute, args.seconds, work)]
        for instrument in ("flute", "violin"):
            found = phrases(instrument, args.phrases, work)
            rows += [{"part": "phrases", **r} for r in found]
            mean = {k: float(np.mean([r[k] for r in found])) for k in found[0] if k not in ("instrument", "phrase")}
            rows.append({"part": "phrases, mean", "instrument": instrument, **mean})
    report("expression", rows)


if __name__ == "__main__":
    main()
