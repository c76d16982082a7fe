"""The factory library: model size, cost per voice, held-out quality, and preset switch time.

    python -m bench.bench_presets [--seconds S]

For each factory model: its file size, the engine's block time with 16 held voices (as
`bench.bench_engine` measures it), and the held-out quality its presets quote. Then the
time a live switch takes off the audio thread (preset read, model load, chain prepare),
with the model loaded for the first time and again from the session's cache. Writes
bench/results/presets.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.bench_engine import BUDGET_S, time_midi
from bench.report import report
from timbrel.plugin.model import load_model
from timbrel.presets.library import Library
from timbrel.session import Session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    library = Library()
    presets = [p for p in library.list() if p.factory]
    by_model = {}
    for preset in presets:
        by_model.setdefault(preset.model_file, preset)
    rows = []
    for model_file, preset in by_model.items():
        times = time_midi(load_model(preset.model_path), 16, args.seconds)
        rows.append({"model": model_file, "megabytes": preset.model_path.stat().st_size / 1e6,
                     "core_share_16_voices_pct": 100 * float(np.mean(times)) / BUDGET_S,
                     "p99_block_pct": 100 * float(np.percentile(times, 99)) / BUDGET_S,
                     "f0_median_cents": preset.quality.get("f0_median_cents"),
                     "loudness_l1_db": preset.quality.get("loudness_l1_db"),
                     "spectral_loss": preset.quality.get("spectral_loss"),
                     "presets": ", ".join(p.name for p in presets if p.model_file == model_file)})
    session = Session(library=library, voices=16)
    first, cached = [], []
    for preset in presets:
        if preset.mode != "midi":
            continue
        for into in (first, cached):
            t0 = time.perf_counter()
            session.load(preset.name, wait=True)
            into.append(time.perf_counter() - t0)
        session.models.clear()
    session.close()
    rows.append({"model": "switch, model loaded afresh", "switch_ms_median": 1000 * float(np.median(first)),
                 "switch_ms_max": 1000 * float(np.max(first))})
    rows.append({"model": "switch, model from the session's cache", "switch_ms_median": 1000 * float(np.median(cached)),
                 "switch_ms_max": 1000 * float(np.max(cached))})
    report("presets", rows, presets=len(presets), models=len(by_model),
           targets={"megabytes": 2.0, "core_share_16_voices_pct": 25})


if __name__ == "__main__":
    main()
