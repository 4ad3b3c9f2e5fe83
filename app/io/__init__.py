"""Reading volumes: one entry point, `load_volume`, and one reader per file family.

- `loader`          `load_volume`: choose a reader, lay the image out, hash its files.
- `nibabel_formats` NIfTI-1/2, Analyze, MGH/MGZ, MINC, PAR/REC, ... via ``nibabel.load``.
- `dicom_series`    a folder: its largest DICOM series, slices ordered by position.
- `dicom_file`      one DICOM file: a slice, or a multi-frame image.
- `dicom_geometry`  slice order, spacing checks and RAS affine of DICOM planes.
- `dicom_pixels`    pixel decoding and modality LUT (rescale slope/intercept).
- `arrays`          ``.npy`` / ``.npz`` / ``.pt``, loaded without unpickling.
- `orientation`     closest-canonical RAS and the per-axis display layout, as index views.
- `hashing`         SHA-256 of the files read.
"""

from app.io.loader import load_volume

__all__ = ["load_volume"]
