"""``--mask-out``: a dense map written as NIfTI in the SOURCE file's voxel order and geometry.

The loader shows a volume in display order (`app.io.orientation.Layout`: axes permuted and
flipped from the stored array); a mask must undo that to overlay in FSLeyes, ITK-SNAP or 3D
Slicer without reslicing.  It is written with the stored array's affine: a NIfTI source's own
qform and sform with their codes, a DICOM series' patient-space affine (LPS turned to RAS, as the
loader reads it).  A label map is uint8 with slope 1 (class indices; several sigmoid maps: a 4D
stack of binary maps, one per class); ``probabilities=True`` writes float32 probabilities.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip

from app.atomic import write_atomic
from app.errors import SlicewiseError
from app.segmentation.dense_map import LEVELS, DenseMap
from app.volume import Volume

SUFFIXES = (".nii.gz", ".nii")
SCANNER = 1  # NIfTI xform code: scanner-based anatomical coordinates


def check_mask_path(path: str | os.PathLike) -> Path:
    """Refuse a ``--mask-out`` path that names no NIfTI file, before anything is scored (whether
    it can be written is the command's `app.outputs.OutputSet.claim`)."""
    path = Path(path)
    if not path.name.lower().endswith(SUFFIXES):
        raise SlicewiseError(f"cannot write {path}: the mask must be a .nii.gz or .nii file")
    return path


def source_voxel_order(volume: Volume, array: np.ndarray) -> np.ndarray:
    """``array`` laid out like ``volume.data`` (``(D, H, W, …)``, display order) in the source
    file's voxel order ``(a0, a1, a2, …)``: the inverse of the loader's reorientation (a view).
    A volume made in memory (no loader layout) is its own source order."""
    layout = volume.layout
    if layout is None:
        return array
    if tuple(array.shape[:3]) != tuple(layout.shape):
        raise ValueError(f"a map of shape {array.shape[:3]} is not on the volume's grid {tuple(layout.shape)}")
    return layout.stored_view(array)


def mask_array(dense: DenseMap, probabilities: bool = False) -> np.ndarray:
    """What is written, in display order: a uint8 label map ``(D, H, W)`` (several sigmoid maps:
    ``(D, H, W, K)`` binary), or float32 probabilities (``(D, H, W)`` for one map)."""
    if probabilities:
        p = dense.probabilities.astype(np.float32) / LEVELS
        return p[..., 0] if dense.count == 1 else p
    if dense.kind == "sigmoid" and dense.count > 1:
        return dense.masks(slice(None)).astype(np.uint8)
    return dense.label_map()


def mask_image(volume: Volume, dense: DenseMap, probabilities: bool = False) -> nib.Nifti1Image:
    """The NIfTI image of ``dense`` on ``volume``'s source grid, with the source's geometry."""
    data = np.ascontiguousarray(source_voxel_order(volume, mask_array(dense, probabilities)))
    affine = volume.stored_affine if volume.stored_affine is not None else volume.affine
    img = nib.Nifti1Image(data, affine)
    header = _source_nifti_header(volume)
    if header is not None:
        img.set_qform(header.get_qform(), code=int(header["qform_code"]))
        img.set_sform(header.get_sform(), code=int(header["sform_code"]))
        img.header.set_xyzt_units(*header.get_xyzt_units())
    else:
        img.set_qform(affine, code=SCANNER)
        img.set_sform(affine, code=SCANNER)
        img.header.set_xyzt_units("mm")
    img.set_data_dtype(np.float32 if probabilities else np.uint8)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["descrip"] = b"slicewise probabilities" if probabilities else b"slicewise label map"
    return img


def _source_nifti_header(volume: Volume) -> nib.Nifti1Header | None:
    """The source's NIfTI header (read again, header only), when the volume came from a NIfTI file."""
    if volume.layout is None or not volume.source.is_file():
        return None
    try:
        img = nib.load(volume.source)
    except Exception:  # noqa: BLE001 - not a nibabel file (DICOM, arrays): no header to copy
        return None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        return None
    return img.header


def mask_bytes(volume: Volume, dense: DenseMap, probabilities: bool = False, gzipped: bool = True) -> bytes:
    """The mask as the bytes of a NIfTI file (of a ``.nii.gz`` one when ``gzipped``: ISA-L's
    gzip, about 13 times as fast as zlib's level 6 on a 512 × 512 × 300 mask, 4 % larger)."""
    data = mask_image(volume, dense, probabilities).to_bytes()
    return igzip.compress(data, compresslevel=2, mtime=0) if gzipped else data


def write_mask(path: str | os.PathLike, volume: Volume, dense: DenseMap, probabilities: bool = False) -> Path:
    """Write the mask atomically (gzipped for ``.nii.gz``); return the path."""
    path = Path(path)
    write_atomic(path, mask_bytes(volume, dense, probabilities, gzipped=path.name.lower().endswith(".gz")))
    return path


def dense_from_labels(labels: np.ndarray, kind: str, classes: tuple[str, ...], background: int | None = None) -> DenseMap:
    """A map back from a written label map ``(D, H, W)`` (display order): what a review shows of a
    run scored elsewhere.  A sigmoid map's labels are 0/1; a softmax map's are class indices."""
    labels = np.asarray(labels)
    count = len(classes) if kind == "softmax" else 1
    dense = DenseMap.empty((*labels.shape, count), kind, tuple(classes) if kind == "softmax" else tuple(classes[:1]), background=background)
    for start in range(0, labels.shape[0], 16):  # a block of slices at a time: no whole-volume float temporaries
        block = labels[start : start + 16]
        probs = (block[..., None] == np.arange(count)) if kind == "softmax" else (block > 0)[..., None]
        dense.put(np.arange(start, start + len(block)), probs.astype(np.float32))
    return dense
