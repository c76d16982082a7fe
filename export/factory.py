"""The factory model library: which instruments ship, and the recipe that rebuilds them.

    python -m timbrel.export.factory build [NAME ...] [--root DIR] [--jobs N] [--train-minutes M] [--resume]

rebuilds every factory model from scratch, in five resumable stages that can also be run
one at a time (`render`, `pack`, `train`, `release`, `style`):

1. **render**: expressive FluidR3_GM phrases of each instrument (`timbrel.export.fluidsynth`):
   `DIR/data/NAME-train` (4 min, seed 1) and `DIR/data/NAME-heldout` (1 min, seed 2);
2. **pack** (optional): the training renders as Opus files, small enough to carry to a
   machine with a GPU (`DIR/transport/NAME`); train then reads those instead;
3. **train**: one process per instrument, `--jobs` at a time, each on CUDA when present,
   for `--train-minutes` of wall time (`DIR/runs/NAME/best.pt`); with `--resume` a run
   continues from its `last.pt` (optimiser and random streams included) until its total
   time reaches `--train-minutes`; `slim` then strips the optimiser state for the trip
   back (`DIR/slim/NAME.pt`);
4. **release**: export each best checkpoint to `presets/factory/models/NAME.onnx`, check it
   against torch, and measure its resynthesis on the lossless held-out renders through the
   live engine path. Figures go to `DIR/quality.json`; then every factory preset file
   (`timbrel.export.factory_presets`) is written with its model's sha256, recipe and figures
   (`presets` does only this last step);
5. **style**: fit each model's playing style on its training renders (`timbrel.export.style`)
   and store it in the model file, updating the presets' sha256.

It takes hours on a CPU and is not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from timbrel.engine.atomic import write_text
from timbrel.export.dataset import prepare_dataset
from timbrel.export.factory_presets import write_presets
from timbrel.export.fluidsynth import generate_dataset
from timbrel.export.style import describe_style, style_of_folder, write_style
from timbrel.plugin.model import load_model
from timbrel.presets.folders import factory_models_dir
from timbrel.presets.model_files import sha256_file

FACTORY = ("violin", "cello", "contrabass", "flute", "clarinet", "oboe", "bassoon", "trumpet", "trombone",
           "french_horn", "tuba", "alto_sax", "choir_aah")
"""General MIDI instruments (`timbrel.export.phrases.INSTRUMENTS`) with a factory model each."""

TRAIN_MINUTES, HELDOUT_MINUTES = 4.0, 1.0
TRAIN_SEED, HELDOUT_SEED = 1, 2
BATCH = 8
MAX_STEPS = 40_000
OPUS_LEVEL = 0.4
"""libsndfile's Opus compression level for transport: about 140 kbit/s mono."""

MODELS_DIR = factory_models_dir()
"""Where the factory models are released: `presets/factory/models` in the source tree."""


def _data(root: Path, name: str, part: str) -> Path:
    return root / "data" / f"{name}-{part}"


def render(root: Path, names: tuple[str, ...]) -> None:
    """Render training and held-out phrases for each instrument not rendered yet."""
    for name in names:
        for part, minutes, seed in (("train", TRAIN_MINUTES, TRAIN_SEED), ("heldout", HELDOUT_MINUTES, HELDOUT_SEED)):
            folder = _data(root, name, part)
            if not any(folder.glob("*.wav")):
                generate_dataset(name, minutes * 60, seed, folder)
        print(f"rendered {name}", flush=True)


def pack(root: Path, names: tuple[str, ...]) -> None:
    """Encode each training render as Opus under `DIR/transport/NAME` (for carrying to a GPU)."""
    import soundfile

    for name in names:
        out = root / "transport" / name
        out.mkdir(parents=True, exist_ok=True)
        for wav in sorted(_data(root, name, "train").glob("*.wav")):
            audio, rate = soundfile.read(str(wav), dtype="float32")
            soundfile.write(str(out / f"{wav.stem}.opus"), audio, rate, format="OGG", subtype="OPUS",
                            compression_level=OPUS_LEVEL)
    print(f"packed {len(names)} instrument(s) into {root / 'transport'}")


def train_one(root: Path, name: str, minutes: float, resume: bool = False) -> None:
    """Train one instrument's model for `minutes` (wall time) into `DIR/runs/NAME`.

    With `resume`, the run continues from its `last.pt` until its total training time reaches `minutes`.
    """
    from timbrel.export.model import ModelConfig
    from timbrel.export.train import TrainConfig, train

    transport = root / "transport" / name
    folder = transport if any(transport.glob("*.opus")) else _data(root, name, "train")
    model_config = ModelConfig()
    config = TrainConfig(steps=MAX_STEPS, batch=BATCH, seed=TRAIN_SEED, max_minutes=minutes)
    dataset = prepare_dataset(folder, model_config.sample_rate, model_config.hop, cache_dir=root / "features",
                              seed=config.seed)
    train(folder, root / "runs" / name, name=name, model_config=model_config, config=config, progress=False,
          dataset=dataset, resume=resume and (root / "runs" / name / "last.pt").is_file())


def train_all(root: Path, names: tuple[str, ...], minutes: float, jobs: int, resume: bool = False) -> None:
    """Train every instrument in its own process, `jobs` at a time; logs go to `DIR/runs/NAME.log`."""
    (root / "runs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pending, running, failed = list(names), [], []
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            log = open(root / "runs" / f"{name}.log", "w")
            cmd = [sys.executable, "-m", "timbrel.export.factory", "train-one", name, "--root", str(root),
                   "--train-minutes", str(minutes)] + (["--resume"] if resume else [])
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
        time.sleep(1.0)
        for item in list(running):
            name, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                print(f"trained {name}: exit {proc.returncode}", flush=True)
                if proc.returncode:
                    failed.append(name)
    if failed:
        raise SystemExit(f"training failed for {', '.join(failed)} (see {root / 'runs'}/NAME.log)")


def slim(root: Path, names: tuple[str, ...]) -> None:
    """Copy each best checkpoint without its optimiser state to `DIR/slim/NAME.pt` (for carrying back)."""
    import torch

    out = root / "slim"
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        best = root / "runs" / name / "best.pt"
        if not best.is_file():
            print(f"{name}: no best.pt to slim", file=sys.stderr)
            continue
        checkpoint = torch.load(best, map_location="cpu", weights_only=False)
        kept = {k: v for k, v in checkpoint.items() if k not in ("optimiser", "rng", "torch_rng")}
        torch.save(kept, out / f"{name}.pt")


def release_all(root: Path, names: tuple[str, ...], models_dir: Path = MODELS_DIR) -> dict:
    """Export, check and measure each trained model; returns and stores the figures by name."""
    from timbrel.export.quality import heldout_quality
    from timbrel.export.release import release
    from timbrel.export.train import load_checkpoint

    figures_path = root / "quality.json"
    figures = json.loads(figures_path.read_text()) if figures_path.is_file() else {}
    for name in names:
        slimmed = root / "slim" / f"{name}.pt"
        checkpoint = load_checkpoint(slimmed if slimmed.is_file() else root / "runs" / name / "best.pt")
        path = models_dir / f"{name}.onnx"
        exported = release(checkpoint, path, None, name=name)
        _, quality = heldout_quality(path, _data(root, name, "heldout"))
        figures[name] = {"steps": exported["steps"], "render_error_db": exported["render_error_db"], **quality,
                         "train_minutes": checkpoint.get("train_config", {}).get("max_minutes"),
                         "model_bytes": path.stat().st_size}
        print(f"released {name}: {json.dumps(figures[name])}", flush=True)
        write_text(figures_path, json.dumps(figures, indent=1))
    return figures


SMALL = ("cello", "contrabass", "flute", "clarinet", "oboe", "bassoon", "trumpet", "trombone", "french_horn", "tuba",
         "alto_sax", "choir_aah")
"""Instruments fine-tuned from the small violin (64 units, one layer per stack, GRU 64: 0.27x the
multiply-adds of `timbrel train`'s default, see BENCHMARKS.md, "What a cheaper network would
buy"), 6 minutes each on one core, two at a time."""


def _fine_tuned(name: str) -> dict:
    return {"command": f"timbrel data {name} -o {name}-train --minutes 4 --seed 1; "
                       f"timbrel train {name}-train --name {name} --from violin --max-minutes 6; "
                       f"python -m timbrel.export.factory release {name}; python -m timbrel.export.factory style {name}",
            "train_minutes": 6.0, "machine": "1 CPU core (Intel Xeon) each, two models at a time"}


RECIPE_OVERRIDES = {
    "violin": {"command": "timbrel data violin -o violin-train --minutes 4 --seed 1; "
                          "timbrel train violin-train --units 64 --hidden 64 --layers 1 --max-minutes 12; "
                          "python -m timbrel.export.factory release violin; python -m timbrel.export.factory style violin",
               "train_minutes": 12.0, "machine": "2 CPU cores (Intel Xeon), one model at a time"},
    **{name: _fine_tuned(name) for name in SMALL},
}
"""Models not built by `build`'s defaults, with the commands that actually built them: the
violin at the small size from scratch, the others fine-tuned from it."""


def recipe(name: str, steps: int | None, train_minutes: float) -> dict:
    """How factory model `name` was built: the command, the data and its seeds."""
    entry = {"command": f"python -m timbrel.export.factory build {name} --train-minutes {train_minutes:g}",
             "data": "expressive FluidR3_GM phrases (timbrel.export.phrases) rendered by fluidsynth",
             "data_seed": TRAIN_SEED, "data_seconds": int(TRAIN_MINUTES * 60), "heldout_seed": HELDOUT_SEED,
             "heldout_seconds": int(HELDOUT_MINUTES * 60), "train_minutes": train_minutes,
             "machine": "2 CPU cores (AMD EPYC), one model at a time"}
    entry |= RECIPE_OVERRIDES.get(name, {})
    if steps:
        entry["steps"] = steps
    return entry


def style_all(root: Path, names: tuple[str, ...], models_dir: Path = MODELS_DIR) -> None:
    """Fit each factory model's playing style on its training renders (rendered here if
    absent) and store it in the model file; the factory presets follow its new sha256."""
    for name in names:
        folder = _data(root, name, "train")
        if not any(folder.glob("*.wav")):
            generate_dataset(name, TRAIN_MINUTES * 60, TRAIN_SEED, folder)
        path = models_dir / f"{name}.onnx"
        before = sha256_file(path)
        style = style_of_folder(path, folder)
        write_style(path, style)
        after = sha256_file(path)
        for preset in models_dir.parent.glob("*.toml"):
            text = preset.read_text()
            if before in text:
                write_text(preset, text.replace(before, after))
        print(f"styled {name}: " + "; ".join(describe_style(style)), flush=True)


def write_factory_presets(root: Path, train_minutes: float, models_dir: Path = MODELS_DIR) -> None:
    """Measure any shipped model not yet measured on its held-out renders, then write the preset files."""
    from timbrel.export.quality import heldout_quality

    figures_path = root / "quality.json"
    figures = json.loads(figures_path.read_text()) if figures_path.is_file() else {}
    for model in sorted(models_dir.glob("*.onnx")):
        name = model.stem
        if name not in figures and _data(root, name, "heldout").is_dir():
            _, quality = heldout_quality(model, _data(root, name, "heldout"))
            steps = load_model(model).info.provenance.get("steps")
            figures[name] = {"steps": steps, **quality, "model_bytes": model.stat().st_size}
            write_text(figures_path, json.dumps(figures, indent=1))
    recipes = {name: recipe(name, f.get("steps"), f.get("train_minutes") or train_minutes) for name, f in figures.items()}
    quality = {name: {k: v for k, v in f.items() if k in ("f0_median_cents", "loudness_l1_db", "spectral_loss")}
               for name, f in figures.items()}
    for path in write_presets(models_dir.parent, quality, recipes):
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m timbrel.export.factory", description="rebuild the factory models")
    parser.add_argument("stage", choices=("build", "render", "pack", "train", "train-one", "slim", "release", "style",
                                          "presets"))
    parser.add_argument("names", nargs="*", help=f"instruments (default: all of {', '.join(FACTORY)})")
    parser.add_argument("--root", default="factory-build", help="working folder for data, runs and figures")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--train-minutes", type=float, default=8.5, help="wall time per model (the factory used 8.5)")
    parser.add_argument("--resume", action="store_true",
                        help="continue each run from its last checkpoint up to --train-minutes in total")
    args = parser.parse_args(argv)
    root = Path(args.root)
    names = tuple(args.names) or FACTORY
    if args.stage == "train-one":
        train_one(root, names[0], args.train_minutes, args.resume)
        return
    if args.stage in ("build", "render"):
        render(root, names)
    if args.stage == "pack":
        pack(root, names)
    if args.stage in ("build", "train"):
        train_all(root, names, args.train_minutes, args.jobs, args.resume)
    if args.stage == "slim":
        slim(root, names)
    if args.stage in ("build", "release"):
        release_all(root, names)
    if args.stage in ("build", "style"):
        style_all(root, names)
    if args.stage in ("build", "release", "presets"):
        write_factory_presets(root, args.train_minutes)


if __name__ == "__main__":
    main()
