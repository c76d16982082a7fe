"""The block check both streaming feature extractors make before running their kernel."""

from __future__ import annotations

import numpy as np


def as_block(block: np.ndarray, max_block: int) -> np.ndarray:
    """`block` as a C-contiguous float32 `[n]` with n <= `max_block` samples, else ValueError.

    A block that already is one (what the engine passes) comes back unchanged, uncopied.
    """
    block = np.ascontiguousarray(block, dtype=np.float32)
    if block.ndim != 1 or block.shape[0] > max_block:
        raise ValueError(f"block of shape {block.shape} must be 1-D with at most {max_block} samples; raise max_block")
    return block
