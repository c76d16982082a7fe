"""From a training checkpoint to a checked, self-describing `.onnx` model file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from timbrel.engine.atomic import atomic_path
from timbrel.export.dataset import Dataset
from timbrel.export.onnx_export import check_export, export_onnx
from timbrel.export.quality import resynthesis_quality, verdict
from timbrel.export.style import fit_style, loudness_range, measure_recordings
from timbrel.export.train import model_from_checkpoint


def release(checkpoint: dict, out_path: str | os.PathLike, dataset: Dataset | None = None,
            name: str | None = None) -> dict:
    """Export `checkpoint` to `out_path` and run the export checks; returns the figures.

    The export is checked before it replaces `out_path`: a failed check leaves any model
    already there untouched.

    With the training `dataset` the held-out resynthesis quality is measured and stored in
    the file's provenance with its verdict against the quality bar (`quality.verdict`), the
    playing style is fitted on its recordings (`export.style`), and the render check uses a real validation clip; without it a
    phrase built from the stored pitch and loudness statistics stands in.
    """
    model = model_from_checkpoint(checkpoint)
    history = checkpoint["history"]
    quality = resynthesis_quality(model, dataset.validation) if dataset is not None else {}
    losses = history["train_loss"][-50:]
    provenance = {
        "data": checkpoint.get("data", {}),
        "steps": checkpoint["step"],
        "train_seconds": round(history.get("seconds", 0.0), 1),
        "final_train_loss": float(np.mean(losses)) if losses else None,
        "best_validation_loss": history.get("best_validation"),
        "quality": quality,
        "train_config": checkpoint.get("train_config", {}),
        "fine_tuned_from": checkpoint.get("fine_tuned_from", ""),
    }
    if quality:
        provenance["usable"], provenance["verdict"] = verdict(quality)
    name = name or checkpoint.get("name") or Path(out_path).stem
    f0, ld = _check_clip(checkpoint, dataset, model.config.frame_rate)
    style = None
    if dataset is not None:
        notes = measure_recordings(dataset.train + dataset.validation, model.config.frame_rate)
        style = fit_style(notes, loudness_range(checkpoint["loudness_db"]), source="training data") if notes else None
    with atomic_path(out_path) as candidate:
        export_onnx(model, candidate, name=name, f0_stats=checkpoint["f0_hz"],
                    loudness_stats=checkpoint["loudness_db"], provenance=provenance, style=style)
        figures = check_export(model, candidate, f0, ld, shown_as=out_path)
    extra = {"usable": provenance["usable"], "verdict": provenance["verdict"]} if quality else {}
    return {"path": str(out_path), **quality, **figures, "steps": checkpoint["step"], **extra}


def _check_clip(checkpoint: dict, dataset: Dataset | None, frame_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to 2 s of validation features, or a glide through the training range."""
    if dataset is not None and dataset.validation:
        r = max(dataset.validation, key=lambda rec: rec.f0_hz.size)
        n = min(r.f0_hz.size, 2 * frame_rate)
        return r.f0_hz[:n].astype(np.float32), r.loudness_db[:n].astype(np.float32)
    f0s, lds = checkpoint["f0_hz"], checkpoint["loudness_db"]
    t = np.linspace(0, 1, 2 * frame_rate)
    f0 = np.exp(np.log(f0s["min"]) + (np.log(f0s["max"]) - np.log(f0s["min"])) * t)
    ld = lds["mean"] + lds["std"] * np.sin(2 * np.pi * 2 * t)
    return f0.astype(np.float32), ld.astype(np.float32)
