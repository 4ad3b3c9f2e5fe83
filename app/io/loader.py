"""`load_volume`: pick a reader by content or extension, then lay the image out as a `Volume`."""

from __future__ import annotations

import operator
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from app.buffers import aligned_empty
from app.errors import LoadError, SlicewiseError
from app.io.arrays import NPY_MAGIC, ZIP_MAGIC, read_npy, read_npz, read_torch
from app.io.dicom_file import read_dicom_file
from app.io.dicom_series import read_dicom_folder
from app.io.formats import TORCH_SUFFIXES, is_dicom_name
from app.io.hashing import sha256_of_files
from app.io.memory import check_memory
from app.io.messages import describe, display_name, fail
from app.io.nibabel_formats import read_nibabel
from app.io.orientation import Layout, acquired_axis, obliquity_deg, plan_layout, raw_affine
from app.io.stored import StoredImage
from app.preprocessing import nonfinite_slices
from app.volume import ACQUIRED, AXIS_CHOICES, Volume

OBLIQUE_NOTE_DEG = 1.0


def load_volume(path: str | os.PathLike, axis: str = ACQUIRED, volume_index: int = 0, *, skip_damaged: bool = False) -> Volume:
    """Read one 3D volume from ``path`` and lay it out along ``axis`` (see `Volume`).

    ``path`` is a NIfTI/Analyze/MGH/MINC/... file, a DICOM file or folder, or a ``.npy`` /
    ``.npz`` / ``.pt`` array; ``volume_index`` picks one volume of a 4D image.  ``axis`` is one
    of `AXIS_CHOICES`: ``"acquired"`` slices the image as it was acquired (the DICOM slice
    normal, a NIfTI's third voxel axis), shown as the closest of axial/coronal/sagittal
    (``Volume.axis``; ``Volume.axis_label`` reads "acquired (sagittal)").  Every failure is a
    `LoadError` (`UnsafeFileError` for files that would run code) naming the file.  A damaged
    file of a DICOM series refuses the series, unless ``skip_damaged``: then the other slices
    load at their true positions, with a warning.  Compressed DICOM is decoded in child
    processes (`app.io.decode_pool`): a decoder's crash or hang is a `LoadError` too.
    """
    source = Path(path)
    if axis not in AXIS_CHOICES:
        fail(source, f"unknown axis {axis!r} (expected one of {', '.join(AXIS_CHOICES)})")
    try:
        index = operator.index(volume_index)
    except TypeError:
        fail(source, f"volume index must be an integer, got {volume_index!r}")
    try:
        stored = _read(source, index, skip_damaged)
        return _assemble(source, stored, axis, index)
    except SlicewiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - no library exception may escape
        raise LoadError(f"{display_name(source)}: {describe(exc)}") from exc


def _read(path: Path, volume_index: int, skip_damaged: bool = False) -> StoredImage:
    """Choose the reader: folder → DICOM series; DICM magic → DICOM; then by extension."""
    if not path.exists():
        fail(path, "no such file or folder")
    if path.is_dir():
        return read_dicom_folder(path, volume_index, skip_damaged)
    with open(path, "rb") as f:
        head = f.read(132)
    if not head:
        fail(path, "file is empty")
    name = path.name.lower()
    if head[128:132] == b"DICM" or is_dicom_name(name):
        return read_dicom_file(path, volume_index)
    if name.endswith(".npy") or head.startswith(NPY_MAGIC):
        return read_npy(path, volume_index)
    if name.endswith(".npz"):
        return read_npz(path, volume_index)
    if name.endswith(TORCH_SUFFIXES):
        return read_torch(path, volume_index)
    if head.startswith(ZIP_MAGIC):
        with zipfile.ZipFile(path) as archive:
            is_torch = any(n.endswith("data.pkl") for n in archive.namelist())
        return read_torch(path, volume_index) if is_torch else read_npz(path, volume_index)
    return read_nibabel(path, volume_index)


def _assemble(source: Path, stored: StoredImage, requested: str, volume_index: int) -> Volume:
    """Lay ``stored`` out for the ``requested`` axis, read its voxels once into float32, hash its files."""
    notes = list(stored.notes)
    affine = stored.affine
    try:
        axis = acquired_axis(affine, stored.slice_axis) if requested == ACQUIRED else requested
        layout = plan_layout(affine, stored.shape, axis)
    except ValueError:
        affine = raw_affine()
        axis = acquired_axis(affine, stored.slice_axis) if requested == ACQUIRED else requested
        layout = plan_layout(affine, stored.shape, axis)
        notes.append("degenerate affine (zero voxel size?): axes taken as stored, 1 mm voxels")
    origins = _slice_origins(stored, affine, layout)
    if stored.slice_origins is not None and origins is None:
        notes.append(f"the unevenly spaced slices run along the rows or columns of this {axis} view: shown evenly spaced")
    oblique = obliquity_deg(affine)
    if oblique > OBLIQUE_NOTE_DEG:
        notes.append(f"oblique: voxel axes up to {oblique:.1f}° off the anatomical axes; shown without resampling")
    shape = (*layout.shape, stored.channels)
    check_memory(source, shape)
    # the files are hashed on a second thread while the voxels are read (hashlib and file reads
    # release the GIL); a read error still comes first, as it would one after the other
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="slicewise-hash") as pool:
        digest = pool.submit(sha256_of_files, stored.files)
        data = aligned_empty(shape)  # lent to TensorFlow as it is when no preprocessing is asked
        try:
            stored.fill(layout.stored_view(data))
        except BaseException:
            digest.cancel()
            raise
        sha256 = digest.result()
    if not stored.original_dtype.startswith(("int", "uint", "bool")):  # stored integers cannot hold NaN/Inf
        notes.extend(nonfinite_note(data))
    return Volume(
        data=torch.from_numpy(data),
        affine=affine @ layout.index_affine(),
        axis=axis,
        axis_source=ACQUIRED if requested == ACQUIRED else "chosen",
        slice_origins=origins,
        source=source,
        sha256=sha256,
        original_dtype=stored.original_dtype,
        volume_index=volume_index,
        n_volumes=stored.n_volumes,
        notes=tuple(notes),
        layout=layout,
        stored_affine=np.asarray(affine, dtype=np.float64),
    )


def _slice_origins(stored: StoredImage, affine: np.ndarray, layout: Layout) -> np.ndarray | None:
    """True RAS position of voxel ``(d, 0, 0)`` of each displayed slice, when the stored slices
    are unevenly spaced and are the displayed ones (stored axis 0 shown along depth); else None."""
    if stored.slice_origins is None or affine is not stored.affine or layout.perm[0] != 0:
        return None
    d = np.arange(layout.shape[0], dtype=np.float64)
    index = layout.index_affine() @ np.stack([d, np.zeros_like(d), np.zeros_like(d), np.ones_like(d)])  # stored (k, i, j, 1)
    k = index[0].round().astype(int)
    return stored.slice_origins[k] + np.outer(index[1], affine[:3, 1]) + np.outer(index[2], affine[:3, 2])


def nonfinite_note(data: np.ndarray) -> list[str]:
    """A note naming the slices (along axis 0) that hold NaN or infinite voxels; none if there are none."""
    bad = nonfinite_slices(torch.from_numpy(data)).tolist()
    if not bad:
        return []
    listed = ", ".join(map(str, bad[:5])) + (", …" if len(bad) > 5 else "")
    return [f"NaN/Inf voxels in {len(bad)} of {data.shape[0]} slices ({listed}); those slices are left unscored"]
