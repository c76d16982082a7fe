"""What a training step costs, part by part, and what each way of making it cheaper saves.

    python -m bench.bench_train_step [--steps 10] [--compile]

One optimiser step of the default model (decoder, torch synth, reverb, spectral loss,
backward, Adam) on random pitch, loudness and target audio, median seconds over `--steps`
after two warm-up steps, in one process so the ratios are same-run:

- the parts, forward and backward each: decoder, harmonic synth, filtered noise, reverb, the
  full spectral loss and the light one (`SpectralLoss(light=True)`);
- whole steps: `timbrel train`'s batch (8 × 1 s) with the full and with the light loss, on 2
  and on 1 CPU threads, and the same audio as shorter crops in larger batches;
- with `--compile`, `torch.compile` of the network and of the loss (inductor, CPU).

Writes bench/results/train-step.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.report import report
from timbrel.export import synth
from timbrel.export.loss import SpectralLoss
from timbrel.export.model import ModelConfig, TimbreNetwork


def median_ms(run: Callable[[], None], steps: int) -> float:
    for _ in range(2):
        run()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def inputs(batch: int, seconds: float, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    frames = int(seconds * config.frame_rate)
    f0 = 200 * 2 ** (torch.rand(batch, 1) * 2) * torch.ones(batch, frames)
    ld = -60 + 50 * torch.rand(batch, frames)
    return f0, ld, 0.1 * torch.randn(batch, frames * config.hop)


def step_ms(steps: int, batch: int = 8, seconds: float = 1.0, light: bool = False, threads: int = 2,
            compile_model: bool = False, compile_loss: bool = False) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = ModelConfig()
    model = TimbreNetwork(config)
    loss_fn = SpectralLoss(config.sample_rate, light=light)
    forward = torch.compile(model) if compile_model else model
    loss_of = torch.compile(loss_fn) if compile_loss else loss_fn
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    f0, ld, target = inputs(batch, seconds, config)

    def run() -> None:
        loss = loss_of(forward(f0, ld), target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    return median_ms(run, steps)


def parts_ms(steps: int) -> dict[str, float]:
    torch.set_num_threads(2)
    config = ModelConfig()
    model = TimbreNetwork(config)
    f0, ld, target = inputs(8, 1.0, config)
    amp, dist, noise = (x.detach().requires_grad_() for x in model.controls(f0, ld))
    dry = target.clone().requires_grad_()
    full, light = SpectralLoss(config.sample_rate), SpectralLoss(config.sample_rate, light=True)

    def decoder() -> None:
        a, d, n = model.controls(f0, ld)
        (a.sum() + d.sum() + n.sum()).backward()

    runs = {
        "decoder": decoder,
        "harmonic synth": lambda: synth.harmonic_synth(f0, amp, dist, config.sample_rate, config.hop).sum().backward(),
        "filtered noise": lambda: synth.filtered_noise(noise, config.sample_rate, config.hop).sum().backward(),
        "reverb": lambda: synth.reverb(dry, model.impulse_response(), 1.0).sum().backward(),
        "spectral loss, full": lambda: full(dry, target).backward(),
        "spectral loss, light": lambda: light(dry, target).backward(),
    }
    return {name: median_ms(run, steps) for name, run in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (a minute of compiling)")
    args = parser.parse_args()
    rows = [{"what": f"part: {name} (forward + backward, batch 8 × 1 s)", "ms": ms}
            for name, ms in parts_ms(args.steps).items()]
    base = step_ms(args.steps)
    variants = {
        "step: batch 8 × 1 s, full loss, 2 threads (before this change)": base,
        "step: the same, light loss": step_ms(args.steps, light=True),
        "step: full loss, 1 thread": step_ms(args.steps, threads=1),
        "step: light loss, 1 thread": step_ms(args.steps, light=True, threads=1),
        "step: batch 16 × 0.5 s, full loss": step_ms(args.steps, batch=16, seconds=0.5),
        "step: batch 32 × 0.25 s, full loss": step_ms(args.steps, batch=32, seconds=0.25),
    }
    if args.compile:
        variants["step: torch.compile(network), full loss"] = step_ms(args.steps, compile_model=True)
        variants["step: torch.compile(loss), full loss"] = step_ms(args.steps, compile_loss=True)
    rows += [{"what": name, "ms": ms, "speed-up": base / ms} for name, ms in variants.items()]
    report("train-step", rows, steps=args.steps, torch=torch.__version__)


if __name__ == "__main__":
    main()
