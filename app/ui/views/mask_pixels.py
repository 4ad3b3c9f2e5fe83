"""`MaskPixels`: one plane of a segmentation map turned into premultiplied ARGB pixels.

The plane is a strided (rows, cols, K) uint8 view of the map (`DenseMap.probabilities`); it is
read a class at a time into a uint8 label or probability plane, then looked up through a
256-entry uint32 table into the pixels, all in buffers kept from one plane to the next (no
allocation per move, nothing in float).  Modes (`app.session.MASK_MODES`):

- ``filled``: each foreground class's mask (sigmoid: probability at or above the map's
  threshold, later classes on top; softmax: the argmax) in its palette colour at the opacity;
- ``outline``: the same masks' edge pixels (a neighbour of another class), opaque;
- ``heat``: the highest foreground probability through the heat colormap, transparent at 0;
- ``uncertainty``: the same drawing of the run's per-pixel sd over its passes
  (`app.uncertainty.combine.SpreadMap`, uint8 sd × 510: 255 is an sd of 0.5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from app.ui.views.saliency_overlay import heat_lut

if TYPE_CHECKING:
    from app.segmentation.dense_map import DenseMap

HEAT_MODES = ("heat", "uncertainty")  # drawn through the heat colormap: a level per pixel, not a class

#: a colour per foreground class, in the map's class order (then round again)
PALETTE = ("#ff5252", "#69f0ae", "#448aff", "#ffd740", "#e040fb", "#18ffff", "#ff9e40", "#b2ff59")


def rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def class_colors(dense: DenseMap) -> dict[int, str]:
    """The palette colour of each foreground map index."""
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(dense.foreground)}


def premultiplied(rgba: np.ndarray) -> np.ndarray:
    """(n, 4) uint8 RGBA as (n,) uint32 premultiplied ARGB (Qt's ARGB32_Premultiplied)."""
    rgba = np.asarray(rgba, dtype=np.uint32)
    alpha = rgba[:, 3]
    r, g, b = ((rgba[:, c] * alpha + 127) // 255 for c in range(3))
    return ((alpha << 24) | (r << 16) | (g << 8) | b).astype(np.uint32)


def class_table(dense: DenseMap, alpha: int) -> np.ndarray:
    """Label ``i + 1`` → the i-th foreground class's colour at ``alpha``; 0 → transparent."""
    rgba = np.zeros((256, 4), dtype=np.uint8)
    for i, color in enumerate(class_colors(dense).values()):
        rgba[i + 1] = (*rgb(color), alpha)
    return premultiplied(rgba)


def heat_table(opacity: float) -> np.ndarray:
    """Probability level 0…255 → the heat colormap, its alpha ramp scaled by ``opacity``."""
    rgba = heat_lut(256).astype(np.float32)
    rgba[:, 3] *= opacity
    return premultiplied(np.rint(rgba).astype(np.uint8))


class MaskPixels:
    """Buffers for one view's overlay, kept between planes of the same size."""

    def __init__(self) -> None:
        self._shape: tuple[int, int] = (0, 0)
        self._labels = np.empty((0, 0), np.uint8)  # label (palette slot + 1, 0: none) or probability level
        self._best = np.empty((0, 0), np.uint8)  # the highest probability so far
        self._hit = np.empty((0, 0), bool)
        self._edge = np.empty((0, 0), bool)
        self.pixels = np.empty((0, 0), np.uint32)
        self._tables: dict[tuple, np.ndarray] = {}

    def _buffers(self, shape: tuple[int, int]) -> None:
        if shape != self._shape:
            self._shape = shape
            self._labels = np.empty(shape, np.uint8)
            self._best = np.empty(shape, np.uint8)
            self._hit = np.empty(shape, bool)
            self._edge = np.empty(shape, bool)
            self.pixels = np.empty(shape, np.uint32)

    def _table(self, dense: DenseMap, mode: str, opacity: float) -> np.ndarray:
        key = (mode, round(opacity, 3), tuple(dense.foreground))
        if key not in self._tables:
            if len(self._tables) > 16:
                self._tables.clear()
            alpha = 255 if mode == "outline" else round(255 * opacity)
            self._tables[key] = heat_table(opacity) if mode in HEAT_MODES else class_table(dense, alpha)
        return self._tables[key]

    def render(self, plane: np.ndarray, dense: DenseMap, mode: str, opacity: float) -> np.ndarray | None:
        """``plane`` (rows, cols, K) uint8 of ``dense`` drawn in ``mode``: (rows, cols) uint32
        premultiplied ARGB, this object's buffer (valid until the next render); None when
        nothing shows (most slices of a small finding: no lookup, nothing to blend at paint)."""
        self._buffers(plane.shape[:2])
        if mode in HEAT_MODES:
            values = self._highest(plane, dense)
        else:
            values = self._labelled(plane, dense)
            if mode == "outline":
                values = self._outline(values)
        if not values.any():
            return None
        np.take(self._table(dense, mode, opacity), values, out=self.pixels, mode="wrap")  # values < 256
        return self.pixels

    def _labelled(self, plane: np.ndarray, dense: DenseMap) -> np.ndarray:
        """Each pixel's foreground class as its palette slot + 1 (0: none)."""
        labels, hit = self._labels, self._hit
        slots = {k: i + 1 for i, k in enumerate(dense.foreground)}
        if dense.kind == "softmax":  # the argmax, ties to the lower index as np.argmax does
            best = self._best
            np.copyto(best, plane[..., 0])
            labels.fill(slots.get(0, 0))
            for k in range(1, dense.count):
                np.greater(plane[..., k], best, out=hit)
                np.copyto(labels, slots.get(k, 0), where=hit)
                np.maximum(best, plane[..., k], out=best)
            return labels
        labels.fill(0)
        level = dense.threshold_level
        for k, slot in slots.items():
            np.greater_equal(plane[..., k], level, out=hit)
            np.copyto(labels, slot, where=hit)
        return labels

    def _outline(self, labels: np.ndarray) -> np.ndarray:
        """Labels kept where a 4-neighbour has another label (the masks' edges), else 0."""
        edge, differs = self._edge, self._hit
        edge.fill(False)
        np.not_equal(labels[1:], labels[:-1], out=differs[1:])
        edge[1:] |= differs[1:]
        edge[:-1] |= differs[1:]
        np.not_equal(labels[:, 1:], labels[:, :-1], out=differs[:, 1:])
        edge[:, 1:] |= differs[:, 1:]
        edge[:, :-1] |= differs[:, 1:]
        np.multiply(labels, edge, out=self._best, casting="unsafe")
        return self._best

    def _highest(self, plane: np.ndarray, dense: DenseMap) -> np.ndarray:
        """The highest foreground probability level of each pixel."""
        best = self._best
        foreground = dense.foreground
        if not foreground:
            best.fill(0)
            return best
        np.copyto(best, plane[..., foreground[0]])
        for k in foreground[1:]:
            np.maximum(best, plane[..., k], out=best)
        return best
