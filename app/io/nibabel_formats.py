"""Everything ``nibabel.load`` opens: NIfTI-1/2, Analyze, MGH/MGZ, MINC 1/2, PAR/REC, AFNI, ECAT."""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from isal import igzip_threaded, isal_zlib
from nibabel.arrayproxy import ArrayProxy
from nibabel.filebasedimages import ImageFileError
from numpy.lib import recfunctions

from app.io.formats import is_gzip_name, is_nibabel_name
from app.io.messages import check_volume_index, fail
from app.io.stored import StoredImage, dtype_name

KNOWN = "NIfTI, Analyze, MGH/MGZ, MINC, PAR/REC, DICOM, .npy, .npz or .pt/.pth"
MAX_CHANNELS = 4


def read_nibabel(path: Path, volume_index: int) -> StoredImage:
    """Open ``path`` with nibabel and describe volume ``volume_index`` of it (nothing read yet)."""
    try:
        img = nib.load(path)
    except ImageFileError:
        if is_nibabel_name(path):
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

    names = _minc_dimension_names(img)
    spatial, extra = _axis_roles(names, len(shape))
    volume_axis, channel_axis = _volume_and_channel_axes(path, names, shape, extra)
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
        if channel_axis is None and not rgb and _fill_from_gzip(img.dataobj, slicer, volume_axis, target):
            return
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
        slice_axis=0 if names is not None else 2,  # MINC: the slowest axis (C order); else the third (Fortran order)
    )


def _minc_dimension_names(img: nib.spatialimages.SpatialImage) -> list[str] | None:
    """The names of a MINC image's data dimensions, slowest first (``time, zspace, yspace,
    xspace``), read from the file as nibabel does; None for other formats (or when unreadable).

    nibabel keeps these names private, so they are read here from the NetCDF (MINC 1) or HDF5
    (MINC 2) header, which is small.
    """
    if not isinstance(img, nib.Minc1Image):  # Minc2Image is a subclass
        return None
    filename = img.get_filename()
    try:
        if isinstance(img, nib.Minc2Image):
            import h5py

            with h5py.File(filename, "r") as f:
                order = f["minc-2.0/image/0/image"].attrs.get("dimorder", b"")
            order = order.decode() if isinstance(order, bytes) else str(order)
            return [n.strip() for n in order.split(",") if n.strip()] or None
        from nibabel.externals.netcdf import netcdf_file
        from nibabel.openers import ImageOpener

        with ImageOpener(filename) as fobj:
            netcdf = netcdf_file(fobj, "r", mmap=False)
            try:
                return [n.decode() if isinstance(n, bytes) else str(n) for n in netcdf.variables["image"].dimensions]
            finally:
                netcdf.close()
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _axis_roles(names: list[str] | None, ndim: int) -> tuple[list[int], list[int]]:
    """(the 3 spatial axes in affine-column order, the other axes).

    MINC stores time first (``time, zspace, yspace, xspace``) while its affine covers only the
    ``*space`` dimensions, so the axes are found by name there (``names``; None elsewhere).
    """
    if names is not None and len(names) == ndim:
        spatial = [i for i, n in enumerate(names) if str(n).endswith("space")]
        if len(spatial) == 3:
            return spatial, [i for i in range(ndim) if i not in spatial]
    return [0, 1, 2], list(range(3, ndim))


def _volume_and_channel_axes(
    path: Path, names: list[str] | None, shape: tuple[int, ...], extra: list[int]
) -> tuple[int | None, int | None]:
    """Which extra axis holds volumes (time) and which holds vector components (channels).

    Size-1 extra axes are dropped.  NIfTI's 5th dimension (and MINC's ``vector_dimension``, by
    its name in ``names``) is a vector of components and becomes channels; any other extra axis
    holds volumes.
    """
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


# --------------------------------------------------------------------------------------------
# fast path: gzip-compressed images (.nii.gz, .mgz, .img.gz)

GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 2 << 20  # decompressed bytes converted at a time (whole slices)
#: what a damaged, cut or unreadable gzip file raises on the fast path (then nibabel's path reports it)
_STREAM_ERRORS = (OSError, EOFError, zlib.error, isal_zlib.error)


def _fill_from_gzip(proxy, slicer: list, volume_axis: int | None, target: np.ndarray) -> bool:
    """Read a gzip-compressed image straight into the float32 ``target``; False if not one.

    ISA-L inflates the file on its own thread (GIL released) while this one converts each block
    of whole slices to float32 (with scaling) into its place in ``target``: no full-size
    intermediate array.  The values are those of nibabel's path below, bit for bit.  A damaged
    stream or a short file returns False after all, and nibabel's own path then reads the file
    and reports the error exactly as it always has.
    """
    if type(proxy) is not ArrayProxy or getattr(proxy, "order", None) != "F" or not isinstance(proxy.file_like, str):
        return False
    if not is_gzip_name(proxy.file_like):
        return False
    shape, dtype = tuple(int(s) for s in proxy.shape), np.dtype(proxy.dtype)
    if len(shape) < 3 or dtype.names or dtype.kind not in "iufb" or target.shape[:3] != shape[:3]:
        return False
    slope, inter = (float(np.asarray(v)) for v in (proxy.slope, proxy.inter))
    fixed = any(isinstance(s, int) for s in slicer)
    if fixed and (slope != 1.0 or inter != 0.0):
        return False  # nibabel scales a picked volume in its own precision: leave it to nibabel
    first = 0  # first voxel of the wanted volume, in file (Fortran) order
    if fixed:
        if volume_axis is None or any(isinstance(s, int) and s != 0 and a != volume_axis for a, s in enumerate(slicer)):
            return False
        first = int(slicer[volume_axis]) * int(np.prod(shape[:volume_axis]))
    try:
        with open(proxy.file_like, "rb") as f:
            if f.read(2) != GZIP_MAGIC:
                return False
        _inflate_into(proxy.file_like, int(proxy.offset) + first * dtype.itemsize, dtype, shape[:3], target[..., 0], slope, inter)
    except _STREAM_ERRORS:
        return False
    return True


def _inflate_into(path: str, skip: int, dtype: np.dtype, shape: tuple[int, int, int], target: np.ndarray, slope: float, inter: float) -> None:
    """Inflate ``path`` (all its gzip members), drop ``skip`` bytes, and write the next ``shape``
    voxels (Fortran order, ``dtype``) into ``target`` as float32, a block of whole slices at a time."""
    slice_voxels = shape[0] * shape[1]
    per_block = max(1, _BLOCK // (slice_voxels * dtype.itemsize))
    buffer = np.empty(per_block * slice_voxels, dtype)
    raw = memoryview(buffer).cast("B")
    with igzip_threaded.open(path, "rb") as f:
        while skip > 0:
            skip -= _read_exactly(f, raw[: min(skip, len(raw))])
        for start in range(0, shape[2], per_block):
            count = min(per_block, shape[2] - start)
            _read_exactly(f, raw[: count * slice_voxels * dtype.itemsize])
            part = target[:, :, start : start + count]
            np.copyto(part, buffer[: count * slice_voxels].reshape((shape[0], shape[1], count), order="F"), casting="unsafe")
            if slope != 1.0:
                part *= np.float32(slope)
            if inter != 0.0:
                part += np.float32(inter)


def _read_exactly(f, out: memoryview) -> int:
    """Fill ``out`` from the buffered reader ``f``; EOFError if the stream ends first."""
    if f.readinto(out) != len(out):
        raise EOFError("gzip stream ended before the image data did")
    return len(out)
