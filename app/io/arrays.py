"""Plain arrays: NumPy ``.npy`` / ``.npz`` and PyTorch ``.pt`` / ``.pth``, never unpickled.

Arrays carry no geometry: axis 0 is depth, shape ``(D, H, W)`` or ``(D, H, W, C)`` with
``C <= 4``, voxels are taken as 1 mm and the axial layout is the array itself
(see `orientation.raw_affine` for how the other axes re-slice it).
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from app.io.memory import available_memory
from app.io.messages import check_volume_index, fail, one_line, refuse
from app.io.orientation import raw_affine
from app.io.stored import StoredImage, array_filler, dtype_name

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
MAX_CHANNELS = 4
PREFERRED_KEYS = ("volume", "arr_0")
RAW_NOTE = "no geometry in file: 1 mm voxels; axis 0 taken as inferior→superior, axis 1 anterior→posterior, axis 2 left→right"
UNSAFE = "holds pickled Python objects, which would run code to load; refused (save a plain numeric array)"


def read_npy(path: Path, volume_index: int) -> StoredImage:
    """A ``.npy`` file, memory-mapped when possible."""
    head = _head(path, 8)
    if not head.startswith(NPY_MAGIC):
        if head[:1] == b"\x80":
            refuse(path, UNSAFE)
        fail(path, "not a NumPy .npy file (bad magic bytes)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "object" in str(exc).lower() or "pickle" in str(exc).lower():
            refuse(path, UNSAFE)
        array = np.load(path, allow_pickle=False)  # e.g. empty arrays cannot be memory-mapped
    return from_array(path, array, volume_index)


def read_npz(path: Path, volume_index: int) -> StoredImage:
    """The array named ``volume`` (else ``arr_0``, else the first) of an ``.npz`` archive."""
    head = _head(path, 8)
    if head.startswith(NPY_MAGIC):
        return read_npy(path, volume_index)
    if not head.startswith(ZIP_MAGIC):
        if head[:1] == b"\x80":
            refuse(path, UNSAFE)
        fail(path, "not a NumPy .npz archive (not a zip file)")
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if not names:
            fail(path, "the .npz archive holds no arrays")
        name = next((k for k in PREFERRED_KEYS if k in names), names[0])
        _check_member(path, archive.zip, name)  # its declared size, before a byte of it is inflated
        try:
            array = archive[name]
        except ValueError as exc:
            if "object" in str(exc).lower() or "pickle" in str(exc).lower():
                refuse(path, f"array {name!r} {UNSAFE}")
            raise
    notes = [f"archive also holds {', '.join(repr(n) for n in names if n != name)}; loaded {name!r}"] if len(names) > 1 else []
    return from_array(path, array, volume_index, notes=notes)


def read_torch(path: Path, volume_index: int) -> StoredImage:
    """A tensor saved with ``torch.save`` (alone, or the single tensor of a dict), weights-only."""
    import torch

    head = _head(path, 4)
    if head.startswith(ZIP_MAGIC):
        _check_torch_archive(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before it refuses: not for users
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        pickled = head.startswith(ZIP_MAGIC) or head[:1] == b"\x80"  # torch zip archive, or a bare pickle
        if "Weights only load failed" in text and (pickled or "Unsupported global" in text):
            refuse(path, "holds Python objects beyond plain tensors, which would run code to load; refused (save a tensor or a dict of tensors)")
        fail(path, "not a PyTorch tensor file (unreadable pickle stream)")
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        if "zip archive" in str(exc):
            fail(path, "damaged or truncated PyTorch archive")
        fail(path, f"not a readable PyTorch file ({one_line(str(exc), 80)})")
    notes: list[str] = []
    if isinstance(obj, Mapping):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        name = next((k for k in PREFERRED_KEYS if k in tensors), None)
        if name is None and len(tensors) == 1:
            name = next(iter(tensors))
        if name is None:
            listed = ", ".join(repr(k) for k in list(tensors)[:6]) or "none"
            fail(path, f"dict holds {len(tensors)} tensors ({listed}); expected one tensor, or one named 'volume'")
        if len(obj) > 1:
            notes.append(f"file also holds {', '.join(repr(str(k)) for k in obj if str(k) != name)}; loaded {name!r}")
        obj = tensors[name]
    if not isinstance(obj, torch.Tensor):
        fail(path, f"holds a {type(obj).__name__}, expected a tensor or a dict with one tensor")
    tensor = obj.detach()
    original = str(tensor.dtype).removeprefix("torch.")
    if tensor.layout != torch.strided or tensor.is_quantized:
        fail(path, f"{tensor.layout} / quantized tensors are not supported; save a dense tensor")
    if tensor.is_complex():
        fail(path, f"complex tensors ({original}) are not supported")
    try:
        array = tensor.numpy()
    except TypeError:  # bfloat16, float8, ...: no NumPy equivalent
        array = tensor.float().numpy()
    return from_array(path, array, volume_index, original_dtype=original, notes=notes)


def from_array(
    path: Path,
    array: np.ndarray,
    volume_index: int,
    original_dtype: str | None = None,
    notes: list[str] | None = None,
) -> StoredImage:
    """Check a raw ``(D, H, W[, C])`` array and wrap it with the raw-array pseudo affine."""
    dtype = array.dtype
    if dtype.hasobject:
        refuse(path, UNSAFE)
    if dtype.kind not in "biuf":
        fail(path, f"array dtype {dtype} is not a real number type")
    shape = tuple(int(s) for s in array.shape)
    if array.ndim < 3:
        fail(path, f"{array.ndim}D array (shape {shape}); a volume needs (D, H, W) or (D, H, W, C)")
    if array.ndim > 4:
        fail(path, f"{array.ndim}D array (shape {shape}); expected (D, H, W) or (D, H, W, C)")
    if array.ndim == 4 and shape[3] > MAX_CHANNELS:
        fail(path, f"4D array (shape {shape}) with {shape[3]} channels; at most {MAX_CHANNELS} (save each volume as its own file)")
    if 0 in shape:
        fail(path, f"array has an empty dimension (shape {shape})")
    check_volume_index(path, volume_index, 1)
    return StoredImage(
        shape=shape[:3],  # type: ignore[arg-type]
        channels=shape[3] if array.ndim == 4 else 1,
        fill=array_filler(array),
        original_dtype=original_dtype or dtype_name(dtype),
        files=[path],
        affine=raw_affine(),
        notes=[*(notes or []), RAW_NOTE],
        slice_axis=0,
    )


def _check_declared(path: Path, what: str, nbytes: int) -> None:
    """Refuse ``what`` of ``nbytes`` declared bytes that would not fit the memory guard."""
    available = available_memory()
    if nbytes > 0.8 * available:
        gib = 1024**3
        fail(path, f"too large to open: {what} declares {nbytes / gib:.1f} GiB, but only {available / gib:.1f} GiB of memory is available")


def _check_member(path: Path, archive: zipfile.ZipFile, name: str) -> None:
    """The ``.npy`` header of archive member ``name``: its shape and dtype, checked against the
    member's declared size and the memory guard, reading the header only."""
    member = f"{name}.npy" if f"{name}.npy" in archive.namelist() else name
    info = archive.getinfo(member)
    _check_declared(path, f"array {name!r} (inflated)", info.file_size)
    try:
        with archive.open(member) as f:
            version = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(f)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        fail(path, f"array {name!r}: damaged .npy header ({one_line(str(exc), 80)})")
    if dtype.hasobject:
        refuse(path, f"array {name!r} {UNSAFE}")
    count = 1
    for side in shape:
        count *= int(side)
    stored = count * dtype.itemsize
    _check_declared(path, f"array {name!r} of shape {shape}", stored + 4 * count)  # as stored, and its float32 copy
    if info.file_size < stored:
        fail(path, f"array {name!r}: damaged: its header declares {stored} bytes, the archive holds {info.file_size}")


def _check_torch_archive(path: Path) -> None:
    """A PyTorch zip archive's declared (inflated) size against the memory guard, before loading."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, EOFError):
        fail(path, "damaged or truncated PyTorch archive")
    _check_declared(path, "its tensor data", declared)


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)
