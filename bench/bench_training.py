"""Minutes of training to a usable model: from scratch, and fine-tuned from another instrument.

    python -m bench.bench_training [NAME ...] [--data-minutes 3] [--budget 10] [--step-minutes 1]
        [--light-share 0.75] [--final-lr 0.1] [--threads N] [--start both|scratch|nearest] [--name training]

For each instrument (default: flute), `timbrel data` material (`--data-minutes` of phrases,
seed 1; one held-out minute, seed 2) is trained on twice, as `timbrel train` does (default
model, batch 8, 1 s crops, the CPU threads torch picks): from scratch, and from the factory
model of the nearest *other* instrument (`--from auto` with the instrument's own model left
out). Training runs in steps of `--step-minutes` of training time (resuming, so the
optimiser carries on); after each step the best checkpoint is exported and measured on the
held-out minute through the live path (`export.quality.heldout_quality`); it is exported
without `timbrel train`'s parity checks, which a half-trained network can miss (see the note). The first step
that meets the bar (`export.quality.BAR`) gives the minutes to usable. Checking takes time
of its own, not counted. The stages are planned over the whole budget, as in one `timbrel
train --max-minutes BUDGET` run: the light loss for the first `--light-share` of it, then
the full loss with the learning rate settling to `--final-lr` of its value. `--threads 1` lets two runs share a 2-core
machine, one core each. Writes bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.report import report
from timbrel.export.dataset import prepare_dataset
from timbrel.export.fluidsynth import generate_dataset
from timbrel.export.model import ModelConfig
from timbrel.export.onnx_export import export_onnx
from timbrel.export.onnx_import import nearest_model, network_from_model
from timbrel.export.quality import heldout_quality, verdict
from timbrel.export.train import TrainConfig, load_checkpoint, model_from_checkpoint, train
from timbrel.presets.folders import factory_models_dir


def minutes_to_usable(name: str, folder: Path, heldout: Path, work: Path, budget: float, step: float,
                      source: Path | None, light_share: float, final_lr: float) -> dict:
    config = ModelConfig()
    dataset = prepare_dataset(folder, config.sample_rate, config.hop, cache_dir=work / "features")
    run = work / f"{name}-{source.stem if source else 'scratch'}"
    start = network_from_model(source) if source else None
    minutes, row = 0.0, {}
    while minutes < budget - 1e-9:
        minutes = min(budget, minutes + step)
        plan = TrainConfig(steps=1_000_000, max_minutes=minutes, plan_minutes=budget, light_loss_share=light_share,
                           final_learning_rate=final_lr)
        train(folder, run, name=name, model_config=config, config=plan,
              resume=(run / "last.pt").is_file(), progress=False, dataset=dataset, start_from=start,
              start_name=source.stem if source else "")
        best = load_checkpoint(run / "best.pt")
        model = run / "model.onnx"  # exported without `release`'s parity checks, which are not what this measures
        export_onnx(model_from_checkpoint(best), model, name=name, f0_stats=best["f0_hz"],
                    loudness_stats=best["loudness_db"], provenance={})
        _, quality = heldout_quality(model, heldout)
        usable, line = verdict(quality)
        row = {"instrument": name, "start": source.stem if source else "scratch", "minutes": minutes,
               "steps": best["step"], "f0_median_cents": quality["f0_median_cents"],
               "loudness_l1_db": quality["loudness_l1_db"], "usable": usable, "verdict": line}
        print(row, flush=True)
        if usable:
            break
    return row | {"minutes_to_usable": row["minutes"] if row.get("usable") else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=["flute"])
    parser.add_argument("--data-minutes", type=float, default=3.0)
    parser.add_argument("--budget", type=float, default=10.0, help="most training minutes per run")
    parser.add_argument("--step-minutes", type=float, default=1.0)
    parser.add_argument("--light-share", type=float, default=TrainConfig.light_loss_share,
                        help="share of the budget trained on the light loss (0: the full loss throughout)")
    parser.add_argument("--final-lr", type=float, default=TrainConfig.final_learning_rate,
                        help="learning rate at the end of the budget, as a share (1: no settling)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    parser.add_argument("--start", choices=("both", "scratch", "nearest"), default="both")
    parser.add_argument("--name", default="training", help="results file name")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.names:
            folder, heldout = work / f"{name}-train", work / f"{name}-heldout"
            generate_dataset(name, args.data_minutes * 60, 1, folder)
            generate_dataset(name, 60, 2, heldout)
            others = [p for p in sorted(factory_models_dir().glob("*.onnx")) if p.stem != name]
            stats = prepare_dataset(folder, 48000, 160, cache_dir=work / "features").statistics()
            nearest = nearest_model(others, *stats)
            starts = {"both": (None, nearest), "scratch": (None,), "nearest": (nearest,)}[args.start]
            for source in starts:
                rows.append(minutes_to_usable(name, folder, heldout, work, args.budget, args.step_minutes, source,
                                              args.light_share, args.final_lr))
    report(args.name, rows, data_minutes=args.data_minutes, budget_minutes=args.budget, step_minutes=args.step_minutes,
           light_share=args.light_share, final_lr=args.final_lr, threads=args.threads or None)


if __name__ == "__main__":
    main()
