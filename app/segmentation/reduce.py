"""Per-slice scores from a dense map (``--reduce``), and per-class volumes.

``area``: the area in mm² of the pixels in each foreground class (a sigmoid map at or above the
threshold, a softmax class where it is the argmax), from the volume's in-plane spacing;
``max`` and ``mean``: the largest and the mean probability of each foreground class.
"""

from __future__ import annotations

import numpy as np

from app.errors import SlicewiseError
from app.segmentation.dense_map import LEVELS, REDUCTIONS, DenseMap

UNITS = {"area": "mm²", "max": "", "mean": ""}


def check_reduce(reduce: str) -> str:
    if reduce not in REDUCTIONS:
        raise SlicewiseError(f"--reduce must be one of {', '.join(REDUCTIONS)}, not {reduce!r}")
    return reduce


def pixel_area_mm2(spacing: tuple[float, float, float]) -> float:
    """The area of one in-plane pixel: rows × columns spacing (mm²)."""
    return float(spacing[1] * spacing[2])


def reduce_slices(dense: DenseMap, indices: np.ndarray, reduce: str, pixel_mm2: float) -> np.ndarray:
    """Scores ``(len(indices), foreground classes)`` of the slices ``indices`` of ``dense``."""
    fg = list(dense.foreground)
    if reduce == "area":
        masks = dense.masks(indices)  # (n, H, W, K)
        return masks[..., fg].sum(axis=(1, 2), dtype=np.int64).astype(np.float32) * np.float32(pixel_mm2)
    p = dense.probabilities[indices][..., fg]
    if reduce == "max":
        return p.max(axis=(1, 2)).astype(np.float32) / LEVELS
    return p.mean(axis=(1, 2), dtype=np.float64).astype(np.float32) / LEVELS


def class_volumes(dense: DenseMap, spacing: tuple[float, float, float]) -> dict[str, dict]:
    """Per class: its voxel count and its volume in mL (the background left out)."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = np.zeros(dense.count, dtype=np.int64)
    for d in range(dense.depth):  # slice by slice: no whole-volume boolean copy
        counts += dense.masks(d).sum(axis=(0, 1), dtype=np.int64)
    return {dense.classes[k]: {"voxels": int(counts[k]), "volume_ml": round(float(counts[k]) * voxel_ml, 6)} for k in dense.foreground}
