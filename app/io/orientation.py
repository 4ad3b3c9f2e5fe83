"""From a stored array and its affine to the display layout of `app.volume.Volume`.

The stored axes are matched to RAS+ the way ``nibabel.as_closest_canonical`` does
(``io_orientation``), then permuted and flipped per the table in the `Volume` docstring.
Everything here is index bookkeeping on views: no voxel is copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.orientations import io_orientation

from app.volume import AXES

#: For each display axis (depth, rows, columns): the canonical RAS axis (0=R, 1=A, 2=S) and
#: whether the display index runs against it.  Mirrors the `Volume` docstring table.
DISPLAY: dict[str, tuple[tuple[int, bool], tuple[int, bool], tuple[int, bool]]] = {
    "axial": ((2, False), (1, True), (0, False)),  # I→S, A→P, L→R
    "coronal": ((1, False), (2, True), (0, False)),  # P→A, S→I, L→R
    "sagittal": ((0, False), (2, True), (1, True)),  # L→R, S→I, A→P
}


def raw_affine(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Pseudo affine for arrays without geometry, laid out ``(depth, rows, cols)`` as axial.

    Axis 0 runs inferior→superior, axis 1 anterior→posterior, axis 2 left→right, so the
    axial layout is the array itself (the same convention as `Volume.from_tensor`).
    """
    sd, sh, sw = spacing
    return np.array([[0, 0, sw, 0], [0, -sh, 0, 0], [sd, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class Layout:
    """How the display axes (d, h, w) take the stored axes: ``perm[o]`` is the stored axis
    shown along display axis ``o``, reversed when ``flip[o]``."""

    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    stored_shape: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        """Display shape (D, H, W)."""
        return tuple(self.stored_shape[p] for p in self.perm)  # type: ignore[return-value]

    def index_affine(self) -> np.ndarray:
        """4x4 map from display index (d, h, w, 1) to stored index (a0, a1, a2, 1)."""
        out = np.zeros((4, 4))
        out[3, 3] = 1.0
        for o, (axis, flipped) in enumerate(zip(self.perm, self.flip)):
            out[axis, o] = -1.0 if flipped else 1.0
            out[axis, 3] = self.stored_shape[axis] - 1 if flipped else 0.0
        return out

    def apply(self, stored: np.ndarray) -> np.ndarray:
        """View of ``stored`` (``(a0, a1, a2, ...)``) in display order."""
        view = stored.transpose(*self.perm, *range(3, stored.ndim))
        return view[tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)]

    def stored_view(self, display: np.ndarray) -> np.ndarray:
        """View of ``display`` (``(D, H, W, ...)``) in stored order, for writing into."""
        view = display[tuple(slice(None, None, -1) if f else slice(None) for f in self.flip)]
        inverse = tuple(self.perm.index(a) for a in range(3))
        return view.transpose(*inverse, *range(3, display.ndim))


def plan_layout(affine: np.ndarray, stored_shape: tuple[int, int, int], axis: str) -> Layout:
    """The `Layout` that shows a stored array with ``affine`` along ``axis``."""
    if axis not in DISPLAY:
        raise ValueError(f"unknown axis {axis!r} (expected one of {', '.join(AXES)})")
    ornt = io_orientation(affine)  # row a: (RAS axis, +1/-1) for stored axis a
    if np.isnan(ornt).any():
        raise ValueError("affine is degenerate")
    perm, flip = [], []
    for ras_axis, against in DISPLAY[axis]:
        stored_axis = int(np.flatnonzero(ornt[:, 0] == ras_axis)[0])
        perm.append(stored_axis)
        flip.append(against != (ornt[stored_axis, 1] < 0))
    return Layout(tuple(perm), tuple(flip), tuple(int(s) for s in stored_shape))  # type: ignore[arg-type]


#: the anatomical axis whose slices are perpendicular to each canonical RAS axis (0=R, 1=A, 2=S)
AXIS_ACROSS = {0: "sagittal", 1: "coronal", 2: "axial"}


def acquired_axis(affine: np.ndarray, slice_axis: int) -> str:
    """The anatomical axis (one of `AXES`) closest to stored axis ``slice_axis``: the plane the
    image was acquired in (a sagittal series gives "sagittal")."""
    ornt = io_orientation(affine)
    if np.isnan(ornt).any():
        raise ValueError("affine is degenerate")
    return AXIS_ACROSS[int(ornt[slice_axis, 0])]


def obliquity_deg(affine: np.ndarray) -> float:
    """Largest angle (degrees) between a voxel axis and the anatomical axis it is shown along."""
    columns = affine[:3, :3]
    norms = np.linalg.norm(columns, axis=0)
    if np.any(norms == 0):
        return 0.0
    cosines = np.max(np.abs(columns / norms), axis=0)
    return float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))
