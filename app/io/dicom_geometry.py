"""Slice order and RAS affine of a stack of DICOM planes (files of a series, or frames).

Slices are ordered by ImagePositionPatient projected on the slice normal (the cross product
of the two ImageOrientationPatient vectors), as ITK/GDCM do; never by InstanceNumber.
Unevenly spaced slices (a missing slice) are kept at their true positions, with a warning, as
3D Slicer does; what cannot be one volume is refused: mixed orientations or pixel spacings,
slices off a line, two different slices at one position.
DICOM patient coordinates are LPS: x and y are negated to get RAS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.io.messages import fail
from app.volume import WARNING_PREFIX

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORIENTATION_TOL = 1e-3  # absolute, on direction cosines
SPACING_RTOL = 0.01  # slice gaps may differ from their mean by 1 % ...
SPACING_ATOL_MM = 1e-3  # ... or 1 µm
TILT_NOTE_DEG = 0.5


@dataclass(frozen=True)
class Plane:
    """Geometry of one 2D image: position of its first voxel, orientation and pixel spacing."""

    position: np.ndarray  # (3,) LPS mm, centre of the first transmitted pixel
    orientation: np.ndarray  # (6,) row direction cosines, then column direction cosines
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    thickness: float = 1.0  # slice step to use when the stack has a single plane


def plane(position, orientation, pixel_spacing, thickness=None) -> Plane | None:
    """A `Plane` from raw DICOM values, or ``None`` when position or orientation is missing."""
    try:
        if position is None or orientation is None or len(position) != 3 or len(orientation) != 6:
            return None
        pos, iop = np.asarray(position, dtype=np.float64), np.asarray(orientation, dtype=np.float64)
        spacing = tuple(float(s) for s in pixel_spacing) if pixel_spacing is not None and len(pixel_spacing) == 2 else (1.0, 1.0)
        step = float(thickness) if thickness not in (None, "") and float(thickness) > 0 else 1.0
    except (TypeError, ValueError):
        return None
    if not (np.isfinite(pos).all() and np.isfinite(iop).all() and min(spacing) > 0):
        return None
    return Plane(pos, iop, spacing, step)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Stack:
    """How a list of planes becomes one volume ``(slice, row, column)``.

    ``order``: the planes' indices, slice by slice (duplicates dropped).  ``affine``: RAS affine of
    the array; when the slices are unevenly spaced its slice column is the median step and
    ``slice_origins`` holds the true RAS position of voxel ``(k, 0, 0)`` of each slice ``k``
    (None when the affine is exact).
    """

    order: list[int]
    affine: np.ndarray
    notes: list[str]
    slice_origins: np.ndarray | None = None


def stack(planes: list[Plane], path: Path, same_pixels: Callable[[int, int], bool] | None = None) -> Stack:
    """The `Stack` of ``planes``.

    Raises `LoadError` when the orientations or pixel spacings differ, the slices do not lie on
    a line, or two slices share a position - unless ``same_pixels(i, j)`` says that planes ``i``
    and ``j`` hold the same values: such a duplicate is dropped, with a note.
    """
    iop = planes[0].orientation
    if any(not np.allclose(p.orientation, iop, atol=ORIENTATION_TOL, rtol=0) for p in planes):
        fail(path, "slice orientations differ (ImageOrientationPatient varies; a localizer or mixed stacks?)")
    if any(not np.allclose(p.pixel_spacing, planes[0].pixel_spacing, rtol=1e-3) for p in planes):
        fail(path, "pixel spacing differs between slices")
    row, col = iop[:3], iop[3:]
    if np.linalg.norm(row) < 0.5 or np.linalg.norm(col) < 0.5:
        fail(path, f"ImageOrientationPatient {iop.tolist()} is not a pair of unit vectors")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 0.5:
        fail(path, "ImageOrientationPatient row and column vectors are parallel")
    normal /= np.linalg.norm(normal)

    positions = np.stack([p.position for p in planes])
    along = positions @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    notes: list[str] = []
    order = _drop_duplicates(order, along, path, same_pixels, notes)
    origins = None
    if len(order) > 1:
        first, last = positions[order[0]], positions[order[-1]]
        per_mm = (last - first) / (along[order[-1]] - along[order[0]])  # position change per mm along the normal
        expected = first + np.outer(along[order] - along[order[0]], per_mm)
        gaps = np.diff(along[order])
        typical = float(np.median(gaps))
        if np.max(np.linalg.norm(positions[order] - expected, axis=1)) > max(0.05 * typical, 0.01):  # 5 % of a step, or 10 µm
            fail(path, "slice positions do not lie on a line")
        tilt = float(np.degrees(np.arccos(np.clip(1.0 / np.linalg.norm(per_mm), 0.0, 1.0))))
        if tilt > TILT_NOTE_DEG:
            notes.append(f"slices are sheared by {tilt:.1f}° (gantry tilt); shown without resampling")
        step = per_mm * typical
        if np.max(np.abs(gaps - typical)) > max(SPACING_RTOL * typical, SPACING_ATOL_MM):
            notes.append(
                f"{WARNING_PREFIX}slices are not evenly spaced ({gaps.min():.3g} to {gaps.max():.3g} mm apart; missing slices?): "
                "shown at their true positions, without resampling"
            )
            origins = (LPS_TO_RAS[:3, :3] @ positions[order].T).T
        else:
            step = (last - first) / (len(order) - 1)
    else:
        step = normal * planes[0].thickness

    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col * planes[0].pixel_spacing[0]
    affine[:3, 2] = row * planes[0].pixel_spacing[1]
    affine[:3, 3] = positions[order[0]]
    return Stack(order, LPS_TO_RAS @ affine, notes, origins)


def _drop_duplicates(
    order: list[int], along: np.ndarray, path: Path, same_pixels: Callable[[int, int], bool] | None, notes: list[str]
) -> list[int]:
    """``order`` without the later of two planes at one position, if they hold the same pixels."""
    tied = [k for k in range(1, len(order)) if along[order[k]] - along[order[k - 1]] <= SPACING_ATOL_MM]
    if not tied:
        return order
    if same_pixels is None or not all(same_pixels(order[k - 1], order[k]) for k in tied):
        involved = {order[k] for k in tied} | {order[k - 1] for k in tied}
        fail(path, f"{len(involved)} slices share a position with different pixels (several volumes, echoes or time points in one series?)")
    dropped = {order[k] for k in tied}
    notes.append(f"dropped {len(dropped)} duplicate slices (the same position and pixels as a slice kept)")
    return [i for i in order if i not in dropped]
