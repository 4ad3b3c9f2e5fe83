"""The three planes through a voxel, oriented as radiologists read them, as views of one tensor.

A `Plane` holds one index axis of the volume fixed (0: the depth slice the scrubber moves; 1
and 2: the two side views) and shows the other two on screen.  Which goes up and which goes
left follows the anatomy, not the array: superior at the top (else anterior), anterior on the
left of a sagittal view, and the patient's right on the screen's left in the radiological
convention (left on the left in the neurological one).  A plane is a strided view of the
volume's tensor, flipped and transposed as needed: showing it copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from app.volume import Volume

OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
#: the anatomical axis a direction letter belongs to, and that axis' rank for "goes up"
_UP_RANK = {"S": 0, "I": 0, "A": 1, "P": 1, "L": 2, "R": 2}
_PLANE_NAME = {frozenset("LRAP"): "axial", frozenset("LRSI"): "coronal", frozenset("APSI"): "sagittal"}


@dataclass(frozen=True)
class Plane:
    """The plane with index axis ``fixed`` held; ``vertical`` / ``horizontal`` are the index
    axes shown down / across the screen, each reversed when its flip is set."""

    fixed: int
    vertical: int
    flip_vertical: bool
    horizontal: int
    flip_horizontal: bool
    name: str  # "axial", "coronal" or "sagittal": what the plane shows
    labels: tuple[str, str, str, str]  # direction letters at the top, bottom, left and right edges

    def view(self, volume: Volume, voxel: tuple[int, int, int], channel: int = 0) -> np.ndarray:
        """The plane through ``voxel`` as shown on screen, row 0 on top: a read-only strided view
        of the volume's tensor, not a copy."""
        data = volume.data.numpy()[..., channel]
        index: list[slice | int] = [slice(None)] * 3
        index[self.fixed] = int(voxel[self.fixed])
        shown = self.oriented(data[tuple(index)])
        shown.flags.writeable = False
        return shown

    def image(self, volume: Volume, voxel: tuple[int, int, int], channel: int = 0) -> np.ndarray:
        """The plane through ``voxel`` as a C-contiguous float32 (rows, cols) array, row 0 on top."""
        return np.ascontiguousarray(self.view(volume, voxel, channel), dtype=np.float32)

    def oriented(self, plane: np.ndarray) -> np.ndarray:
        """A view of an array whose first two axes are the plane's two free index axes (in index
        order), as shown on screen, row 0 on top; trailing axes (a map's classes) are kept."""
        free = [a for a in range(3) if a != self.fixed]
        if free.index(self.vertical) == 1:
            plane = plane.swapaxes(0, 1)
        if self.flip_vertical:
            plane = plane[::-1]
        if self.flip_horizontal:
            plane = plane[:, ::-1]
        return plane

    def orient(self, plane: np.ndarray) -> np.ndarray:
        """`oriented`, as a C-contiguous float32 copy (an overlay map of the slice, say)."""
        return np.ascontiguousarray(self.oriented(plane), dtype=np.float32)

    def shape(self, volume: Volume) -> tuple[int, int]:
        """(rows, cols) on screen."""
        d, h, w, _ = volume.shape
        sizes = (d, h, w)
        return sizes[self.vertical], sizes[self.horizontal]

    def pixel_mm(self, volume: Volume) -> tuple[float, float]:
        """Size in mm of one screen row and one screen column."""
        spacing = volume.spacing
        return spacing[self.vertical], spacing[self.horizontal]

    def to_screen(self, volume: Volume, voxel: tuple[float, float, float]) -> tuple[float, float]:
        """(row, col) on screen of a voxel index (fractional indices allowed)."""
        rows, cols = self.shape(volume)
        row, col = float(voxel[self.vertical]), float(voxel[self.horizontal])
        return (rows - 1 - row if self.flip_vertical else row), (cols - 1 - col if self.flip_horizontal else col)

    def to_voxel(self, volume: Volume, row: int, col: int, through: tuple[int, int, int]) -> tuple[int, int, int]:
        """The voxel at screen (row, col) of the plane through ``through``."""
        rows, cols = self.shape(volume)
        voxel = list(through)
        voxel[self.vertical] = rows - 1 - row if self.flip_vertical else row
        voxel[self.horizontal] = cols - 1 - col if self.flip_horizontal else col
        return tuple(int(v) for v in voxel)  # type: ignore[return-value]


def plane(volume: Volume, fixed: int, radiological: bool = True) -> Plane:
    """The plane holding index axis ``fixed`` of ``volume``, oriented for reading."""
    toward = volume.orientation  # the direction each index axis (d, h, w) increases toward
    free = [a for a in range(3) if a != fixed]
    vertical = min(free, key=lambda a: _UP_RANK[toward[a]])
    horizontal = next(a for a in free if a != vertical)
    up = {"S": "S", "I": "S", "A": "A", "P": "A", "L": "R", "R": "R"}[toward[vertical]]
    flip_vertical = toward[vertical] == up  # index grows toward the top: reverse it so row 0 is on top
    h_dir = toward[horizontal]
    if h_dir in "LR":
        left = "R" if radiological else "L"
    else:
        left = "A" if h_dir in "AP" else "S"
    flip_horizontal = h_dir == left
    top, right = up, OPPOSITE[left]
    name = _PLANE_NAME.get(frozenset(toward[a] for a in free) | frozenset(OPPOSITE[toward[a]] for a in free), "oblique")
    return Plane(fixed, vertical, flip_vertical, horizontal, flip_horizontal, name, (top, OPPOSITE[top], left, right))


def planes(volume: Volume, radiological: bool = True) -> tuple[Plane, Plane, Plane]:
    """The depth plane and the two side planes (fixed index axis 0, 1, 2)."""
    return plane(volume, 0, radiological), plane(volume, 1, radiological), plane(volume, 2, radiological)
