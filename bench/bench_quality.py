"""Resynthesis quality of a model on held-out recordings, through the live engine path.

    python -m bench.bench_quality MODEL.onnx HELD_OUT_DIR

Each recording is analysed with the training features (pitch, loudness), the model is run
frame by frame in onnxruntime and synthesised by the numba kernels, exactly as it plays
live, and the result is analysed again. Reports the median absolute f0 error in cents
(frames voiced in both), the mean absolute loudness error in dB (frames above -70 dB in
the input) and the multi-scale spectral loss. Writes bench/results/quality-NAME.json.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.report import report
from engine.dsp import SynthBank, reverb
from export.dataset import analyse, find_audio, load_mono
from plugin.model import load_model

LOUDNESS_FLOOR_DB = -70.0


def resynthesise(model, f0_hz: np.ndarray, loudness_db: np.ndarray) -> np.ndarray:
    """One voice through onnxruntime and the engine's kernels; float32 `[frames * hop]`."""
    info = model.info
    bank = SynthBank(1, info.harmonics, info.noise_bands, info.sample_rate, info.hop)
    bank.start_voice(0)
    state = np.zeros((1, info.hidden), np.float32)
    amp, dist, noise, state = model.step(f0_hz[None].astype(np.float32), loudness_db[None].astype(np.float32), state)
    out = np.zeros(f0_hz.size * info.hop)
    f0 = f0_hz.astype(np.float32)
    for i in range(f0_hz.size):
        bank.process(out[i * info.hop : (i + 1) * info.hop], f0[i : i + 1], amp[:, i], dist[:, i], noise[:, i])
    return reverb(out, model.reverb_ir, 1.0)


def spectral_loss(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """The training loss (multi-scale L1 on linear and log magnitude), in NumPy."""
    total = 0.0
    for base in (2048, 1024, 512, 256, 128, 64):
        n = base * sample_rate // 16000 // 2 * 2
        window = np.hanning(n + 1)[:-1]
        hop = n // 4
        frames = 1 + (a.size - n) // hop
        if frames < 1:
            continue
        idx = np.arange(n)[None, :] + hop * np.arange(frames)[:, None]
        pa = np.abs(np.fft.rfft(a[idx] * window))
        pb = np.abs(np.fft.rfft(b[idx] * window))
        total += np.mean(np.abs(pa - pb)) + np.mean(np.abs(np.log(pa + 1e-5) - np.log(pb + 1e-5)))
    return float(total)


def evaluate(model, folder) -> list[dict]:
    info = model.info
    rows = []
    for path in find_audio(folder):
        audio = load_mono(path, info.sample_rate)
        audio = audio[: audio.size // info.hop * info.hop]
        f0, ld, voiced = analyse(audio, info.sample_rate, info.hop)
        out = resynthesise(model, f0, ld).astype(np.float32)
        f0_out, ld_out, voiced_out = analyse(out, info.sample_rate, info.hop)
        both = voiced & voiced_out
        cents = 1200 * np.abs(np.log2(f0_out[both] / f0[both]))
        audible = ld > LOUDNESS_FLOOR_DB
        rows.append({
            "file": path.name,
            "seconds": audio.size / info.sample_rate,
            "f0_median_cents": float(np.median(cents)),
            "f0_p95_cents": float(np.percentile(cents, 95)),
            "voiced_agreement": float(np.mean(voiced == voiced_out)),
            "loudness_l1_db": float(np.mean(np.abs(ld_out[audible] - ld[audible]))),
            "spectral_loss": spectral_loss(out.astype(np.float64), audio.astype(np.float64), info.sample_rate),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("held_out")
    args = parser.parse_args()
    model = load_model(args.model)
    rows = evaluate(model, args.held_out)
    if not rows:
        sys.exit(f"{args.held_out}: no audio files")
    weights = np.array([r["seconds"] for r in rows])
    pooled = {k: float(np.average([r[k] for r in rows], weights=weights))
              for k in ("f0_median_cents", "loudness_l1_db", "spectral_loss")}
    rows.append({"file": "all (weighted by length)", "seconds": float(weights.sum()), **pooled})
    report(f"quality-{model.info.name}", rows, model=model.info.name, provenance=model.info.provenance,
           targets={"f0_median_cents": 10, "loudness_l1_db": 3})


if __name__ == "__main__":
    main()
