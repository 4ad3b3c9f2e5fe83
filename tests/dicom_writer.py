"""Small DICOM files written from known arrays and geometry, for the tests of the loaders, the
bad-input corpus, the fuzzer and cohorts."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

IOPS = {
    "axial": [1, 0, 0, 0, 1, 0],
    "coronal": [1, 0, 0, 0, 0, -1],
    "sagittal": [0, 1, 0, 0, 0, -1],
    "oblique": [0.9659258, 0.2588190, 0, 0, 0, -1],
}


def base_dataset(path: Path, sop_class: str = CTImageStorage) -> FileDataset:
    """A CT dataset with 16-bit signed monochrome pixels; geometry and pixels are the caller's."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.Modality, ds.PatientName = "1.2.3", "CT", "Test^Io"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def write_series(
    folder: Path,
    volume: np.ndarray,
    iop: list[float],
    origin: list[float],
    spacing: tuple[float, float] = (0.5, 0.75),
    step: float = 2.5,
    slope: float = 1.0,
    intercept: float = 0.0,
    series_uid: str | None = None,
    number: int = 1,
    positions: list[np.ndarray] | None = None,
    seed: int = 0,
    prefix: str | None = None,
    patient: dict[str, str] | None = None,
) -> tuple[list[Path], list[np.ndarray]]:
    """Write slice k of ``volume`` (int16, (K, rows, cols)) at origin + k*step*normal; return the
    paths (in slice order) and the positions.

    File names and InstanceNumbers are shuffled so that neither carries the slice order, unless
    ``prefix`` is given: then slice k is ``<prefix><k>.dcm``.  ``patient``: more attributes for
    every file (e.g. ``FrameOfReferenceUID``, ``PatientID``: a complete image, as a SEG needs).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    if positions is None:
        positions = [np.array(origin) + k * step * normal for k in range(len(volume))]
    names = [f"img{n:03d}" for n in rng.sample(range(100, 999), len(volume))]
    instances = rng.sample(range(1, len(volume) + 1), len(volume))
    if prefix is not None:
        names, instances = [f"{prefix}{k}.dcm" for k in range(len(volume))], list(range(1, len(volume) + 1))
    series_uid = series_uid or generate_uid()
    paths = []
    for k, (name, instance) in enumerate(zip(names, instances)):
        path = folder / name
        ds = base_dataset(path)
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, number, f"series {number}"
        ds.InstanceNumber = instance
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in positions[k]]
        ds.PixelSpacing = [str(spacing[0]), str(spacing[1])]
        ds.SliceThickness = str(step)
        ds.Rows, ds.Columns = volume.shape[1:]
        ds.RescaleSlope, ds.RescaleIntercept = str(slope), str(intercept)
        for keyword, value in (patient or {}).items():
            setattr(ds, keyword, value)
        ds.PixelData = np.ascontiguousarray(volume[k], dtype="<i2").tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths, positions
