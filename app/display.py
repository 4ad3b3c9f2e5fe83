"""How a volume is first shown: its window/level, value range and histogram, and the CT presets.

Computed once per volume from a strided subsample (any thread: the GUI computes it on its
loader thread), so showing a slice never costs more than one image upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from app.volume import Volume

HISTOGRAM_BINS = 256
SAMPLE_VOXELS = 2_000_000

#: CT windows as (centre, width) in Hounsfield units, in the order of their keys (Alt+1…5)
CT_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "lung": (-600.0, 1500.0),
    "bone": (600.0, 2800.0),
    "soft tissue": (40.0, 400.0),
}
CT_SOFT_TISSUE = (-160.0, 240.0)  # the levels of the soft-tissue preset: how CT opens


@dataclass(frozen=True)
class DisplayRange:
    """A volume's initial levels (low, high), finite value range, and histogram (left edges, counts)."""

    levels: tuple[float, float]
    value_range: tuple[float, float]
    histogram: tuple[np.ndarray, np.ndarray]
    ct_like: bool = False  # values in Hounsfield units: air at about -1000


def window_levels(center: float, width: float) -> tuple[float, float]:
    """Levels (low, high) of a window given as centre and width."""
    return center - width / 2, center + width / 2


def window_of(levels: tuple[float, float]) -> tuple[float, float]:
    """(centre, width) of levels (low, high)."""
    lo, hi = levels
    return (lo + hi) / 2, hi - lo


def sample_voxels(volume: Volume, count: int = SAMPLE_VOXELS) -> np.ndarray:
    """Up to about ``count`` finite voxels, evenly strided through the volume."""
    flat = volume.data.numpy().reshape(-1)
    sample = flat[:: max(1, flat.size // count)]
    return sample[np.isfinite(sample)]


def _ct_like(lo: float, hi: float) -> bool:
    """Hounsfield units: the 1st percentile is air (about -1000) and soft tissue is above 0."""
    return -1100 <= lo <= -900 and hi > 0


def looks_like_ct(volume: Volume, sample: np.ndarray | None = None) -> bool:
    """Whether the volume's values look like CT in Hounsfield units (from a strided subsample)."""
    sample = sample_voxels(volume, SAMPLE_VOXELS // 8) if sample is None else sample
    if sample.size == 0:
        return False
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.0]))
    return _ct_like(lo, hi)


def display_range(volume: Volume, sample: np.ndarray | None = None) -> DisplayRange:
    """Initial window, value range and histogram.

    CT in Hounsfield units (air at about -1000) opens in the soft-tissue window (40/400), as
    radiology viewers do; anything else in its 1st-99th percentile range.
    """
    sample = sample_voxels(volume) if sample is None else sample
    if sample.size == 0:
        return DisplayRange((0.0, 1.0), (0.0, 1.0), _histogram(sample, (0.0, 1.0)))
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.0]))
    vmin, vmax = float(sample.min()), float(sample.max())
    ct_like = _ct_like(lo, hi)
    if ct_like:
        lo, hi = CT_SOFT_TISSUE
    if hi <= lo:
        lo, hi = vmin, vmax
    if hi <= lo:
        hi = lo + 1.0
    if vmax <= vmin:
        vmax = vmin + 1.0
    return DisplayRange((lo, hi), (vmin, vmax), _histogram(sample, (vmin, vmax)), ct_like)


def _histogram(sample: np.ndarray, value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    counts, edges = np.histogram(sample, bins=HISTOGRAM_BINS, range=value_range)
    return edges[:-1], counts.astype(np.float64)
