"""Occlusion sensitivity (Zeiler & Fergus): saliency without gradients, for any model the engine
can call (every ONNX model; Keras models as a second method beside Grad-CAM).

A square patch slides over the slice as the model sees it (its fitted input grid), with a stride;
each occluded copy shows, inside the patch, the slice blurred over twice the patch (its local
mean: the detail is gone, the coarse intensity stays, so the copy is not a slice with a black or
grey hole the model never saw; a flat fill drew the demo model's maps to the body's outline), and
the map at a pixel is the mean drop of the explained score over the copies whose patch covers it (rises count as 0, as
Grad-CAM's ReLU keeps only positive evidence).  A score behind a final sigmoid or softmax is
compared as its logit (log-probability), so a saturated output still moves.  All copies of a
slice go in batches through the engine's own model call (the traced Keras call or the ONNX
Runtime runner), on the thread that scores; the inputs are built as scoring builds them (the
channel recipe, normalisation and the strategy's plan: `SaliencyComputer`).  The map is resized
onto the slice's own pixel grid and scaled to [0, 1], as Grad-CAM's.

The patch is an eighth of the input's shorter side and the stride half the patch, unless given;
both are recorded in `method`: ``occlusion (patch 8, stride 4)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from app.errors import ModelError
from app.inference.models import LoadedModel
from app.inference.saliency import SaliencyComputer
from app.strategies import Strategy

if TYPE_CHECKING:
    from app.inference.engine import Engine

METHODS = ("gradcam", "occlusion")
PATCH_FRACTION = 8  # the default patch: the input's shorter side / 8
EPS = 1e-7


class OcclusionComputer(SaliencyComputer):
    """Occlusion maps of one model under one strategy; as `SaliencyComputer` (``maps``,
    ``method``), with ``patch`` and ``stride`` in pixels of the model's input (None: from its size).
    The embedding strategy's encoder/head split is not followed (use Grad-CAM there)."""

    def __init__(
        self,
        engine: Engine,
        strategy: Strategy,
        model: LoadedModel | None = None,
        *,
        output: str | None = None,
        score_index: int = 0,
        batch_size: int = 32,
        patch: int | None = None,
        stride: int | None = None,
    ):
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, not {batch_size}")
        for name, value in (("patch", patch), ("stride", stride)):
            if value is not None and value < 1:
                raise ModelError(f"occlusion {name} must be at least 1 pixel, not {value}")
        self.engine = engine
        self._use_model(engine, strategy, model, output, score_index, batch_size)
        if self._parts is not None:
            raise ModelError(f"{self.model.name}: occlusion does not follow the {strategy.name} strategy's slab pooling; use Grad-CAM (--saliency-method gradcam)")
        self.patch, self.stride = patch, stride
        self._used: tuple[int, int] | None = None
        self._traced: dict = {}
        self._norm = None
        self._whole = None

    @property
    def method(self) -> str:
        """``occlusion (patch 8, stride 4)``: the patch and stride of the last maps (or asked for)."""
        patch, stride = self._used or (self.patch, self.stride)
        if patch is None:
            return f"occlusion (patch 1/{PATCH_FRACTION} of the input, stride half the patch)"
        return f"occlusion (patch {patch}, stride {stride or max(1, patch // 2)})"

    @property
    def settings(self) -> dict:
        """Patch and stride (input pixels) of the last maps, for the saliency sidecar."""
        patch, stride = self._used or (self.patch, self.stride)
        return {"patch": patch, "stride": stride}

    def _device(self):
        return self.engine._device(self.model)

    def _call(self, x: torch.Tensor, steps: np.ndarray, direction: np.ndarray, volume_shape: tuple) -> np.ndarray:
        """Maps ``(B, h, w)`` on the model's input grid for the inputs ``x``, one per slice."""
        call = self.engine._traced_call(self.model, (None, *x.shape[1:]))
        grid = self._slice_shape(x, volume_shape) or tuple(x.shape[2:] if self.sequence else x.shape[1:])
        if len(grid) != 3:
            raise ModelError(f"occlusion needs image inputs, (H, W, C) or flattened; this model takes {tuple(x.shape[1:])}")
        h, w, _ = grid
        patch = min(self.patch or max(1, round(min(h, w) / PATCH_FRACTION)), h, w)
        stride = self.stride or max(1, patch // 2)
        self._used = (patch, stride)
        tops, lefts = _starts(h, patch, stride), _starts(w, patch, stride)
        corners = [(t, left) for t in tops for left in lefts]
        return np.stack([self._map(call, sample, int(at), grid, patch, corners) for sample, at in zip(x, steps)])

    def _map(self, call: Callable, sample: torch.Tensor, at: int, grid: tuple, patch: int, corners: list) -> np.ndarray:
        """One slice's map: the original and every occluded copy through ``call`` in batches."""
        h, w, c = grid
        step = (at if at >= 0 else sample.shape[0] // 2) if self.sequence else None
        image = (sample[step] if step is not None else sample).reshape(h, w, c)
        fill = blurred(image, patch)
        per_call = max(1, self.batch_size // (sample.shape[0] if self.sequence else 1))
        scores: list[np.ndarray] = []
        variants = [None, *corners]  # the original first
        for start in range(0, len(variants), per_call):
            chunk = variants[start : start + per_call]
            copies = image.expand(len(chunk), h, w, c).clone()
            for row, corner in enumerate(chunk):
                if corner is not None:
                    region = (slice(corner[0], corner[0] + patch), slice(corner[1], corner[1] + patch))
                    copies[row][region] = fill[region]
            if step is not None:
                batch = sample.expand(len(copies), *sample.shape).clone()
                batch[:, step] = copies.reshape(len(copies), *sample.shape[1:])
            else:
                batch = copies.reshape(len(copies), *sample.shape)
            scores.append(self._scores(np.asarray(call(batch.contiguous())), step))
        flat = np.concatenate(scores)
        drops = np.maximum(flat[0] - flat[1:], 0.0)
        total, covered = np.zeros((h, w), np.float64), np.zeros((h, w), np.float64)
        for drop, (top, left) in zip(drops, corners):
            total[top : top + patch, left : left + patch] += drop
            covered[top : top + patch, left : left + patch] += 1
        return (total / np.maximum(covered, 1)).astype(np.float32)

    def _scores(self, y: np.ndarray, step: int | None) -> np.ndarray:
        """The explained score per row of an output batch, as a logit where the model squashes it."""
        y = y.astype(np.float64)
        if step is not None and y.ndim == 3:  # per-step scores (n, T, K): the slice's own step
            y = y[:, min(step, y.shape[1] - 1)]
        elif y.ndim > 2:  # a dense output (n, H, W, K): its mean over the slice
            y = y.reshape(len(y), -1, y.shape[-1]).mean(axis=1)
        p = y.reshape(len(y), -1)[:, self.score_index]
        if self.model.activation == "sigmoid":
            p = np.clip(p, EPS, 1 - EPS)
            return np.log(p) - np.log1p(-p)
        if self.model.activation == "softmax":
            return np.log(np.clip(p, EPS, 1.0))
        return p


def blurred(image: torch.Tensor, patch: int) -> torch.Tensor:
    """``image`` ``(h, w, c)`` box-blurred over ``2 * patch + 1`` pixels (edges: the mean of what
    is inside): what an occluded patch shows instead of its detail."""
    k = 2 * patch + 1
    nchw = image.permute(2, 0, 1)[None]
    return F.avg_pool2d(nchw, k, 1, patch, count_include_pad=False)[0].permute(1, 2, 0)


def _starts(size: int, patch: int, stride: int) -> list[int]:
    """Patch offsets along one axis: every ``stride``, the last flush with the edge."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def saliency_computer(
    engine: Engine,
    strategy: Strategy,
    model: LoadedModel | None = None,
    method: str | None = None,
    **options,
) -> SaliencyComputer:
    """The saliency maps asked for: ``gradcam`` (a Keras model's gradients) or ``occlusion``;
    None: Grad-CAM for a Keras model, occlusion for an ONNX model (which has no gradients here)."""
    if method is not None and method not in METHODS:
        raise ModelError(f"unknown saliency method {method!r}: choose one of {', '.join(METHODS)}")
    backend = model.backend if model is not None else "keras"
    if method == "gradcam" and backend == "onnx":
        raise ModelError(f"{model.name}: Grad-CAM needs a Keras model's gradients; an ONNX model's maps are by occlusion (--saliency-method occlusion)")
    if method == "occlusion" or backend == "onnx":
        return OcclusionComputer(engine, strategy, model, **options)
    options.pop("patch", None), options.pop("stride", None)
    return SaliencyComputer(engine, strategy, model, **options)
