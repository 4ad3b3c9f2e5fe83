"""Fit volume slices to what a model declares: size (resized with torch) and channels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from app.errors import ModelError


@dataclass(frozen=True)
class SliceShape:
    """The ``(height, width, channels)`` one slice must have for the model; ``flat`` when the
    model takes it flattened to ``height * width * channels`` features."""

    height: int
    width: int
    channels: int
    flat: bool = False

    @property
    def features(self) -> int:
        return self.height * self.width * self.channels

    def describe(self) -> str:
        hwc = f"{self.height}×{self.width}×{self.channels}"
        return f"{self.features} features ({hwc} flattened)" if self.flat else hwc


def image_shape(dims: tuple, volume_shape: tuple[int, int, int, int]) -> SliceShape:
    """Resolve an image input ``(H, W, C)`` (None = take the volume's) to a concrete shape."""
    _, vh, vw, vc = volume_shape
    h, w, c = dims
    return SliceShape(h or vh, w or vw, c or vc)


def flat_shape(features: int, volume_shape: tuple[int, int, int, int], hint: tuple | None = None) -> SliceShape:
    """Resolve a flattened input of ``features`` to the slice shape it was made from.

    ``hint`` (recorded beside built-in models) wins; otherwise the volume's own slice shape if it
    matches, else a square slice with the volume's channel count, 1 or 3 channels.
    """
    _, vh, vw, vc = volume_shape
    if hint is not None:
        shape = SliceShape(*hint, flat=True)
        if shape.features == features:
            return shape
    if vh * vw * vc == features:
        return SliceShape(vh, vw, vc, flat=True)
    for c in dict.fromkeys((vc, 1, 3)):
        side = math.isqrt(features // c) if features % c == 0 else 0
        if side and side * side * c == features:
            return SliceShape(side, side, c, flat=True)
    raise ModelError(
        f"model expects {features} features per slice, which is no square slice of 1, 3 or {vc} "
        f"channels; the volume's slices are {vh}×{vw}×{vc} = {vh * vw * vc}"
    )


def fit_slices(x: torch.Tensor, shape: SliceShape) -> torch.Tensor:
    """Fit slices ``(N, H, W, C)`` to ``shape``: adapt channels 1↔C, resize, flatten if asked."""
    n, h, w, c = x.shape
    if c != shape.channels:
        if c == 1:
            x = x.expand(n, h, w, shape.channels)
        elif shape.channels == 1:
            x = x.mean(dim=3, keepdim=True)
        else:
            raise ModelError(f"model expects {shape.channels} channels per slice; the volume has {c}")
    if (h, w) != (shape.height, shape.width):
        nchw = x.permute(0, 3, 1, 2)
        shrinking = shape.height < h or shape.width < w
        nchw = F.interpolate(nchw, size=(shape.height, shape.width), mode="bilinear", align_corners=False, antialias=shrinking)
        x = nchw.permute(0, 2, 3, 1)
    x = x.contiguous()
    return x.reshape(n, shape.features) if shape.flat else x
