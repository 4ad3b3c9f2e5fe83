"""Slice order and RAS affine of a stack of DICOM planes (files of a series, or frames).

Slices are ordered by ImagePositionPatient projected on the slice normal (the cross product
of the two ImageOrientationPatient vectors), as ITK/GDCM do; never by InstanceNumber.
DICOM patient coordinates are LPS: x and y are negated to get RAS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.io.messages import fail

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


def stack(planes: list[Plane], path: Path) -> tuple[list[int], np.ndarray, list[str]]:
    """(slice order, RAS affine of the array ``(slice, row, column)``, notes) for ``planes``.

    Raises `LoadError` when the orientations differ, two slices share a position, the gaps are
    not uniform or the slices do not lie on a line.
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
    if len(planes) > 1:
        gaps = np.diff(along[order])
        mean = float(gaps.mean())
        if gaps.min() <= SPACING_ATOL_MM:
            dupes = int(np.sum(gaps <= SPACING_ATOL_MM))
            fail(path, f"{dupes + 1} slices share a position (several volumes, echoes or time points in one series?)")
        if np.max(np.abs(gaps - mean)) > max(SPACING_RTOL * mean, SPACING_ATOL_MM):
            fail(path, f"slice spacing is not uniform ({gaps.min():.3g} to {gaps.max():.3g} mm; missing slices?)")
        step = (positions[order[-1]] - positions[order[0]]) / (len(planes) - 1)
        off_line = positions[order] - (positions[order[0]] + np.outer(np.arange(len(planes)), step))
        if np.max(np.linalg.norm(off_line, axis=1)) > max(0.05 * np.linalg.norm(step), 0.01):  # 5 % of a step, or 10 µm
            fail(path, "slice positions do not lie on a line")
        tilt = float(np.degrees(np.arccos(np.clip(abs(step @ normal) / np.linalg.norm(step), 0.0, 1.0))))
        if tilt > TILT_NOTE_DEG:
            notes.append(f"slices are sheared by {tilt:.1f}° (gantry tilt); shown without resampling")
    else:
        step = normal * planes[0].thickness

    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col * planes[0].pixel_spacing[0]
    affine[:3, 2] = row * planes[0].pixel_spacing[1]
    affine[:3, 3] = positions[order[0]]
    return order, LPS_TO_RAS @ affine, notes
