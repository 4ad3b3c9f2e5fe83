"""`DensePlan`: the model calls that put a dense model's maps on the volume's own grid.

A 2D model sees one slice at a time; a 3D model a block of slices.  Along each of the model's
spatial axes the window is either the model's fixed size (windows slide over the grid, blended
with Gaussian weights, `app.segmentation.tiling`) or, where the model takes any size, the whole
axis padded to the model's stride (by repeating the edge) and cropped back.  ``fit="resize"``
resamples each slice to a fixed 2D input instead, and the map back.

Windows go to the model in batches in depth order; `read` hands back the maps of the slices
that no window still to come touches, so the map streams slice by slice.  The sums of the slices
in flight live in a `Blend`: the plan has one, and `blender` makes more (an uncertainty method
blends each pass's windows apart, `app.uncertainty.passes`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from app.errors import ModelError
from app.segmentation import tiling
from app.segmentation.detect import DenseSpec
from app.strategies.base import Normalize, Plan, Step, shape_text

FITS = ("tile", "resize")
MAX_BATCH_VOXELS = 1 << 19  # input voxels per model call (2 slices of 512 × 512, 32 tiles of 128 × 128): a U-Net's activations are tens of times that

_STRIDES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # keras model → the stride found by trying


@dataclass(frozen=True)
class DenseStep(Step):
    """A batch of windows: ``origins[i]`` is window i's first voxel ``(d, h, w)`` on the grid."""

    origins: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class Tiling:
    """How the windows lie: the window per axis ``(d, h, w)``, the padded grid, the overlap and
    fit; what the sidecar records."""

    window: tuple[int, int, int]
    grid: tuple[int, int, int]
    overlap: float
    fit: str
    stride: int

    def describe(self) -> dict:
        return {"window": list(self.window), "overlap": self.overlap, "fit": self.fit, "stride": self.stride}


def find_stride(model, spec: DenseSpec, backend: str = "keras") -> int:
    """The smallest power of 2 that a fully convolutional model's free sizes must be a multiple
    of: tried on blank inputs of 3 × m voxels (a multiple of m, not of 2m) until one gives a map
    of the same size (a U-Net with k poolings: 2^k).  ``model``: a Keras model, or an ONNX
    runner (``backend="onnx"``: NumPy in, NumPy out)."""
    if model in _STRIDES:
        return _STRIDES[model]
    m = 1
    while m <= tiling.MAX_STRIDE:
        size = tuple(s or 3 * m for s in spec.spatial)
        shape = (1, spec.channels or 1, *size) if spec.channels_first else (1, *size, spec.channels or 1)
        try:
            x = np.zeros(shape, np.float32)
            y = np.asarray(model(x) if backend == "onnx" else model(x, training=False))
            got = y.shape[2:] if spec.channels_first else y.shape[1:-1]
            if tuple(got) == size:
                _STRIDES[model] = m
                return m
        except Exception:  # noqa: BLE001,S110 - a size the model cannot take: try the next multiple
            pass
        m *= 2
    raise ModelError(f'no input size up to a multiple of {tiling.MAX_STRIDE} gives a map of the same size; say its "stride" in the model\'s JSON')


class DensePlan(Plan):
    """The windows of a dense model over a volume ``(D, H, W, C)``, batched, and the blending of
    their outputs back onto the grid."""

    def __init__(self, volume_shape: tuple[int, int, int, int], spec: DenseSpec, batch_size: int, stride: int, overlap: float, fit: str):
        depth, height, width, channels = volume_shape
        if fit not in FITS:
            raise ModelError(f"--fit must be one of {', '.join(FITS)}, not {fit!r}")
        if spec.channels and channels != spec.channels:
            raise ModelError(f"model expects {spec.channels} channels per voxel; the volume gives {channels}")
        self.spec, self.depth, self.size = spec, depth, (height, width)
        self.resize = fit == "resize" and spec.fixed
        if self.resize and spec.dims == 3:
            raise ModelError("--fit resize is for 2D models; a 3D model runs in sliding windows (--fit tile)")
        if self.resize and None in spec.spatial:
            raise ModelError(f"--fit resize needs a model of fixed height and width, not {shape_text(spec.spatial)}")
        full = (depth, height, width) if spec.dims == 3 else (1, height, width)
        fixed = spec.spatial if spec.dims == 3 else (1, *spec.spatial)
        window = tuple(f if f else tiling.padded(n, stride) for f, n in zip(fixed, full))
        if self.resize:
            window, grid = (1, *spec.spatial), (1, *spec.spatial)
        else:
            grid = tuple(max(n, w) for n, w in zip(full, window))
        self.tiling = Tiling(window, grid, overlap, "resize" if self.resize else "tile", stride)  # type: ignore[arg-type]
        along = [tiling.starts(g, w, overlap) for g, w in zip(grid, window)]
        if spec.dims == 2:
            along[0] = list(range(depth))
        self.origins = [(d, h, w) for d in along[0] for h in along[1] for w in along[2]]
        blended = tuple(len(a) > 1 for a in along[1:]) if spec.dims == 2 else tuple(len(a) > 1 for a in along)
        self.weights = tiling.gaussian(window if spec.dims == 3 else window[1:]) if any(blended) else None
        per_window = int(np.prod(window)) * max(channels, 1)
        self.batch = max(1, min(batch_size, MAX_BATCH_VOXELS // per_window))
        self.calls = -(-len(self.origins) // self.batch)
        c = spec.channels or channels
        inner = (*window[1:],) if spec.dims == 2 else window
        self.signature = (None, c, *inner) if spec.channels_first else (None, *inner, c)
        self._blend = Blend(self)

    # -- the model's inputs --------------------------------------------------------------------

    def steps(self, data: torch.Tensor, normalize: Normalize, batch_size: int) -> Iterator[Step]:
        cache: dict[str, object] = {"range": (-1, -1), "block": None}
        for start in range(0, len(self.origins), self.batch):
            origins = self.origins[start : start + self.batch]
            x = np.stack([self._window(data, normalize, origin, cache) for origin in origins])
            if self.spec.channels_first:
                x = np.moveaxis(x, -1, 1)
            yield DenseStep(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), np.asarray(sorted({o[0] for o in origins})), tuple(origins))

    def _window(self, data, normalize: Normalize, origin: tuple[int, int, int], cache: dict) -> np.ndarray:
        """Window ``origin`` of the padded grid, channels last (``(h, w, C)`` or ``(d, h, w, C)``)."""
        d, h, w = origin
        wd, wh, ww = self.tiling.window
        lo, hi = (d, min(self.depth, d + wd)) if self.spec.dims == 3 else (d, d + 1)
        if self.spec.dims == 2 and not (cache["range"][0] <= d < cache["range"][1]):
            lo, hi = d, min(self.depth, d + self.batch)  # a chunk of slices, read once
        elif self.spec.dims == 2:
            lo, hi = cache["range"]
        if cache["range"] != (lo, hi):
            block = normalize(data[lo:hi]).numpy()
            if self.resize:
                block = _resize(block, self.tiling.window[1:])
            else:
                block = tiling.pad_edges(block, (hi - lo if self.spec.dims == 2 else wd, *self.tiling.grid[1:]), (0, 1, 2))
            cache["range"], cache["block"] = (lo, hi), block
        block = cache["block"]
        if self.spec.dims == 2:
            return block[d - lo, h : h + wh, w : w + ww]
        return block[:, h : h + wh, w : w + ww]

    # -- the model's outputs -------------------------------------------------------------------

    def read(self, y: np.ndarray, step: Step) -> tuple[np.ndarray, np.ndarray] | None:
        """``(slice indices, probabilities (n, H, W, K) float32)`` of the slices finished by this
        batch, or None when it finished none."""
        return self._blend.read(y, step)

    def blender(self) -> Blend:
        """A fresh accumulator on this plan's windows: `Blend.read` as `read`, with sums of its own."""
        return Blend(self)


class Blend:
    """The weighted sums of the slices in flight of one stream of window outputs over a `DensePlan`
    (only the band of slices that windows still to come touch)."""

    def __init__(self, plan: DensePlan):
        self.plan = plan
        self._sums: dict[int, np.ndarray] = {}
        self._weight_sums: dict[int, np.ndarray] = {}
        self._read = 0  # windows read so far
        self._emitted = 0  # slices handed back so far

    def read(self, y: np.ndarray, step: Step) -> tuple[np.ndarray, np.ndarray] | None:
        """See `DensePlan.read`."""
        plan, origins = self.plan, step.origins  # type: ignore[attr-defined]
        y = np.asarray(y, dtype=np.float32)
        if plan.spec.channels_first:
            y = np.moveaxis(y, 1, -1)
        expected = (len(origins), *(plan.tiling.window[1:] if plan.spec.dims == 2 else plan.tiling.window), plan.spec.count)
        if y.shape != expected:
            raise ModelError(
                f"model gave a map of shape {shape_text(y.shape)} for a batch of windows {shape_text(tuple(step.x.shape))}; expected {shape_text(expected)}"
            )
        y = self._probabilities(y)
        for origin, out in zip(origins, y):
            self._add(origin, out if plan.spec.dims == 3 else out[None])
        self._read += len(origins)
        upto = plan.origins[self._read][0] if self._read < len(plan.origins) else plan.depth
        if upto <= self._emitted:
            return None
        indices = np.arange(self._emitted, upto)
        self._emitted = upto
        return indices, np.stack([self._finish(d) for d in indices])

    def _probabilities(self, y: np.ndarray) -> np.ndarray:
        spec = self.plan.spec
        if not spec.from_logits:
            return y
        if spec.kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-y))
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def _add(self, origin: tuple[int, int, int], out: np.ndarray) -> None:
        """Add a window's output ``(d, h, w, K)`` (weighted) into the sums of its slices."""
        plan = self.plan
        d0, h, w = origin
        _, gh, gw = plan.tiling.grid
        for j, plane in enumerate(out):
            d = d0 + j
            if d >= plan.depth:
                break
            if d not in self._sums:
                self._sums[d] = np.zeros((gh, gw, plan.spec.count), np.float32)
                self._weight_sums[d] = np.zeros((gh, gw), np.float32)
            weight = None if plan.weights is None else (plan.weights[j] if plan.spec.dims == 3 else plan.weights)
            rows, cols = slice(h, h + plane.shape[0]), slice(w, w + plane.shape[1])
            if weight is None:
                self._sums[d][rows, cols] += plane
                self._weight_sums[d][rows, cols] += 1.0
            else:
                self._sums[d][rows, cols] += plane * weight[..., None]
                self._weight_sums[d][rows, cols] += weight

    def _finish(self, d: int) -> np.ndarray:
        """Slice ``d``'s blended map, cropped (or resized) back to the volume's ``(H, W, K)``."""
        total, weight = self._sums.pop(d), self._weight_sums.pop(d)
        height, width = self.plan.size
        if self.plan.resize:
            return _resize((total / weight[..., None])[None], (height, width))[0]
        return total[:height, :width] / weight[:height, :width, None]


def _resize(block: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Slices ``(n, h, w, C)`` resampled to ``size`` (bilinear; antialiased when shrinking)."""
    if tuple(block.shape[1:3]) == tuple(size):
        return block
    nchw = torch.from_numpy(np.ascontiguousarray(block)).permute(0, 3, 1, 2)
    shrinking = size[0] < block.shape[1] or size[1] < block.shape[2]
    out = F.interpolate(nchw, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrinking)
    return out.permute(0, 2, 3, 1).contiguous().numpy()
