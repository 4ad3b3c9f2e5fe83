"""Where a dense model's windows lie on a grid, and how their outputs are blended.

As MONAI's ``sliding_window_inference``: windows step by ``patch * (1 - overlap)``, the last one
shifted inwards so that it ends at the border (no padding where the grid is larger than the
patch); overlapping outputs are averaged with a Gaussian importance map (sigma = 1/8 of the
patch side), so the centre of a window counts more than its edges.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from app.errors import ModelError

OVERLAP = 0.25  # MONAI's default (nnU-Net uses 0.5)
SIGMA_SCALE = 0.125
MAX_STRIDE = 64  # the largest stride tried for a fully convolutional model (6 poolings)


def check_overlap(overlap: float) -> float:
    if not 0.0 <= overlap < 1.0:
        raise ModelError(f"--overlap must be at least 0 and below 1, not {overlap}")
    return float(overlap)


def starts(size: int, patch: int, overlap: float) -> list[int]:
    """Window starts along one axis of ``size`` (≥ ``patch``): every ``patch * (1 - overlap)``,
    the last shifted inwards to end at ``size``."""
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    count = math.ceil((size - patch) / step) + 1
    return sorted({min(i * step, size - patch) for i in range(count)})


@lru_cache(maxsize=8)
def gaussian(patch: tuple[int, ...]) -> np.ndarray:
    """The importance map of a window of shape ``patch``: a Gaussian with sigma = 1/8 of each
    side, 1 at the centre, never 0 (MONAI clamps it to its smallest positive value)."""
    weights = np.ones((), dtype=np.float64)
    for side in patch:
        x = np.arange(side, dtype=np.float64) - (side - 1) / 2
        sigma = max(side * SIGMA_SCALE, 1e-3)
        weights = np.multiply.outer(weights, np.exp(-0.5 * (x / sigma) ** 2))
    weights /= weights.max()
    positive = weights[weights > 0]
    weights = np.maximum(weights, positive.min() if positive.size else 1.0).astype(np.float32)
    weights.flags.writeable = False
    return weights


def padded(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``."""
    return -(-size // multiple) * multiple


def pad_edges(x: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """``x`` padded at the far end of ``axes`` to ``shape`` by repeating its edge (never zeros:
    a frame of 0 on a CT in HU is bright)."""
    widths = [(0, 0)] * x.ndim
    for axis, size in zip(axes, shape):
        widths[axis] = (0, max(0, size - x.shape[axis]))
    if not any(w for _, w in widths):
        return x
    return np.pad(x, widths, mode="edge")
