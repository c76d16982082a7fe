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

    Frames overlap 75 % and use a Hann window; each term is a mean over bins and frames.
    """

    def __init__(self, sample_rate: int, log_weight: float = 1.0):
        super().__init__()
        self.sizes = fft_sizes(sample_rate)
        self.log_weight = log_weight
        for n in self.sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, predicted: Tensor, target: Tensor) -> Tensor:
        """Loss between `[batch, samples]` signals."""
        total = predicted.new_zeros(())
        for n in self.sizes:
            window = getattr(self, f"window_{n}")
            p = torch.stft(predicted, n, n // 4, window=window, return_complex=True).abs()
            t = torch.stft(target, n, n // 4, window=window, return_complex=True).abs()
            total = total + (p - t).abs().mean()
            total = total + self.log_weight * (torch.log(p + 1e-5) - torch.log(t + 1e-5)).abs().mean()
        return total
