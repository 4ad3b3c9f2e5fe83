"""``--reference-mask``: Dice of a dense map against a label map on the same grid, per class and
per slice.

A softmax class k is compared with the reference's label k; one sigmoid map with the
reference's non-zero voxels; several sigmoid maps, map k with label k + 1.  A slice where both
are empty has no Dice (None).
"""

from __future__ import annotations

import numpy as np

from app.errors import SlicewiseError
from app.segmentation.dense_map import DenseMap
from app.volume import Volume


def check_grid(reference: Volume, volume: Volume) -> np.ndarray:
    """The reference's labels ``(D, H, W)`` as integers, after checking it lies on ``volume``'s grid."""
    if reference.shape[:3] != volume.shape[:3] or not np.allclose(reference.affine, volume.affine, atol=1e-3):
        raise SlicewiseError(
            f"{reference.source}: the reference mask is not on the grid of {volume.source} "
            f"(shape {reference.shape[:3]} vs {volume.shape[:3]}, or another affine): it must be a label map of the same voxels"
        )
    return np.rint(reference.data.numpy()[..., 0]).astype(np.int64)


def reference_masks(dense: DenseMap, labels: np.ndarray, k: int) -> np.ndarray:
    """The reference's voxels of map ``k``."""
    if dense.kind == "softmax":
        return labels == k
    return labels > 0 if dense.count == 1 else labels == k + 1


def dice(a: np.ndarray, b: np.ndarray, axis=None):
    """2|A∩B| / (|A| + |B|) (NaN where both are empty)."""
    both = np.logical_and(a, b).sum(axis=axis, dtype=np.int64)
    total = a.sum(axis=axis, dtype=np.int64) + b.sum(axis=axis, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * both / np.maximum(total, 1), np.nan)


def dice_scores(dense: DenseMap, labels: np.ndarray) -> dict[str, dict]:
    """Per foreground class: Dice over the volume and per slice (None for a slice empty in both)."""
    out = {}
    for k in dense.foreground:
        predicted = np.stack([dense.masks(d)[..., k] for d in range(dense.depth)])
        truth = reference_masks(dense, labels, k)
        whole = float(dice(predicted, truth))
        per_slice = dice(predicted, truth, axis=(1, 2))
        out[dense.classes[k]] = {
            "dice": None if np.isnan(whole) else round(whole, 6),
            "per_slice": [None if np.isnan(v) else round(float(v), 6) for v in per_slice],
        }
    return out
