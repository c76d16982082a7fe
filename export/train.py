"""Training a timbre model on a folder of recordings of one instrument.

Runs on the CPU by default and on a GPU when one is present. Several GPUs: launch the
same command under `torchrun --nproc-per-node N -m timbrel train ...`; each process
trains on its own random crops under DistributedDataParallel, and rank 0 alone
validates, checkpoints and writes files.

A run keeps its files in a work folder: `last.pt` (written every `checkpoint_every` steps
and on Ctrl-C), `best.pt` (lowest validation loss), `history.json` and `loss.png`.
`resume=True` continues from `last.pt` with the same optimiser state and random streams.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from timbrel.engine.atomic import atomic_path, write_text
from timbrel.engine.errors import TimbrelError
from timbrel.export.dataset import Dataset, Recording, prepare_dataset, sample_batch
from timbrel.export.loss import SpectralLoss
from timbrel.export.model import ModelConfig, TimbreNetwork


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Steps and batches count per process."""

    steps: int = 3000
    batch: int = 8
    clip_seconds: float = 1.0
    learning_rate: float = 1e-3
    decay_every: int = 500
    decay: float = 0.9
    grad_clip: float = 3.0
    validate_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0
    max_minutes: float | None = None
    """Stop early, as if `steps` were reached, once the run has trained this long."""
    plan_minutes: float | None = None
    """The time budget the stages below are planned over; `max_minutes` when None. A run
    trained in parts (stopped and resumed, as the training benchmark does) passes its whole
    budget here."""
    light_loss_share: float = 0.75
    """Share of the run (of the planned minutes when there are any, else of `steps`) trained on
    the light spectral loss (`SpectralLoss(light=True)`, a quarter of the full loss's work),
    before the full loss takes over; 0 trains on the full loss throughout. Validation always
    uses the full loss, so the best checkpoint is chosen on one scale."""
    final_learning_rate: float = 0.1
    """The learning rate at the end of the run, as a share of its value when the full loss
    takes over: it falls along a half cosine over the full-loss stage, so the run ends settled
    rather than wandering. 1 keeps it."""

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class History:
    """Loss per step and validation loss per check, for the curve and the provenance."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    validation_steps: list[int] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_validation: float = math.inf
    seconds: float = 0.0
    full_loss_from: int | None = None
    """First step trained on the full loss, after the light stage; the training curve steps there."""


def _distributed() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun, else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return int(os.environ.get("RANK", "0")), world


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def save_atomically(obj, path: Path) -> None:
    """`torch.save` to a temporary file beside `path`, then rename it into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by `train`; one-line TimbrelError when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise TimbrelError(f"{path}: no such checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load raises pickle, zip and runtime errors alike
        raise TimbrelError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "model_config" not in checkpoint:
        raise TimbrelError(f"{path}: not a timbrel checkpoint")
    return checkpoint


def model_from_checkpoint(checkpoint: dict) -> TimbreNetwork:
    """The TimbreNetwork a checkpoint holds, on the CPU, in eval mode."""
    model = TimbreNetwork(ModelConfig.from_dict(checkpoint["model_config"]))
    model.load_state_dict(checkpoint["model"])
    return model.eval()


@torch.no_grad()
def validation_loss(model: TimbreNetwork, data: list[Recording], loss_fn: SpectralLoss, clip_frames: int,
                    device: torch.device) -> float:
    """Mean spectral loss over fixed clips covering every validation segment."""
    hop = model.config.hop
    losses = []
    for r in data:
        for start in range(0, max(1, r.f0_hz.size - clip_frames + 1), clip_frames):
            n = min(clip_frames, r.f0_hz.size - start)
            if n * hop < max(loss_fn.sizes):
                continue
            f0 = torch.from_numpy(r.f0_hz[start : start + n]).float()[None].to(device)
            ld = torch.from_numpy(r.loudness_db[start : start + n]).float()[None].to(device)
            target = torch.from_numpy(r.audio[start * hop : (start + n) * hop])[None].to(device)
            losses.append(float(loss_fn(model(f0, ld), target)))
    return float(np.mean(losses)) if losses else math.nan


def plot_history(history: History, path: Path, title: str) -> None:
    """Write the loss curve as a PNG (training loss smoothed, validation loss as points)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if history.train_loss:
        raw = np.asarray(history.train_loss)
        width = max(1, len(raw) // 50)
        smooth = np.convolve(raw, np.ones(width) / width, mode="valid")
        ax.plot(history.steps, raw, color="#c8d3e0", lw=0.8, label="training (per step)")
        ax.plot(history.steps[width - 1 :], smooth, color="#3465a4", lw=1.6, label=f"training ({width}-step mean)")
    if history.full_loss_from is not None and history.full_loss_from > 1:
        ax.axvline(history.full_loss_from, color="#888a85", lw=0.8, ls="--", label="full loss from here")
    if history.validation_loss:
        ax.plot(history.validation_steps, history.validation_loss, "o-", color="#cc0000", ms=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("multi-scale spectral loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def train(folder: str | os.PathLike, workdir: str | os.PathLike, *, name: str,
          model_config: ModelConfig = ModelConfig(), config: TrainConfig = TrainConfig(), resume: bool = False,
          cache_dir: Path | None = None, progress: bool = True, dataset: Dataset | None = None,
          start_from: TimbreNetwork | None = None, start_name: str = "") -> dict:
    """Train on the recordings in `folder`; returns the best checkpoint (a dict, see `load_checkpoint`).

    `start_from` (a network read from another model, `export.onnx_import`, named `start_name`)
    fine-tunes it instead of starting from random weights; its sizes replace `model_config`'s.

    Ctrl-C saves `last.pt` and re-raises KeyboardInterrupt.
    """
    rank, world = _distributed()
    device = _device(rank)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = workdir / "last.pt", workdir / "best.pt"

    checkpoint = load_checkpoint(last_path) if resume else None
    if checkpoint is not None:
        model_config = ModelConfig.from_dict(checkpoint["model_config"])
        config = TrainConfig.from_dict({**checkpoint["train_config"], **{key: getattr(config, key) for key in (
            "steps", "max_minutes", "plan_minutes", "light_loss_share", "final_learning_rate")}})

    torch.manual_seed(config.seed + rank)
    if dataset is None:
        dataset = prepare_dataset(folder, model_config.sample_rate, model_config.hop, cache_dir=cache_dir, seed=config.seed)
    f0_stats, loudness_stats = dataset.statistics()

    if start_from is not None and checkpoint is None:
        model_config = start_from.config
    model = TimbreNetwork(model_config).to(device)
    if start_from is not None and checkpoint is None:
        model.load_state_dict(start_from.state_dict())
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    history = History()
    rng = np.random.default_rng([config.seed, rank])
    start_step = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        history = History(**checkpoint["history"])
        start_step = checkpoint["step"]
        rng.bit_generator.state = checkpoint["rng"][rank] if rank < len(checkpoint["rng"]) else rng.bit_generator.state
        torch.set_rng_state(checkpoint["torch_rng"])
    trainer = model
    if world > 1:
        trainer = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    plan = config.plan_minutes or config.max_minutes

    def done(step: int) -> float:
        """How far through its plan the run is, 0 to 1."""
        return min(1.0, history.seconds / (60 * plan) if plan else step / config.steps)

    def learning_rate_share(step: int) -> float:
        share = config.decay ** (step / config.decay_every)
        settle = (done(step) - config.light_loss_share) / max(1e-9, 1.0 - config.light_loss_share)
        if settle > 0.0:
            share *= config.final_learning_rate + (1.0 - config.final_learning_rate) * 0.5 * (1.0 + math.cos(math.pi * settle))
        return share

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda k: learning_rate_share(start_step + k))
    loss_fn = SpectralLoss(model_config.sample_rate).to(device)
    light_loss_fn = SpectralLoss(model_config.sample_rate, light=True).to(device)

    def training_loss(step: int) -> SpectralLoss:
        if done(step) < config.light_loss_share:
            history.full_loss_from = None  # a resumed run with a longer budget goes back to the light stage
            return light_loss_fn
        if history.full_loss_from is None:
            history.full_loss_from = step + 1
        return loss_fn
    frames = int(config.clip_seconds * model_config.frame_rate)

    def snapshot(step: int) -> dict:
        return {
            "model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
            "model_config": model_config.to_dict(), "train_config": asdict(config), "history": asdict(history),
            "rng": [rng.bit_generator.state], "torch_rng": torch.get_rng_state(),
            "name": name, "f0_hz": f0_stats, "loudness_db": loudness_stats,
            "fine_tuned_from": start_name if checkpoint is None else checkpoint.get("fine_tuned_from", ""),
            "data": {"folder": str(folder), "files": dataset.files, "seconds": round(dataset.seconds, 2),
                     "sha256": sorted({r.sha256 for r in dataset.train + dataset.validation})},
        }

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        if config.max_minutes is not None:  # the run ends at its time budget, long before its steps run out
            bar = tqdm(total=round(60 * config.max_minutes), initial=min(round(history.seconds), round(60 * config.max_minutes)),
                       desc=f"training {name}", unit="s", dynamic_ncols=True,
                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of the time budget{postfix}")
        else:
            bar = tqdm(total=config.steps, initial=start_step, desc=f"training {name}", unit="step", dynamic_ncols=True)
    began = time.monotonic() - history.seconds
    step = start_step
    try:
        while step < config.steps:
            trainer.train()
            f0, ld, audio = (torch.from_numpy(a).to(device) for a in sample_batch(dataset.train, config.batch, frames, model_config.hop, rng))
            loss = training_loss(step)(trainer(f0, ld), audio)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            schedule.step()
            step += 1
            history.steps.append(step)
            history.train_loss.append(loss.item())
            history.seconds = time.monotonic() - began
            if world > 1:  # one clock for every rank, so they switch loss, set the learning rate and stop alike
                clock = torch.tensor([history.seconds], dtype=torch.float64, device=device)
                torch.distributed.all_reduce(clock, op=torch.distributed.ReduceOp.MAX)
                history.seconds = float(clock.item())
            out_of_time = config.max_minutes is not None and history.seconds >= 60 * config.max_minutes
            last = step == config.steps or out_of_time
            if rank == 0 and (step % config.validate_every == 0 or last):
                model.eval()
                value = validation_loss(model, dataset.validation, loss_fn, frames * 4, device)
                history.validation_steps.append(step)
                history.validation_loss.append(value)
                if value < history.best_validation:
                    history.best_validation = value
                    save_atomically(snapshot(step), best_path)
            if rank == 0 and (step % config.checkpoint_every == 0 or last):
                save_atomically(snapshot(step), last_path)
                write_text(workdir / "history.json", json.dumps(asdict(history)))
                plot_history(history, workdir / "loss.png", f"{name}: spectral loss")
            if bar is not None:
                bar.update(min(round(history.seconds), bar.total) - bar.n if config.max_minutes is not None else 1)
                stage = "loss" if history.full_loss_from is not None else "light loss"
                bar.set_postfix({"step": step, stage: f"{history.train_loss[-1]:.3f}", "val": f"{history.best_validation:.3f}"})
            if out_of_time:
                break
    except KeyboardInterrupt:
        if rank == 0:
            save_atomically(snapshot(step), last_path)
            plot_history(history, workdir / "loss.png", f"{name}: spectral loss")
            print(f"\ninterrupted at step {step}; saved {last_path} (continue with --resume)")
        raise
    finally:
        if bar is not None:
            bar.close()
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return load_checkpoint(best_path if best_path.is_file() else last_path)
