"""One DICOM file: a single slice, or a multi-frame image whose frames are the slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from app.io import dicom_geometry as geometry
from app.io.dicom_pixels import check_pixel_size, frames, n_frames, samples_per_pixel, stored_dtype, write_frame
from app.io.messages import check_volume_index, fail
from app.io.orientation import raw_affine
from app.io.stored import StoredImage

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def read_dicom_file(path: Path, volume_index: int) -> StoredImage:
    """Read the header of ``path`` (forcing files without the DICM preamble) and describe it."""
    try:
        ds = pydicom.dcmread(path, force=True)
    except InvalidDicomError as exc:
        fail(path, f"not a valid DICOM file ({exc})")
    if getattr(ds, "preamble", None) is None and not any(k in ds for k in PIXEL_KEYWORDS):
        fail(path, "not a DICOM image (no DICM marker and no pixel data)")
    return from_dataset(ds, path, volume_index, files=[path])


def from_dataset(ds: Dataset, path: Path, volume_index: int, files: list[Path]) -> StoredImage:
    """A `StoredImage` for the dataset ``ds`` (pixels decoded only when filled)."""
    if not any(k in ds for k in PIXEL_KEYWORDS):
        sop_class = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
        if str(sop_class) == DICOMDIR_CLASS:
            fail(path, "a DICOMDIR index, not an image; open the folder that holds the images")
        kind = getattr(sop_class, "name", "") or "this DICOM object"
        hint = "; truncated?" if "Rows" in ds or "Image Storage" in kind else ""
        fail(path, f"holds no pixel data ({kind}{hint})")
    check_volume_index(path, volume_index, 1)
    count = n_frames(ds)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows == 0 or cols == 0:
        fail(path, f"image has an empty dimension ({rows} x {cols} pixels)")
    check_pixel_size(ds, path, count, rows, cols)
    notes: list[str] = []
    planes, plane_note = frame_planes(ds, count)
    origins = None
    if planes is not None:
        stacked = geometry.stack(planes, path)
        order, affine, origins = stacked.order, stacked.affine, stacked.slice_origins
        notes += stacked.notes
    else:
        order, affine = list(range(count)), raw_affine((1.0, *_pixel_spacing(ds)))
        notes.append("no patient geometry (ImagePositionPatient / ImageOrientationPatient): frames shown as stored, 1 mm apart")
    if plane_note:
        notes.append(plane_note)
    if count == 1 and str(ds.get("Modality", "")) in ("CT", "MR", "PT", "NM"):
        notes.append("single slice (open its folder to load the whole series)")
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        notes.append("MONOCHROME1: high values are meant to display dark")
    if "DoseGridScaling" in ds:
        notes.append(f"dose values scaled by DoseGridScaling {float(ds.DoseGridScaling):g}")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")

    def fill(target: np.ndarray) -> None:
        pixels = frames(ds, path)
        for k, f in enumerate(order):
            group = per_frame[f] if per_frame and len(per_frame) == count else None
            write_frame(target[k], pixels[f], ds, group)

    return StoredImage(
        shape=(len(order), rows, cols),
        channels=samples_per_pixel(ds),
        fill=fill,
        original_dtype=stored_dtype(ds),
        files=files,
        affine=affine,
        notes=notes,
        slice_axis=0,
        slice_origins=origins,
    )


def frame_planes(ds: Dataset, count: int) -> tuple[list[geometry.Plane] | None, str]:
    """One `Plane` per frame, from functional groups or the top-level plane; plus a note."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    if per_frame and len(per_frame) == count:
        planes = []
        for group in per_frame:
            found = geometry.plane(
                _grouped(group, shared, "PlanePositionSequence", "ImagePositionPatient"),
                _grouped(group, shared, "PlaneOrientationSequence", "ImageOrientationPatient") or ds.get("ImageOrientationPatient"),
                _grouped(group, shared, "PixelMeasuresSequence", "PixelSpacing") or ds.get("PixelSpacing"),
                _grouped(group, shared, "PixelMeasuresSequence", "SpacingBetweenSlices")
                or _grouped(group, shared, "PixelMeasuresSequence", "SliceThickness"),
            )
            if found is None:
                break
            planes.append(found)
        else:
            return planes, ""
    first = geometry.plane(
        ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient"), ds.get("PixelSpacing"), _slice_step(ds)
    )
    if first is None:
        return None, ""
    if count == 1:
        return [first], ""
    normal = np.cross(first.orientation[:3], first.orientation[3:])
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is not None and len(offsets) == count:
        steps = np.asarray(offsets, dtype=np.float64) - float(offsets[0])
        note = ""
    else:
        steps = np.arange(count) * first.thickness
        note = f"multi-frame file without per-frame positions: frames stacked in file order, {first.thickness:g} mm apart"
    planes = [geometry.Plane(first.position + s * normal, first.orientation, first.pixel_spacing, first.thickness) for s in steps]
    return planes, note


def _grouped(group: Dataset, shared: Dataset | None, sequence: str, keyword: str):
    """``keyword`` from ``sequence`` in the per-frame group, else in the shared group."""
    for source in (group, shared):
        seq = source.get(sequence) if source is not None else None
        if seq and keyword in seq[0] and seq[0].get(keyword) not in (None, ""):
            return seq[0].get(keyword)
    return None


def _slice_step(ds: Dataset) -> float | None:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(keyword)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    return None


def _pixel_spacing(ds: Dataset) -> tuple[float, float]:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if spacing is not None and len(spacing) == 2 and all(float(s) > 0 for s in spacing):
        return float(spacing[0]), float(spacing[1])
    return 1.0, 1.0
