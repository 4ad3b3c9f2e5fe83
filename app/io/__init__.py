"""Reading volumes: one entry point, `load_volume`, and one reader per file family.

- `loader`          `load_volume`: choose a reader, lay the image out, hash its files.
- `nibabel_formats` NIfTI-1/2, Analyze, MGH/MGZ, MINC, PAR/REC, ... via ``nibabel.load``.
- `dicom_series`    a folder: its largest DICOM series, slices ordered by position.
- `dicom_file`      one DICOM file: a slice, or a multi-frame image.
- `dicom_geometry`  slice order, spacing checks and RAS affine of DICOM planes.
- `dicom_pixels`    pixel decoding and modality LUT (rescale slope/intercept).
- `decode_pool`     compressed frames decoded in child processes (crash, hang, memory: a LoadError).
- `decode_child`    the child's side: header check, pydicom's decoders, shared memory.
- `codestream`      a bounded parser of JPEG / JPEG-LS / JPEG 2000 / RLE frame headers.
- `arrays`          ``.npy`` / ``.npz`` / ``.pt``, loaded without unpickling.
- `orientation`     closest-canonical RAS and the per-axis display layout, as index views.
- `hashing`         SHA-256 of the files read.
- `formats`         the file suffixes Slicewise opens, and the file-dialog filters.
- `memory`          the memory guard (refuse before allocating).

`load_volume` is imported on first use, so that `app.io.formats` is cheap to import (the viewer
and the cohort expansion use it before torch or nibabel is needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.io.loader import load_volume

__all__ = ["load_volume"]


def __getattr__(name: str):
    if name == "load_volume":
        from app.startup import heavy_import

        with heavy_import():  # torch's first import, often on the viewer's loader thread: the window keeps running
            from app.io.loader import load_volume

        return load_volume
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
