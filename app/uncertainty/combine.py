"""Mean and standard deviation over passes, and the per-pixel spread of dense outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def mean_sd(outputs: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation over the first axis, as float32.

    Summed in float64, so identical passes give exactly their value back and an sd of exactly 0
    (a float32 sum of N copies would round)."""
    stack = np.asarray(outputs, dtype=np.float64)
    mean = stack.mean(axis=0)
    sd = np.sqrt(np.mean(np.square(stack - mean), axis=0))
    return mean.astype(np.float32), sd.astype(np.float32)


def reduce_passes(outputs: Sequence[np.ndarray], reduce: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of a per-slice reduction (an area, a max) taken on each pass's map.

    The sd of areas must be the spread of each pass's area, not the area of the mean map (a
    thresholded mean map hides how much the passes disagree)."""
    return mean_sd([np.asarray(reduce(out)) for out in outputs])


class RunningMeanSd:
    """Mean and population sd of blocks added one pass at a time (Welford's update, in float64), so
    the passes' maps need not all be held at once.  Identical blocks give exactly their value and an
    sd of exactly 0 (every difference from the mean is then 0), as `mean_sd` does."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, block: np.ndarray) -> None:
        x = np.array(block, dtype=np.float64)
        self.count += 1
        if self.mean is None or self.m2 is None:
            self.mean, self.m2 = x, np.zeros_like(x)
            return
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, sd)`` as float32."""
        assert self.mean is not None and self.m2 is not None, "no block added"
        return self.mean.astype(np.float32), np.sqrt(self.m2 / self.count).astype(np.float32)


class SpreadMap:
    """The per-pixel standard deviation of a dense run, ``(D, H, W, K)``, filled as batches arrive.

    Stored as uint8 like `DenseMap` (laid out like ``Volume.data``): probabilities lie in [0, 1],
    so their sd is at most 0.5, kept as ``sd * 510``; NaN where a slice was not scored."""

    SCALE = 510.0

    def __init__(self, depth: int, height: int, width: int, classes: int):
        self.values = np.zeros((depth, height, width, classes), dtype=np.uint8)
        self.filled = np.zeros(depth, dtype=bool)

    def put(self, indices: np.ndarray, sd_block: np.ndarray) -> None:
        """The sd maps ``(n, H, W, K)`` (float) of slices ``indices``."""
        block = np.clip(np.nan_to_num(np.asarray(sd_block, dtype=np.float32), nan=0.0) * self.SCALE, 0, 255)
        self.values[np.asarray(indices)] = np.rint(block).astype(np.uint8)
        self.filled[np.asarray(indices)] = True

    def slice_sd(self, d: int) -> np.ndarray:
        """Slice ``d``'s sd maps ``(H, W, K)`` as float32 (NaN until it is filled)."""
        if not self.filled[d]:
            return np.full(self.values.shape[1:], np.nan, dtype=np.float32)
        return self.values[d].astype(np.float32) / self.SCALE
