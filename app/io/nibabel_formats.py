"""Everything ``nibabel.load`` opens: NIfTI-1/2, Analyze, MGH/MGZ, MINC 1/2, PAR/REC, AFNI, ECAT."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError
from numpy.lib import recfunctions

from app.io.messages import check_volume_index, fail
from app.io.stored import StoredImage, dtype_name

KNOWN = "NIfTI, Analyze, MGH/MGZ, MINC, PAR/REC, DICOM, .npy, .npz or .pt/.pth"
MAX_CHANNELS = 4
NIBABEL_SUFFIXES = tuple(
    base + packed
    for base in (".nii", ".hdr", ".img", ".mgh", ".mgz", ".mnc", ".par", ".rec", ".head", ".brik", ".v")
    for packed in ("", ".gz", ".bz2", ".zst")
)


def read_nibabel(path: Path, volume_index: int) -> StoredImage:
    """Open ``path`` with nibabel and describe volume ``volume_index`` of it (nothing read yet)."""
    try:
        img = nib.load(path)
    except ImageFileError:
        if path.name.lower().endswith(NIBABEL_SUFFIXES):
            fail(path, "damaged or truncated header (nibabel cannot read it as any image type)")
        fail(path, f"unrecognised file format (expected {KNOWN})")
    affine = getattr(img, "affine", None)
    if affine is None:
        fail(path, f"{type(img).__name__} has no voxel-to-world geometry; not a volume image")
    shape = tuple(int(s) for s in img.shape)
    if len(shape) < 3:
        fail(path, f"{len(shape)}D image (shape {shape}); a volume needs 3 dimensions")
    if 0 in shape:
        fail(path, f"image has an empty dimension (shape {shape})")
    dtype = np.dtype(img.get_data_dtype())
    if dtype.kind == "c":
        fail(path, f"complex-valued data ({dtype.name}) is not supported")

    spatial, extra = _axis_roles(img, len(shape))
    volume_axis, channel_axis = _volume_and_channel_axes(path, img, shape, extra)
    n_volumes = shape[volume_axis] if volume_axis is not None else 1
    check_volume_index(path, volume_index, n_volumes)

    rgb = bool(dtype.names)
    if rgb and channel_axis is not None:
        fail(path, f"RGB voxels with a vector dimension too (shape {shape}) are not supported")
    channels = len(dtype.names) if rgb else (shape[channel_axis] if channel_axis is not None else 1)

    slicer: list[int | slice] = [slice(None)] * len(shape)
    for axis in extra:
        if axis == volume_axis:
            slicer[axis] = volume_index
        elif axis != channel_axis:
            slicer[axis] = 0  # a size-1 dimension
    kept = [a for a in range(len(shape)) if isinstance(slicer[a], slice)]
    order = [kept.index(a) for a in spatial] + ([kept.index(channel_axis)] if channel_axis is not None else [])

    def fill(target: np.ndarray) -> None:
        scaling = None
        if any(isinstance(s, int) for s in slicer):
            data = np.asanyarray(img.dataobj[tuple(slicer)])
        elif type(img.dataobj) is ArrayProxy and not rgb:
            # unscaled read + scaling in the float32 target: no full-size float intermediate
            data, scaling = img.dataobj.get_unscaled(), (img.dataobj.slope, img.dataobj.inter)
        else:
            data = np.asanyarray(img.dataobj)
        data = data.transpose(order)
        if rgb:
            data = recfunctions.structured_to_unstructured(data)
        np.copyto(target, data if data.ndim == 4 else data[..., None], casting="unsafe")
        if scaling is not None:
            slope, inter = (float(np.asarray(v)) for v in scaling)
            if slope != 1.0:
                target *= np.float32(slope)
            if inter != 0.0:
                target += np.float32(inter)

    notes = []
    if n_volumes > 1:
        notes.append(f"{len(shape)}D image with {n_volumes} volumes; showing volume {volume_index}")
    return StoredImage(
        shape=tuple(shape[a] for a in spatial),  # type: ignore[arg-type]
        channels=channels,
        fill=fill,
        original_dtype=dtype_name(dtype),
        files=_files_of(img, path),
        affine=np.asarray(affine, dtype=np.float64),
        n_volumes=n_volumes,
        notes=notes,
    )


def _axis_roles(img: nib.spatialimages.SpatialImage, ndim: int) -> tuple[list[int], list[int]]:
    """(the 3 spatial axes in affine-column order, the other axes).

    MINC stores time first (``time, zspace, yspace, xspace``) while its affine covers only the
    ``*space`` dimensions, so the axes are found by name there.
    """
    names = getattr(getattr(img.dataobj, "minc_file", None), "_dim_names", None)
    if names is not None and len(names) == ndim:
        spatial = [i for i, n in enumerate(names) if str(n).endswith("space")]
        if len(spatial) == 3:
            return spatial, [i for i in range(ndim) if i not in spatial]
    return [0, 1, 2], list(range(3, ndim))


def _volume_and_channel_axes(
    path: Path, img: nib.spatialimages.SpatialImage, shape: tuple[int, ...], extra: list[int]
) -> tuple[int | None, int | None]:
    """Which extra axis holds volumes (time) and which holds vector components (channels).

    Size-1 extra axes are dropped.  NIfTI's 5th dimension (and MINC's ``vector_dimension``) is a
    vector of components and becomes channels; any other extra axis holds volumes.
    """
    names = getattr(getattr(img.dataobj, "minc_file", None), "_dim_names", None)
    volume_axis = channel_axis = None
    for axis in (a for a in extra if shape[a] > 1):
        is_vector = (names is not None and "vector" in str(names[axis])) or (names is None and axis == 4)
        if is_vector and channel_axis is None:
            if shape[axis] > MAX_CHANNELS:
                fail(path, f"vector image with {shape[axis]} components; at most {MAX_CHANNELS} channels are supported")
            channel_axis = axis
        elif not is_vector and volume_axis is None:
            volume_axis = axis
        else:
            fail(path, f"{len(shape)}D image (shape {shape}) has more non-spatial dimensions than volumes and channels")
    return volume_axis, channel_axis


def _files_of(img: nib.spatialimages.SpatialImage, path: Path) -> list[Path]:
    """The files the image was read from (header and image of a pair; ``path`` at least)."""
    files = {path.resolve()}
    for holder in getattr(img, "file_map", {}).values():
        name = getattr(holder, "filename", None)
        if name and Path(name).is_file():
            files.add(Path(name).resolve())
    return sorted(files)
