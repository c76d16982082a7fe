"""One onnxruntime call for an ensemble's models: each model's own session against one stack.

    python -m bench.bench_stack [--frames 600]

An ensemble's control frame runs every part's model. For 4 and 8 factory models (the soak's
instruments, `bench.ensembles`) with 2 or 8 voices each, this times the frame's model calls
two ways: one `ModelRunner` per model (one onnxruntime call each, as before stacking) and
one `StackedRunner` (`timbrel.plugin.stacked_models`: one call). Each is timed on warm caches
(the frame's calls made twice, the second timed) and on cold ones (64 MB read before every frame, as the live process
meets them when the host's other tenants have used the shared cache since the last block).
The thread's own CPU µs per frame, gathering and scattering included; medians, the ways
interleaved frame by frame so that both see the same machine. Writes bench/results/stack.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.ensembles import INSTRUMENTS
from bench.report import report
from bench.soak import EVICT_BYTES
from timbrel.plugin.model_synth import ModelRunner, new_frame
from timbrel.plugin.stacked_models import StackedRunner
from timbrel.presets.build import load_preset


def frame_costs(models: int, voices: int, frames: int, evict: np.ndarray) -> dict[str, float]:
    """Median CPU µs per frame of `models` models × `voices` voices, alone and stacked, warm and cold."""
    loaded = [load_preset(name, voices=1).instrument.model for name in INSTRUMENTS[:models]]
    total = models * voices
    runners = [ModelRunner(model, total) for model in loaded]
    stack = StackedRunner(loaded, range(models), total)
    rng = np.random.default_rng(0)
    f0 = rng.uniform(100.0, 800.0, total).astype(np.float32)
    loudness = rng.uniform(-50.0, -10.0, total).astype(np.float32)
    ones, zeros = np.ones(total, np.float32), np.zeros(total, np.float32)
    gru = np.zeros((total, 128), np.float32)
    frame = new_frame(total, 64, 65)
    orders = np.arange(total, dtype=np.int64).reshape(models, voices)
    batches = np.zeros(models, dtype=np.int64)

    def alone() -> None:
        for r, runner in enumerate(runners):
            runner.run(orders[r], voices, f0, loudness, ones, zeros, ones, gru, frame)

    def stacked() -> None:
        batches[:] = voices
        stack.run(orders, batches, f0, loudness, ones, zeros, ones, gru, frame)

    times: dict[str, list[int]] = {f"{way} {cache}": [] for way in ("alone", "stacked") for cache in ("warm", "cold")}
    for _ in range(frames):
        for way, call in (("alone", alone), ("stacked", stacked)):
            for cache in ("warm", "cold"):
                if cache == "cold":
                    evict.sum()
                else:
                    call()  # the same frame just before: caches hold what this one touches
                began = time.thread_time_ns()
                call()
                times[f"{way} {cache}"].append(time.thread_time_ns() - began)
    return {name: float(np.median(ns)) / 1e3 for name, ns in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    evict = np.ones(EVICT_BYTES // 8)
    rows = []
    for models in (4, 8):
        for voices in (2, 8):
            cost = frame_costs(models, voices, args.frames, evict)
            rows.append({"models": models, "voices_each": voices,
                         **{f"{name} µs": round(value, 1) for name, value in cost.items()},
                         "stacked/alone warm": round(cost["stacked warm"] / cost["alone warm"], 2),
                         "stacked/alone cold": round(cost["stacked cold"] / cost["alone cold"], 2)})
    report("stack", rows, frames=args.frames,
           note="CPU µs per control frame of the models' calls (gather and scatter included), medians; "
                "cold: 64 MB read before each frame")


if __name__ == "__main__":
    main()
