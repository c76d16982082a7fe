"""Feature extractors against librosa's pYIN, on the signals the tests use, in one run.

Accuracy: raw pitch accuracy (RPA, share of reference-voiced frames within 50 cents) and
voicing false alarm (share of frames voiced on noise and silence). Each tracker is scored
against the reference at the instant its frames describe: timbrel's window centre
(`latency_samples / 2` before the frame end, causal) and pYIN's frame centre (pYIN, searching
50-2100 Hz, looks `frame_length / 2` samples ahead). Speed: CPU seconds per second of audio
(= real-time factor on one core), numba warmed up first. Also: timbrel's loudness against a
DDSP-style STFT loudness computed with librosa (offset at 1 kHz and deviations from it).

    python -m bench.bench_features          # needs librosa (a dev dependency)

Prints a table and writes bench/results/features.json. The "librosa" column is pYIN for
pitch and a DDSP-style STFT loudness for loudness.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np

from bench.report import report
from timbrel.engine.realtime.features import LoudnessMeter, PitchTracker, estimate_pitch, loudness_db

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_features import HOP, SR, raw_pitch_accuracy, render_fluidsynth, tone  # noqa: E402

PYIN_FRAME = 4096  # 85 ms at 48 kHz, the time span of librosa's default 2048 at 22.05 kHz
PYIN_FMAX = 2100.0  # at fmax = 2 kHz pYIN leaves a 2 kHz tone unvoiced; keep that edge out
INSTRUMENTS = {  # GM program: name, lowest and highest MIDI note (all within 50 Hz-2 kHz)
    73: ("flute", 60, 95), 71: ("clarinet", 50, 91), 56: ("trumpet", 55, 84),
    65: ("alto sax", 49, 81), 68: ("oboe", 58, 91), 57: ("trombone", 40, 72),
    40: ("violin", 55, 88), 41: ("viola", 48, 84), 42: ("cello", 36, 76),
    70: ("bassoon", 34, 72), 58: ("tuba", 33, 58), 52: ("choir aahs", 48, 79),
}


def midi_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def timbrel_track(audio: np.ndarray):
    """f0, confidence and the time (s) each frame describes."""
    f0, conf = estimate_pitch(audio, SR, HOP)
    latency = PitchTracker(SR, HOP).latency_samples
    times = ((np.arange(len(f0)) + 1) * HOP - latency / 2) / SR
    return f0, conf, times


def pyin_track(audio: np.ndarray):
    f0, voiced, _ = librosa.pyin(audio, fmin=50, fmax=PYIN_FMAX, sr=SR,
                                 frame_length=PYIN_FRAME, hop_length=HOP, center=True)
    return np.nan_to_num(f0), voiced.astype(float), np.arange(len(f0)) * HOP / SR


TRACKERS = {"timbrel": timbrel_track, "pyin": pyin_track}


def score(audio: np.ndarray, *references) -> list[dict[str, float]]:
    """RPA per tracker for each `reference(times) -> Hz` (0 where there is no reference)."""
    tracks = {name: track(audio) for name, track in TRACKERS.items()}
    return [{name: raw_pitch_accuracy(f0, conf, reference(times))
             for name, (f0, conf, times) in tracks.items()} for reference in references]


def mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    return {name: float(np.mean([row[name] for row in rows])) for name in TRACKERS}


def inside(f0_of, seconds: float, margin: float = 0.05):
    """Reference `f0_of(t)`, or 0 within `margin` s of either end."""
    return lambda t: np.where((t >= margin) & (t <= seconds - margin), f0_of(t), 0.0)


def synthetic_rows() -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Summary rows, and the per-frequency detail behind the steady-tone rows."""
    rows, detail = {}, {}
    for label, harmonics, low in [("sines 50 Hz-2 kHz", 1, 50), ("harmonic 55 Hz-2 kHz", 30, 55)]:
        per = {f"{f:.0f} Hz": score(tone(f, 0.5, harmonics=harmonics, seed=i),
                                    inside(lambda t, f=f: np.full_like(t, f), 0.5))[0]
               for i, f in enumerate(np.geomspace(low, 2000, 12))}
        rows[label] = mean_rows(list(per.values()))
        detail[label] = per
    seconds = np.log2(2000 / 50) * 2

    def glide(t):
        return 50 * 2 ** (t / 2)

    rows["glide 600 c/s, 50 Hz-2 kHz"] = score(tone(glide, seconds, harmonics=20),
                                               inside(glide, seconds))[0]
    per = []
    for centre in (110.0, 440.0, 1760.0):
        def vibrato(t, c=centre):
            return c * 2 ** (np.sin(2 * np.pi * 6 * t) / 12)
        per += score(tone(vibrato, 1.5, harmonics=20), inside(vibrato, 1.5))
    rows["vibrato 6 Hz +-1 st"] = mean_rows(per)
    return rows, detail


def fluidsynth_rows() -> dict[str, dict[str, float]]:
    parts = [(program, range(low, high + 1, 4)) for program, (_, low, high) in
             INSTRUMENTS.items()]
    with tempfile.TemporaryDirectory() as tmp:
        audio, spans = render_fluidsynth(Path(tmp), parts)
    references, k = [], 0
    for _, notes in parts:
        def reference(times, mine=spans[k:k + len(notes)]):
            ref = np.zeros(len(times))
            for start, stop, note in mine:
                ref[(times >= start + 0.05) & (times <= stop - 0.05)] = midi_hz(note)
            return ref
        references.append(reference)
        k += len(notes)
    scores = score(audio, *references)
    return {f"FluidR3 {INSTRUMENTS[program][0]}": row for (program, _), row in zip(parts, scores)}


def false_alarms() -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    signals = {"white noise -20 dBFS": (0.1 * rng.standard_normal(5 * SR)).astype(np.float32),
               "silence": np.zeros(2 * SR, np.float32)}
    return {label: {name: float(np.mean(track(audio)[1] > 0)) for name, track in
                    TRACKERS.items()} for label, audio in signals.items()}


def cpu_per_second(run, seconds: float, repeats: int = 3) -> float:
    """Best CPU time (s) of `run()` over `repeats`, per second of audio."""
    best = np.inf
    for _ in range(repeats):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best / seconds


def stream_blocks(meter, audio: np.ndarray, block: int = 256) -> None:
    for start in range(0, len(audio), block):
        meter.process(audio[start:start + block])


def speed() -> list[dict]:
    """CPU s per s of audio on a 10 s harmonic glide; librosa's column: pYIN, STFT loudness."""
    seconds = 10.0
    audio = tone(lambda t: 80 * 2 ** (t / 3), seconds, harmonics=20)
    estimate_pitch(audio[:SR], SR, HOP)
    loudness_db(audio[:SR], SR, HOP)
    return [
        {"signal": "pitch, whole file",
         "timbrel": cpu_per_second(lambda: estimate_pitch(audio, SR, HOP), seconds),
         "librosa": cpu_per_second(lambda: pyin_track(audio), seconds, repeats=1)},
        {"signal": "pitch, 256-sample blocks",
         "timbrel": cpu_per_second(lambda: stream_blocks(PitchTracker(SR, HOP), audio), seconds)},
        {"signal": "loudness, whole file",
         "timbrel": cpu_per_second(lambda: loudness_db(audio, SR, HOP), seconds),
         "librosa": cpu_per_second(lambda: ddsp_loudness(audio), seconds)},
        {"signal": "loudness, 256-sample blocks",
         "timbrel": cpu_per_second(lambda: stream_blocks(LoudnessMeter(SR, HOP), audio),
                                   seconds)},
    ]


def ddsp_loudness(audio: np.ndarray, n_fft: int = 2048) -> np.ndarray:
    """DDSP's definition: mean over bins of the A-weighted power of a centred Hann STFT, dB."""
    power = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=HOP, center=True)) ** 2
    with np.errstate(divide="ignore"):
        a_db = librosa.A_weighting(librosa.fft_frequencies(sr=SR, n_fft=n_fft))
    weights = 10 ** (a_db / 10)
    return 10 * np.log10(np.maximum((power * weights[:, None]).mean(axis=0), 1e-8))


def loudness_agreement() -> dict:
    """timbrel minus DDSP-style loudness (dB, median over steady frames) per signal.

    The offset is taken at 1 kHz, where A-weighting is 0 dB in both.
    """
    t = np.arange(SR) / SR
    signals = {f"sine {f} Hz {20 * np.log10(level):.0f} dB": level * np.sin(2 * np.pi * f * t)
               for f in (60, 100, 300, 1000, 3000, 6000) for level in (1.0, 0.01)}
    signals["white noise -20 dB"] = 0.1 * np.random.default_rng(1).standard_normal(SR)
    differences = {}
    for label, audio in signals.items():
        audio = audio.astype(np.float32)
        mine = loudness_db(audio, SR, HOP)
        theirs = ddsp_loudness(audio)[1:len(mine) + 1]
        differences[label] = float(np.median(mine[30:-30] - theirs[30:-30]))
    offset = differences["sine 1000 Hz 0 dB"]
    return {"offset_db": offset,
            "max_deviation_db": max(abs(d - offset) for d in differences.values()),
            "difference_db": differences}


def main() -> None:
    accuracy, detail = synthetic_rows()
    accuracy.update(fluidsynth_rows())
    latency = PitchTracker(SR, HOP).latency_samples
    rows = [{"measure": "RPA", "signal": label, "timbrel": row["timbrel"],
             "librosa": row["pyin"]} for label, row in accuracy.items()]
    rows += [{"measure": "voicing false alarm", "signal": label, "timbrel": row["timbrel"],
              "librosa": row["pyin"]} for label, row in false_alarms().items()]
    rows += [{"measure": "CPU s / s of audio", **row} for row in speed()]
    rows.append({"measure": "window (ms)", "signal": "pitch at 48 kHz",
                 "timbrel": 1000 * latency / SR, "librosa": 1000 * PYIN_FRAME / SR})
    agreement = loudness_agreement()
    report("features", rows, sample_rate=SR, hop=HOP,
           librosa={"version": librosa.__version__, "pyin_frame_length": PYIN_FRAME,
                    "pyin_fmin": 50.0, "pyin_fmax": PYIN_FMAX},
           timbrel_latency_samples=latency, rpa_per_frequency=detail,
           loudness_vs_ddsp_stft=agreement)
    print(f"timbrel's window is causal; pYIN's frame is centred ({500 * PYIN_FRAME / SR:.1f} ms "
          "look-ahead).")
    print(f"loudness minus DDSP-style STFT loudness (n_fft 2048): {agreement['offset_db']:+.2f} dB "
          f"at 1 kHz, within {agreement['max_deviation_db']:.2f} dB of that over sines "
          "60 Hz-6 kHz at 0 and -40 dB and white noise (per signal in the JSON).")


if __name__ == "__main__":
    main()
