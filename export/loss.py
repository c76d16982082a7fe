"""Multi-scale spectral loss (DDSP), with FFT sizes scaled to the model's rate."""

from __future__ import annotations

import torch
from torch import Tensor

BASE_SIZES = (2048, 1024, 512, 256, 128, 64)
BASE_RATE = 16000


def fft_sizes(sample_rate: int) -> tuple[int, ...]:
    """DDSP's sizes at 16 kHz, scaled by the rate ratio and kept even (6144 … 192 at 48 kHz)."""
    scale = sample_rate / BASE_RATE
    return tuple(max(16, int(round(n * scale / 2)) * 2) for n in BASE_SIZES)


class SpectralLoss(torch.nn.Module):
    """Sum over FFT sizes of L1 on linear magnitude plus L1 on log magnitude (eps 1e-5).

    Frames use a Hann window and overlap 75 %, as DDSP's; each term is a mean over bins and
    frames. `light=True` is the cheap stage of training: every other
    size (6144, 1536, 384 at 48 kHz) at 50 % overlap, about a quarter of the full loss's
    work, still spanning the same range of time and frequency resolutions.
    """

    def __init__(self, sample_rate: int, log_weight: float = 1.0, light: bool = False):
        super().__init__()
        sizes = fft_sizes(sample_rate)
        self.sizes = sizes[::2] if light else sizes
        self.hop_divisor = 2 if light else 4
        self.log_weight = log_weight
        for n in self.sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, predicted: Tensor, target: Tensor) -> Tensor:
        """Loss between `[batch, samples]` signals."""
        total = predicted.new_zeros(())
        for n in self.sizes:
            window = getattr(self, f"window_{n}")
            hop = n // self.hop_divisor
            p = torch.stft(predicted, n, hop, window=window, return_complex=True).abs()
            with torch.no_grad():
                t = torch.stft(target, n, hop, window=window, return_complex=True).abs()
            total = total + (p - t).abs().mean()
            total = total + self.log_weight * (torch.log(p + 1e-5) - torch.log(t + 1e-5)).abs().mean()
        return total
