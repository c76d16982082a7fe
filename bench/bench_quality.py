"""Resynthesis quality of a model on held-out recordings, through the live engine path.

    python -m bench.bench_quality MODEL.onnx HELD_OUT_DIR

Each recording is analysed with the training features (pitch, loudness), the model is run
frame by frame in onnxruntime and synthesised by the numba kernels, exactly as it plays
live (`plugin.model_synth.resynthesise`), and the result is analysed again
(`export.quality`). Reports the median absolute f0 error in cents (frames voiced in
both), the mean absolute loudness error in dB (frames above -70 dB in the input) and the
multi-scale spectral loss. Writes bench/results/quality-NAME.json.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.report import report
from export.dataset import Recording, analyse, find_audio, load_mono
from export.quality import pooled, recording_quality
from plugin.model import load_model
from plugin.model_synth import resynthesise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("held_out")
    args = parser.parse_args()
    model = load_model(args.model)
    info = model.info
    rows, figures = [], []
    for path in find_audio(args.held_out):
        audio = load_mono(path, info.sample_rate)
        audio = audio[: audio.size // info.hop * info.hop]
        recording = Recording(path.name, "", audio, *analyse(audio, info.sample_rate, info.hop))
        out = resynthesise(model, recording.f0_hz, recording.loudness_db)
        f = recording_quality(recording, out, info.sample_rate, info.hop)
        figures.append(f)
        rows.append({"file": path.name, "seconds": audio.size / info.sample_rate, **pooled([f]),
                     "f0_p95_cents": float(np.percentile(f["cents"], 95)), "voiced_agreement": f["voiced_agreement"]})
    if not rows:
        sys.exit(f"{args.held_out}: no audio files")
    rows.append({"file": "all", "seconds": float(sum(r["seconds"] for r in rows)), **pooled(figures)})
    report(f"quality-{info.name}", rows, model=info.name, provenance=info.provenance,
           targets={"f0_median_cents": 10, "loudness_l1_db": 3})


if __name__ == "__main__":
    main()
