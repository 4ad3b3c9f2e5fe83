"""`StoredImage`: what a format reader hands back before the volume is laid out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Writes the image, in stored index order ``(a0, a1, a2, C)``, into a float32 view of that shape.
Filler = Callable[[np.ndarray], None]


@dataclass
class StoredImage:
    """One 3D image as stored: its shape, geometry and a way to read its voxels.

    ``affine`` maps the stored index ``(a0, a1, a2, 1)`` to RAS+ mm (for files without
    geometry, the raw-array convention of `orientation.raw_affine`).  ``files`` are hashed.
    ``slice_axis`` is the stored axis the image was acquired along (its slices: axis 0 of DICOM
    and arrays and MINC, axis 2 of NIfTI and the other Fortran-ordered formats).  When those
    slices are unevenly spaced, ``slice_origins`` holds the true RAS mm of voxel ``(k, 0, 0)`` of
    each (``slice_axis`` is then 0) and the affine's axis-0 column is their median step.
    """

    shape: tuple[int, int, int]
    channels: int
    fill: Filler
    original_dtype: str
    files: list[Path]
    affine: np.ndarray
    n_volumes: int = 1
    notes: list[str] = field(default_factory=list)
    slice_axis: int = 2
    slice_origins: np.ndarray | None = None


def array_filler(array: np.ndarray) -> Filler:
    """A `Filler` that copies ``array`` (``(a0, a1, a2)`` or ``(a0, a1, a2, C)``) into the target."""

    def fill(target: np.ndarray) -> None:
        np.copyto(target, array[..., None] if array.ndim == 3 else array, casting="unsafe")

    return fill


def dtype_name(dtype: np.dtype) -> str:
    """A plain name for a stored dtype: ``int16``, ``float32``, ``rgb24`` (byte order dropped)."""
    dtype = np.dtype(dtype)
    if dtype.names:
        names = "".join(dtype.names).upper()
        if names in ("RGB", "RGBA") and all(dtype[n] == np.uint8 for n in dtype.names):
            return "rgb24" if names == "RGB" else "rgba32"
        return "structured(" + ",".join(f"{n}:{dtype_name(dtype[n])}" for n in dtype.names) + ")"
    return dtype.name
