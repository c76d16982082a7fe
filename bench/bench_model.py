"""Model costs: training step time, and onnxruntime time per control frame.

    python -m bench.bench_model [--steps N] [--model PATH]

Training: one optimiser step (decoder, torch synth, reverb, multi-scale spectral loss,
backward) at the default size, batch 8 of 1 s clips at 48 kHz, on the CPU threads torch
chooses. Inference: one frame for 1 and 16 voices through a preallocated IO binding, as
the engine runs it, and through plain `session.run` for comparison. Writes
bench/results/model.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.report import report
from timbrel.plugin.model import load_model
from timbrel.presets import default_model


def time_training(steps: int) -> np.ndarray:
    import torch

    from timbrel.export.loss import SpectralLoss
    from timbrel.export.model import ModelConfig, TimbreNetwork

    torch.manual_seed(0)
    config = ModelConfig()
    model = TimbreNetwork(config)
    loss_fn = SpectralLoss(config.sample_rate)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    frames = config.frame_rate
    f0 = 200 * 2 ** (torch.rand(8, 1) * 2) * torch.ones(8, frames)
    ld = -60 + 50 * torch.rand(8, frames)
    target = 0.1 * torch.randn(8, frames * config.hop)
    times = []
    for step in range(steps + 2):
        t0 = time.perf_counter()
        loss = loss_fn(model(f0, ld), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step >= 2:
            times.append(time.perf_counter() - t0)
    return np.array(times)


def time_frames(model, voices: int, frames: int = 2000, gap_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame seconds through an IO binding and through `session.run`; with `gap_s` the
    thread sleeps that long before each call, as an audio thread sleeps between blocks."""
    info = model.info
    f0 = np.full((voices, 1), 220.0, np.float32)
    ld = np.full((voices, 1), -30.0, np.float32)
    state = np.zeros((voices, info.hidden), np.float32)
    outs = (np.zeros((voices, 1), np.float32), np.zeros((voices, 1, info.harmonics), np.float32),
            np.zeros((voices, 1, info.noise_bands), np.float32), np.zeros((voices, info.hidden), np.float32))
    binding = model.session.io_binding()
    for name, array in zip(("f0_hz", "loudness_db", "state"), (f0, ld, state)):
        binding.bind_input(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
    for name, array in zip(("amplitude", "harmonic_distribution", "noise_magnitudes", "new_state"), outs):
        binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
    bound, plain = np.empty(frames), np.empty(frames)
    for _ in range(50):
        model.session.run_with_iobinding(binding)
        model.step(f0, ld, state)
    for i in range(frames):
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter_ns()
        model.session.run_with_iobinding(binding)
        bound[i] = (time.perf_counter_ns() - t0) * 1e-9
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter_ns()
        model.step(f0, ld, state)
        plain[i] = (time.perf_counter_ns() - t0) * 1e-9
    return bound, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps to time")
    parser.add_argument("--model", default=str(default_model()))
    args = parser.parse_args()

    model = load_model(args.model)
    rows = []
    block_s = 128 / 48000
    for voices in (1, 16):
        bound, plain = time_frames(model, voices)
        asleep, _ = time_frames(model, voices, frames=600, gap_s=block_s)
        for label, times in (("onnxruntime frame, IO binding (engine)", bound), ("onnxruntime frame, session.run", plain),
                             ("onnxruntime frame, IO binding, one call per block period (as live)", asleep)):
            rows.append({"measure": label, "voices": voices, "median_us": float(np.median(times)) * 1e6,
                         "p99_us": float(np.percentile(times, 99)) * 1e6,
                         "core_share_at_300_fps": float(np.median(times)) * model.info.frame_rate})
    steps = time_training(args.steps)
    rows.append({"measure": "training step (batch 8 x 1 s, 48 kHz)", "voices": "", "median_us": float(np.median(steps)) * 1e6,
                 "p99_us": float(np.percentile(steps, 99)) * 1e6})
    report("model", rows, model=model.info.name, hidden=model.info.hidden, harmonics=model.info.harmonics)


if __name__ == "__main__":
    main()
