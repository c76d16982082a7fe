"""Live transfer: latency against accuracy, per pitch floor and block size, and soft tails.

    python -m bench.bench_transfer [--floors 60,100,200] [--blocks 128,64] [--label NAME]

Everything runs offline through the live path (`render_audio`: `TimbreTransfer.process`
block by block, the shipped violin model), with the measures of tests/transfer_measures.py:

- **first response** (ms): a sung-like tone starts; when is the output first within 40 dB of
  its held level? Eight onsets spread over a hop (0 … 140 samples after a hop boundary):
  mean and worst, and the same plus the interface's two blocks (input and output).
- **pitch lag** (ms): the lag at which the output's pitch best follows the input's, on
  sung-like glides with vibrato in three registers; plus two blocks.
- **RPA**: the output's raw pitch accuracy (the pitch the instrument plays, 50 cents) on
  FluidR3 wind phrases and on the glides; over notes, and over notes and their release
  tails down to -60 dB under the phrase's peak (clean, and with white noise at -70 dBFS);
  and on a synthetic voice (espeak-ng, a sung-like English line), against librosa's pYIN
  of the same input (voiced frames 30 ms clear of its voicing edges).
- **CPU**: `Engine.process` per 128-sample block on a sung glide (median and p99, µs).

A floor applies to the inputs above it only (a 200 Hz floor is for flute, oboe, trumpet and
high voices). `--label before` with the previous state's plugin checked out measures the
state before this change with the same code (the parameters it lacks are left alone).
Writes bench/results/transfer.json (or transfer-LABEL.json).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.report import report
from tests.transfer_measures import (
    HOP,
    SR,
    WIND,
    WIND_NOTES,
    first_response_ms,
    glide_reference,
    output_rpa,
    pitch_lag_ms,
    reference,
    render_wind,
    sung_glide,
    transfer,
)
from timbrel.engine.realtime.host import Engine
from timbrel.plugin.model import load_model
from timbrel.plugin.transfer import PARAMETERS, TimbreTransfer
from timbrel.presets import default_model

ONSET_HZ = (110.0, 147.0, 220.0, 440.0, 880.0)
PHASES = range(0, 160, 20)
GLIDES = {"sung low (110-220 Hz)": (45, 57), "sung high (220-440 Hz)": (57, 69), "ocarina (520-1050 Hz)": (72, 84)}
NOISE_DBFS = -70.0


def settings_of(floor: float | None) -> dict:
    """Plugin parameters for a floor (None: the plugin's defaults, e.g. a state without floors)."""
    known = {p.id for p in PARAMETERS}
    return {"pitch_floor_hz": floor} if floor is not None and "pitch_floor_hz" in known else {}


def lowest_hz(notes) -> float:
    return 440.0 * 2 ** ((min(notes) - 69) / 12)


def latency_rows(model, floors, blocks) -> list[dict]:
    rows = []
    for floor in floors:
        for block in blocks:
            for f0 in ONSET_HZ:
                if floor is not None and f0 < floor:
                    continue
                times = [first_response_ms(model, f0, 0.5 + phase / SR, block, **settings_of(floor)) for phase in PHASES]
                two = 2000 * block / SR
                rows.append({"measure": "first response", "floor_hz": floor or "default", "block": block,
                             "input": f"{f0:g} Hz tone", "mean_ms": float(np.mean(times)),
                             "worst_ms": float(np.max(times)), "mean_with_io_ms": float(np.mean(times)) + two,
                             "worst_with_io_ms": float(np.max(times)) + two})
    return rows


def glide_rows(model, floors, blocks) -> list[dict]:
    rows = []
    for label, (low, high) in GLIDES.items():
        audio, f0 = sung_glide(low, high)
        for floor in floors:
            if floor is not None and 440.0 * 2 ** ((low - 0.3 - 69) / 12) < floor:
                continue
            for block in blocks:
                out, controls, plugin = transfer(model, audio, block, **settings_of(floor))
                lag = pitch_lag_ms(audio, out)
                rpa = output_rpa(controls, glide_reference(f0, len(controls), plugin.latency_samples - HOP))
                rows.append({"measure": "pitch lag", "floor_hz": floor or "default", "block": block, "input": label,
                             "lag_ms": lag, "lag_with_io_ms": lag + 2000 * block / SR, "rpa": rpa})
    return rows


def espeak_voice() -> np.ndarray:
    """A synthetic voice (espeak-ng, female, about 160-360 Hz) at 48 kHz `[samples]`, peak 0.5."""
    import soundfile
    import soxr

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "voice.wav"
        subprocess.run(["espeak-ng", "-v", "en+f3", "-p", "60", "-s", "110", "-w", str(path),
                        "Sing a song of sixpence, a pocket full of rye. Oh, la la, how lovely."], check=True)
        audio, rate = soundfile.read(path)
    audio = soxr.resample(audio, rate, SR)
    return (0.5 * audio / np.abs(audio).max()).astype(np.float32)


def voice_rows(model, floors, blocks) -> list[dict]:
    """Lag and RPA on the espeak-ng voice; the reference is pYIN (centred frames, non-causal)."""
    import librosa

    audio = espeak_voice()
    f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=1000, sr=SR, frame_length=4096, hop_length=HOP)
    edge = int(0.03 * SR / HOP)
    clear = voiced & np.array([voiced[max(0, i - edge) : i + edge + 1].all() for i in range(voiced.size)])
    rows = []
    for floor in floors:
        if floor is not None and floor > 150:
            continue
        for block in blocks:
            out, controls, plugin = transfer(model, audio, block, **settings_of(floor))
            at = (np.arange(len(controls)) * HOP - (plugin.latency_samples - HOP)) // HOP
            ref = np.where((at >= 0) & (at < f0.size), np.nan_to_num(f0[np.clip(at, 0, f0.size - 1)]), 0.0)
            ref[~clear[np.clip(at, 0, f0.size - 1)]] = 0.0
            lag = pitch_lag_ms(audio, out)
            rows.append({"measure": "voice", "floor_hz": floor or "default", "block": block,
                         "input": "espeak-ng voice (160-360 Hz)", "lag_ms": lag,
                         "lag_with_io_ms": lag + 2000 * block / SR, "rpa": output_rpa(controls, ref)})
    return rows


def wind_rows(model, floors) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    phrases = {program: render_wind(program, WIND_NOTES[program], gap_s=0.8) for program in WIND}
    noise = {program: (10 ** (NOISE_DBFS / 20) * rng.standard_normal(audio.size)).astype(np.float32)
             for program, (audio, _) in phrases.items()}
    for floor in floors:
        for program, (audio, spans) in phrases.items():
            if floor is not None and lowest_hz(WIND_NOTES[program]) * 2 ** (-0.5 / 12) < floor:
                continue
            row = {"measure": "RPA", "floor_hz": floor or "default", "block": 128, "input": f"FluidR3 {WIND[program]}"}
            for suffix, signal in (("", audio), ("_noisy", audio + noise[program])):
                _, controls, plugin = transfer(model, signal, 128, **settings_of(floor))
                delay = plugin.latency_samples - HOP
                row[f"rpa_notes{suffix}"] = output_rpa(controls, reference(signal, spans, len(controls), delay, None))
                row[f"rpa_to_-60dB{suffix}"] = output_rpa(controls, reference(signal, spans, len(controls), delay, 60.0))
            rows.append(row)
    return rows


def cpu_row(model, seconds: float = 10.0) -> dict:
    """`Engine.process` time per 128-sample block of live transfer, on a sung glide."""
    audio, _ = sung_glide(50, 70, seconds)
    engine = Engine(SR, 2048)
    engine.load(TimbreTransfer(model))
    out = np.zeros((128, 2), dtype=np.float32)
    times = np.empty(audio.size // 128)
    for b in range(times.size):
        block = audio[b * 128 : (b + 1) * 128]
        t0 = time.perf_counter_ns()
        engine.process(block, out)
        times[b] = (time.perf_counter_ns() - t0) * 1e-3
    return {"measure": "CPU per block", "block": 128, "input": "sung glide", "median_us": float(np.median(times)),
            "p99_us": float(np.percentile(times, 99)), "core_share_mean": float(times.mean() / (1e6 * 128 / SR))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floors", default="60,100,200", help="pitch floors (Hz) to measure, comma separated, "
                        "or 'default' for the plugin's own")
    parser.add_argument("--blocks", default="128,64", help="block sizes (samples)")
    parser.add_argument("--label", default="", help="suffix of the results file (e.g. before)")
    args = parser.parse_args()
    floors = [None if f == "default" else float(f) for f in args.floors.split(",")]
    blocks = [int(b) for b in args.blocks.split(",")]
    model = load_model(default_model())
    began = time.process_time()
    rows = latency_rows(model, floors, blocks) + glide_rows(model, floors, blocks) + voice_rows(model, floors, blocks)
    rows += wind_rows(model, floors)
    rows.append(cpu_row(model))
    name = f"transfer-{args.label}" if args.label else "transfer"
    report(name, rows, sample_rate=SR, hop=HOP, model=model.info.name, noise_dbfs=NOISE_DBFS,
           onset_phases_samples=list(PHASES), cpu_s=time.process_time() - began,
           targets={"first response with two 128-sample blocks, inputs above 200 Hz (ms)": 12,
                    "first response with two 128-sample blocks, inputs above 100 Hz (ms)": 18,
                    "RPA to -60 dB, FluidR3 wind": 0.97})


if __name__ == "__main__":
    main()
