"""Resynthesis quality of a model on held-out recordings, through the live engine path.

    python -m bench.bench_quality MODEL.onnx HELD_OUT_DIR

Each recording is resynthesised exactly as it plays live (`timbrel.export.quality.heldout_quality`).
Reports the median absolute f0 error in cents (frames voiced in
both), the mean absolute loudness error in dB (frames above -70 dB in the input) and the
multi-scale spectral loss. Writes bench/results/quality-NAME.json.
"""

from __future__ import annotations

import argparse
import sys

from bench.report import report
from timbrel.export.quality import heldout_quality
from timbrel.plugin.model import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("held_out")
    args = parser.parse_args()
    info = load_model(args.model).info
    rows, total = heldout_quality(args.model, args.held_out)
    if not rows:
        sys.exit(f"{args.held_out}: no audio files")
    rows.append({"file": "all", "seconds": float(sum(r["seconds"] for r in rows)), **total})
    report(f"quality-{info.name}", rows, model=info.name, provenance=info.provenance,
           targets={"f0_median_cents": 10, "loudness_l1_db": 3})


if __name__ == "__main__":
    main()
