"""How faithfully a model resynthesises held-out audio: pitch error and loudness error."""

from __future__ import annotations

import numpy as np
import torch

from export.dataset import Recording, analyse
from export.loss import SpectralLoss
from export.model import TimbreModel

LOUDNESS_FLOOR_DB = -70.0


@torch.no_grad()
def resynthesis_quality(model: TimbreModel, recordings: list[Recording]) -> dict:
    """Render each recording from its own features and analyse the result with the same extractors.

    Returns the median absolute f0 error in cents over frames voiced in both, the mean
    absolute loudness error in dB over frames louder than -70 dB in the input, and the
    spectral loss; all pooled over the recordings.
    """
    c = model.config
    model.eval()
    cents, loud, spectral = [], [], []
    loss_fn = SpectralLoss(c.sample_rate)
    for r in recordings:
        if r.f0_hz.size * c.hop < max(loss_fn.sizes):
            continue
        f0 = torch.from_numpy(r.f0_hz).float()[None]
        ld = torch.from_numpy(r.loudness_db).float()[None]
        audio = model(f0, ld)
        spectral.append(float(loss_fn(audio, torch.from_numpy(r.audio)[None])))
        out = audio[0].numpy().astype(np.float32)
        f0_out, ld_out, voiced_out = analyse(out, c.sample_rate, c.hop)
        both = r.voiced & voiced_out & (r.f0_hz > 0) & (f0_out > 0)
        cents.append(1200 * np.abs(np.log2(f0_out[both] / r.f0_hz[both])))
        audible = r.loudness_db > LOUDNESS_FLOOR_DB
        loud.append(np.abs(ld_out[audible] - r.loudness_db[audible]))
    all_cents = np.concatenate(cents) if cents else np.array([np.nan])
    all_loud = np.concatenate(loud) if loud else np.array([np.nan])
    return {
        "f0_median_cents": float(np.median(all_cents)) if all_cents.size else float("nan"),
        "f0_frames": int(all_cents.size),
        "loudness_l1_db": float(np.mean(all_loud)) if all_loud.size else float("nan"),
        "spectral_loss": float(np.mean(spectral)) if spectral else float("nan"),
    }
