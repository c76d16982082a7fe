"""How faithfully a model resynthesises held-out audio: pitch error and loudness error."""

from __future__ import annotations

import numpy as np
import torch

from timbrel.export.dataset import Recording, analyse, find_audio, load_mono
from timbrel.export.loss import SpectralLoss
from timbrel.export.model import TimbreNetwork
from timbrel.plugin.model import load_model
from timbrel.plugin.model_synth import resynthesise

LOUDNESS_FLOOR_DB = -70.0
BAR = {"f0_median_cents": 10.0, "loudness_l1_db": 3.0}
"""The quality bar a usable model meets on held-out audio: median f0 error (cents) and mean
loudness error (dB) of its resynthesis."""


def verdict(quality: dict) -> tuple[bool, str]:
    """Whether `quality` (`pooled` figures) meets `BAR`, and one line that says so with the figures.

    "usable: pitch 2.6 cents, loudness 2.2 dB", or "not usable yet: pitch 3862 cents (needs
    ≤ 10), loudness 19.7 dB (needs ≤ 3)"; a resynthesis with no pitched frame misses the pitch
    bar; a model measured on no held-out audio is "not measured"."""
    pitch, loudness = quality.get("f0_median_cents"), quality.get("loudness_l1_db")
    if loudness is None or not np.isfinite(loudness):
        return False, "not measured: no held-out audio to check the model against"
    figures = {"pitch": (pitch, "cents", BAR["f0_median_cents"]), "loudness": (loudness, "dB", BAR["loudness_l1_db"])}
    missed = [f"{label} {value:.1f} {unit} (needs ≤ {limit:g})" for label, (value, unit, limit) in figures.items()
              if value is not None and np.isfinite(value) and not value <= limit]
    if pitch is None or not np.isfinite(pitch):  # audio was measured, but the resynthesis had no pitched frame
        missed.insert(0, f"no pitch in its output (needs ≤ {BAR['f0_median_cents']:g} cents)")
    if missed:
        return False, "not usable yet: " + ", ".join(missed)
    return True, "usable: " + ", ".join(f"{label} {value:.1f} {unit}" for label, (value, unit, _) in figures.items())


@torch.no_grad()
def recording_quality(recording: Recording, audio: np.ndarray, sample_rate: int, hop: int) -> dict:
    """Compare `audio`, a resynthesis of `recording` from its own features, with the recording.

    Both are analysed with the training extractors. Returns the absolute f0 errors in cents
    over frames voiced in both (`cents`, an array), the absolute loudness errors in dB over
    frames louder than -70 dB in the input (`loudness_errors_db`), the voicing agreement and
    the multi-scale spectral loss.
    """
    r = recording
    f0_out, ld_out, voiced_out = analyse(np.asarray(audio, dtype=np.float32), sample_rate, hop)
    both = r.voiced & voiced_out & (r.f0_hz > 0) & (f0_out > 0)
    audible = r.loudness_db > LOUDNESS_FLOOR_DB
    loss = SpectralLoss(sample_rate)(torch.from_numpy(np.asarray(audio, dtype=np.float32))[None],
                                     torch.from_numpy(r.audio)[None])
    return {
        "cents": 1200 * np.abs(np.log2(f0_out[both] / r.f0_hz[both])),
        "loudness_errors_db": np.abs(ld_out[audible] - r.loudness_db[audible]),
        "voiced_agreement": float(np.mean(r.voiced == voiced_out)),
        "spectral_loss": float(loss),
    }


def pooled(figures: list[dict]) -> dict:
    """Median f0 error (cents), mean loudness error (dB) and mean spectral loss over recordings."""
    cents = np.concatenate([f["cents"] for f in figures]) if figures else np.array([])
    loud = np.concatenate([f["loudness_errors_db"] for f in figures]) if figures else np.array([])
    return {
        "f0_median_cents": float(np.median(cents)) if cents.size else float("nan"),
        "f0_frames": int(cents.size),
        "loudness_l1_db": float(np.mean(loud)) if loud.size else float("nan"),
        "spectral_loss": float(np.mean([f["spectral_loss"] for f in figures])) if figures else float("nan"),
    }


@torch.no_grad()
def resynthesis_quality(model: TimbreNetwork, recordings: list[Recording]) -> dict:
    """`pooled` quality of the torch model resynthesising each recording from its own features."""
    c = model.config
    model.eval()
    figures = []
    for r in recordings:
        if r.f0_hz.size * c.hop < max(SpectralLoss(c.sample_rate).sizes):
            continue
        audio = model(torch.from_numpy(r.f0_hz).float()[None], torch.from_numpy(r.loudness_db).float()[None])
        figures.append(recording_quality(r, audio[0].numpy(), c.sample_rate, c.hop))
    return pooled(figures)


def heldout_quality(model_path, folder) -> tuple[list[dict], dict]:
    """Quality of an exported model on each held-out file in `folder`, through the live path.

    Each file is analysed with the training features, resynthesised frame by frame in
    onnxruntime and the numba kernels exactly as it plays live, and analysed again.
    Returns one row per file and the pooled figures over all of them.
    """
    model = load_model(model_path)
    info = model.info
    rows, figures = [], []
    for path in find_audio(folder):
        audio = load_mono(path, info.sample_rate)
        audio = audio[: audio.size // info.model_hop_samples * info.model_hop_samples]
        recording = Recording(path.name, "", audio, *analyse(audio, info.sample_rate, info.model_hop_samples))
        f = recording_quality(recording, resynthesise(model, recording.f0_hz, recording.loudness_db),
                              info.sample_rate, info.model_hop_samples)
        figures.append(f)
        rows.append({"file": path.name, "seconds": audio.size / info.sample_rate, **pooled([f]),
                     "f0_p95_cents": float(np.percentile(f["cents"], 95)) if f["cents"].size else float("nan"),
                     "voiced_agreement": f["voiced_agreement"]})
    return rows, pooled(figures)
