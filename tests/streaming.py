"""Drive segment-streamed kernels the way the engine does, over an arbitrary block partition."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def render_in_blocks(
    kernel, frame_controls: Sequence[np.ndarray], total: int, next_block: Callable[[], int]
) -> np.ndarray:
    """Stream `total` samples from `kernel` in blocks whose sizes come from `next_block()`.

    `frame_controls` are `[voices, frames, ...]` arrays; frame i is pushed when segment i
    starts, and every block is split at segment boundaries. Returns `[voices, total]`.
    """
    voices = frame_controls[0].shape[0]
    out = np.zeros((voices, total))
    done = frame = 0
    while done < total:
        block = min(int(next_block()), total - done)
        buf = np.zeros((voices, block))
        filled = 0
        while filled < block:
            if kernel.remaining == 0:
                kernel.push(*(np.ascontiguousarray(c[:, frame]) for c in frame_controls))
                frame += 1
            n = min(block - filled, kernel.remaining)
            part = np.zeros((voices, n))
            kernel.render(part)
            buf[:, filled : filled + n] = part
            filled += n
        out[:, done : done + block] = buf
        done += block
    return out


def random_blocks(rng: np.random.Generator, low: int = 1, high: int = 4096) -> Callable[[], int]:
    """Block sizes drawn uniformly from `low … high` samples."""
    return lambda: int(rng.integers(low, high + 1))
