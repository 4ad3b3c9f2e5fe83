"""Intensity normalisation: explicit, parsed from a short spec, and recorded in every output.

Specs: ``none``, ``minmax`` (volume min/max → [0, 1]), ``zscore`` (volume mean/std → 0/1) and
``window:CENTER,WIDTH`` (clip to the window, then → [0, 1]).  Statistics are taken once over the
whole volume, so batches normalised one after another match a whole-volume normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from app.buffers import aligned_empty
from app.errors import SlicewiseError
from app.text_input import short

MODES = ("none", "minmax", "zscore", "window:CENTER,WIDTH")
MAX_INTENSITY = 1e9  # far beyond any scanner's values, and float32 keeps (x - c) / w finite
MIN_WIDTH = 1e-6


@dataclass(frozen=True)
class Normalization:
    """An affine intensity map ``(x - offset) / scale``, optionally clipped to [0, 1]."""

    spec: str
    offset: float = 0.0
    scale: float = 1.0
    clip: bool = False
    zero_nonfinite: bool = False  # NaN/Inf voxels become 0 after mapping (their slices are flagged elsewhere)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == torch.float32 and (self.spec != "none" or self.zero_nonfinite):
            return self._on_cpu(x)
        if self.spec != "none":
            x = x.sub(self.offset).mul_(1.0 / self.scale)
            if self.clip:
                x.clamp_(0.0, 1.0)
        if self.zero_nonfinite:
            x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        return x

    def _on_cpu(self, x: torch.Tensor) -> torch.Tensor:
        """The same map in NumPy, into one new array, in place from there.

        NumPy's element-wise loops run on the calling thread only.  torch's would use its OpenMP
        pool, whose workers then spin for milliseconds after every op and take the cores from
        the model call that follows (measured: a 20 ms TensorFlow batch takes 24 ms right after
        a torch op).  And NumPy asks for transparent huge pages for large arrays, which makes a
        fresh output several times cheaper to fault in than ``torch.empty``'s.
        """
        buf, src = aligned_empty(x.shape), x.detach().numpy()
        if self.spec != "none":
            np.subtract(src, np.float32(self.offset), out=buf)
            np.multiply(buf, np.float32(1.0 / self.scale), out=buf)
            if self.clip:
                np.clip(buf, np.float32(0.0), np.float32(1.0), out=buf)  # NaN stays NaN, as with clamp
        else:
            np.copyto(buf, src)
        if self.zero_nonfinite:
            np.nan_to_num(buf, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return torch.from_numpy(buf)


def parse_spec(spec: str) -> str:
    """Check a normalisation spec and return it in canonical form; raise a clear error if bad."""
    spec = spec.strip().lower()
    if spec in ("none", "minmax", "zscore"):
        return spec
    if spec.startswith("window:"):
        try:
            center, width = (float(v) for v in spec[len("window:") :].split(","))
        except ValueError:
            raise SlicewiseError(f"bad window {short(spec, 40)}: expected window:CENTER,WIDTH, e.g. window:40,400") from None
        wrong = window_problem(center, width)
        if wrong:
            raise SlicewiseError(f"bad window {short(spec, 40)}: {wrong}")
        return f"window:{center:g},{width:g}"
    raise SlicewiseError(f"unknown normalisation {short(spec, 40)}: choose one of {', '.join(MODES)}")


def window_problem(center: float, width: float) -> str | None:
    """What is wrong with an intensity window, or None: both finite, the centre within
    ±`MAX_INTENSITY`, the width in [`MIN_WIDTH`, `MAX_INTENSITY`] (so its float32 map is finite)."""
    if not (math.isfinite(center) and math.isfinite(width)):
        return "needs a finite centre and width"
    if abs(center) > MAX_INTENSITY or not MIN_WIDTH <= width <= MAX_INTENSITY:
        return f"needs a centre within ±{MAX_INTENSITY:g} and a width from {MIN_WIDTH:g} to {MAX_INTENSITY:g}"
    return None


def fit(spec: str, volume: torch.Tensor, zero_nonfinite: bool = False) -> Normalization:
    """Fit ``spec`` to ``volume``'s statistics (ignoring NaN/Inf voxels)."""
    spec = parse_spec(spec)
    if spec == "none":
        return Normalization(spec, zero_nonfinite=zero_nonfinite)
    if spec.startswith("window:"):
        center, width = (float(v) for v in spec[len("window:") :].split(","))
        return Normalization(spec, offset=center - width / 2, scale=width, clip=True, zero_nonfinite=zero_nonfinite)
    lo, hi, mean, std = _statistics(volume)
    if spec == "minmax":
        return Normalization(spec, offset=lo, scale=(hi - lo) or 1.0, zero_nonfinite=zero_nonfinite)
    return Normalization(spec, offset=mean, scale=std or 1.0, zero_nonfinite=zero_nonfinite)


def nonfinite_slices(volume: torch.Tensor, chunk: int = 16) -> np.ndarray:
    """Indices of the slices (along axis 0) that hold a NaN or infinite voxel."""
    if volume.device.type == "cpu" and volume.dtype == torch.float32 and volume.is_contiguous() and volume.ndim >= 1:
        return _nonfinite_slices_cpu(volume.detach().numpy())
    bad = [
        torch.nonzero(~torch.isfinite(volume[start : start + chunk]).flatten(1).all(dim=1)).flatten() + start
        for start in range(0, volume.shape[0], chunk)
    ]
    return torch.cat(bad).numpy() if bad else np.empty(0, dtype=np.int64)


def _nonfinite_slices_cpu(volume: np.ndarray) -> np.ndarray:
    """The same in one single-threaded NumPy pass: a slice's float32 sum is finite when all its
    voxels are (a NaN or Inf makes it NaN or Inf); only the slices whose sum is not (a NaN or Inf
    voxel, or finite values that overflow the sum) are then checked voxel by voxel."""
    depth = volume.shape[0]
    if volume.size == 0:
        return np.empty(0, dtype=np.int64)
    flat = volume.reshape(depth, -1)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum only makes a slice a suspect
        suspects = np.flatnonzero(~np.isfinite(np.add.reduce(flat, axis=1)))
    return np.array([d for d in suspects if not np.isfinite(flat[d]).all()], dtype=np.int64)


def _statistics(volume: torch.Tensor, chunk: int = 16) -> tuple[float, float, float, float]:
    """Min, max, mean and std of the finite voxels, in float64, a few slices at a time."""
    lo, hi, total, total_sq, count = float("inf"), float("-inf"), 0.0, 0.0, 0
    for start in range(0, volume.shape[0], chunk):
        part = volume[start : start + chunk]
        if part.device.type == "cpu" and part.dtype == torch.float32 and part.is_contiguous():  # NumPy, no masked copy unless needed
            flat = part.numpy().reshape(-1)
            wide = flat.astype(np.float64)
            part_sum = float(wide.sum())
            if np.isfinite(part_sum) and flat.size:  # every voxel finite (a NaN or Inf would make the sum so)
                lo, hi = min(lo, float(flat.min())), max(hi, float(flat.max()))
                total, total_sq, count = total + part_sum, total_sq + float(np.dot(wide, wide)), count + flat.size
                continue
        part = part[torch.isfinite(part)].double()
        if part.numel():
            lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
            total += float(part.sum())
            total_sq += float((part * part).sum())
            count += part.numel()
    if count == 0:
        return 0.0, 1.0, 0.0, 1.0
    mean = total / count
    return lo, hi, mean, max(total_sq / count - mean * mean, 0.0) ** 0.5
