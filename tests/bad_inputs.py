"""The bad-input corpus: broken and hostile files, generated on the fly (no binaries in the repo).

``write_corpus(folder)`` writes every item and returns ``{item: path}``; ``EXPECTED`` says what
each one must produce: the reason `load_volume` (and so ``slicewise predict``) gives, as a regex
on the one-line message that follows the file's name.  Hostile files carry a payload that would
write ``folder / MARKER`` if it ever ran.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from app.errors import LoadError
from app.io import load_volume
from app.volume import Volume
from tests.dicom_writer import IOPS, write_series

MARKER = "payload_ran"

#: item → regex the message must match after "<file name>: " (None: loads, and is reported)
EXPECTED: dict[str, str | None] = {
    # NIfTI
    "cut_gzip_stream": r"truncated gzip stream \(file ends before the image data\)",
    "corrupt_deflate": r"corrupt gzip stream \(.*\)",
    "vox_offset_past_end": r"holds less image data than its header promises \(needs 49152 bytes, found 0\)",
    "vox_offset_too_low": r"invalid header \(vox offset 200 too low for single file nifti1\)",
    "dims_larger_than_data": r"holds less image data than its header promises \(needs 196608 bytes, found 49152\)",
    "text_named_nii": r"damaged or truncated header",
    "empty_file": r"file is empty",
    "image_2d": r"2D image \(shape \(32, 24\)\); a volume needs 3 dimensions",
    "array_2d": r"2D array \(shape \(32, 24\)\); a volume needs \(D, H, W\) or \(D, H, W, C\)",
    "array_5d": r"5D array \(shape \(2, 3, 8, 8, 2\)\); expected \(D, H, W\) or \(D, H, W, C\)",
    "nifti_5d_vector": r"vector image with 7 components; at most 4 channels are supported",
    "zero_sized_dim": r"image has an empty dimension \(shape \(32, 0, 24\)\)",
    "array_zero_sized_dim": r"array has an empty dimension \(shape \(4, 0, 8\)\)",
    "nan_inf_voxels": None,
    # DICOM
    "dicom_mixed_stacks": r"slice orientations differ",
    "dicom_series_tie": r"2 series of 4 slices each",
    "dicom_missing_slice": None,  # loads at the true positions, with a warning
    "dicom_inconsistent_orientation": r"slice orientations differ",
    "dicom_truncated_pixels": r"truncated pixel data \(134 of 168 bytes\)",
    "dicom_series_truncated_slice": r"truncated pixel data \(134 of 168 bytes\)",
    "folder_without_dicom": r"no volume files or DICOM images in this folder \(2 other files\)",
    # hostile arrays
    "pickle_payload_pt": r"holds Python objects beyond plain tensors, which would run code to load; refused",
    "bare_pickle_pt": r"holds Python objects beyond plain tensors, which would run code to load; refused",
    "object_npy": r"holds pickled Python objects, which would run code to load; refused",
    "object_npz": r"array 'volume' holds pickled Python objects, which would run code to load; refused",
}

NAMES = {
    "cut_gzip_stream": "cut.nii.gz",
    "corrupt_deflate": "corrupt.nii.gz",
    "vox_offset_past_end": "offset_past_end.nii.gz",
    "vox_offset_too_low": "offset_too_low.nii",
    "dims_larger_than_data": "dims_too_large.nii.gz",
    "text_named_nii": "notes.nii",
    "empty_file": "empty.nii.gz",
    "image_2d": "flat.nii.gz",
    "array_2d": "flat.npy",
    "array_5d": "five_d.npy",
    "nifti_5d_vector": "five_d.nii.gz",
    "zero_sized_dim": "zero_dim.nii",
    "array_zero_sized_dim": "zero_dim.npy",
    "nan_inf_voxels": "nan_inf.nii.gz",
    "dicom_mixed_stacks": "mixed_stacks",
    "dicom_series_tie": "two_series",
    "dicom_missing_slice": "missing_slice",
    "dicom_inconsistent_orientation": "tilted_slice",
    "dicom_truncated_pixels": "truncated.dcm",
    "dicom_series_truncated_slice": "series_with_cut_slice",
    "folder_without_dicom": "no_dicom",
    "pickle_payload_pt": "payload.pt",
    "bare_pickle_pt": "bare_pickle.pt",
    "object_npy": "objects.npy",
    "object_npz": "objects.npz",
}

#: how the CLI names each item in its error (a file of a folder is named "folder/file")
NAMED_AS = {"dicom_series_truncated_slice": "series_with_cut_slice/slice2.dcm"}

NAN_SLICES = (3, 7)  # axial slices of nan_inf.nii.gz that hold NaN / Inf
MISSING_SLICE_POSITIONS = (0.0, 2.5, 5.0, 10.0, 12.5)  # missing_slice: slice 3 (7.5 mm) removed


class Payload:
    """Unpickling this writes ``marker``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def load_or_refusal(path: Path, named: tuple[str, ...]) -> Volume | None:
    """Load ``path`` (warnings silenced): its `Volume`, or None for a `LoadError` whose message is
    one short line (no traceback) starting with one of ``named``; any other exception propagates."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_volume(path)
    except LoadError as exc:
        message = str(exc)
        assert message.startswith(named), message
        assert "\n" not in message and len(message) < 400 and "Traceback" not in message, message
        return None


def lambda_model(marker: Path, input_shape: tuple = (4,)):
    """A Keras model whose Lambda layer writes ``marker`` whenever it runs (as it would on loading)."""
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    write_marker = eval(f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]")  # no closure: Keras stores bytecode
    return keras.Model(inputs, layers.Dense(1)(layers.Flatten()(layers.Lambda(write_marker)(inputs))))


def nifti_volume(shape=(32, 32, 24), seed: int = 0) -> nib.Nifti1Image:
    data = np.random.default_rng(seed).integers(-1000, 1000, shape).astype(np.int16)
    return nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0]))


def _set_header(blob: bytes, offset: int, fmt: str, value) -> bytes:
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every item of the corpus under ``folder``; return ``{item: path}``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {item: folder / name for item, name in NAMES.items()}
    marker = folder / MARKER

    # -- NIfTI: 32 x 32 x 24 int16 (49152 bytes of data after a 352-byte header) -------------
    good = folder / "good.nii.gz"
    nib.save(nifti_volume(), good)
    packed = good.read_bytes()
    raw = gzip.decompress(packed)
    paths["cut_gzip_stream"].write_bytes(packed[: len(packed) // 2])
    corrupt = bytearray(packed)
    corrupt[40:48] = bytes(b ^ 0x5A for b in corrupt[40:48])  # inside the first deflate block
    paths["corrupt_deflate"].write_bytes(bytes(corrupt))
    paths["vox_offset_past_end"].write_bytes(gzip.compress(_set_header(raw, 108, "<f", 1_000_000.0)))
    paths["vox_offset_too_low"].write_bytes(_set_header(raw, 108, "<f", 200.0))
    paths["dims_larger_than_data"].write_bytes(gzip.compress(_set_header(raw, 44, "<h", 128)))  # dim[2] 32 → 128
    paths["text_named_nii"].write_text("Patient notes: scan booked for Tuesday.\nThis is not an image.\n")
    paths["empty_file"].write_bytes(b"")
    nib.save(nib.Nifti1Image(np.zeros((32, 24), np.float32), np.eye(4)), paths["image_2d"])
    np.save(paths["array_2d"], np.zeros((32, 24), np.float32))
    np.save(paths["array_5d"], np.zeros((2, 3, 8, 8, 2), np.float32))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 1, 7), np.float32), np.eye(4)), paths["nifti_5d_vector"])
    paths["zero_sized_dim"].write_bytes(_set_header(raw, 44, "<h", 0))  # dim[2] 32 → 0
    np.save(paths["array_zero_sized_dim"], np.zeros((4, 0, 8), np.float32))
    nan = np.random.default_rng(1).random((16, 16, 10)).astype(np.float32)
    nan[5, 5, NAN_SLICES[0]] = np.nan
    nan[0, 0, NAN_SLICES[1]] = np.inf
    nib.save(nib.Nifti1Image(nan, np.eye(4)), paths["nan_inf_voxels"])

    # -- DICOM: axial CT slices of 12 x 7 pixels, 2.5 mm apart --------------------------------
    uid = generate_uid()
    write_slices(paths["dicom_mixed_stacks"], 4, series_uid=uid)
    write_slices(paths["dicom_mixed_stacks"], 4, series_uid=uid, orientation=(1, 0, 0, 0, 0, -1), prefix="cor")
    write_slices(paths["dicom_series_tie"], 4, number=1)
    write_slices(paths["dicom_series_tie"], 4, number=2, prefix="other")
    slices = write_slices(paths["dicom_missing_slice"], 6)
    slices[3].unlink()
    slices = write_slices(paths["dicom_inconsistent_orientation"], 5)
    ds = pydicom.dcmread(slices[2])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.43589]
    ds.save_as(slices[2])
    single = write_slices(folder / "single", 1)[0]
    paths["dicom_truncated_pixels"].write_bytes(single.read_bytes()[:-34])
    slices = write_slices(paths["dicom_series_truncated_slice"], 5)
    slices[2].write_bytes(slices[2].read_bytes()[:-34])
    paths["folder_without_dicom"].mkdir()
    (paths["folder_without_dicom"] / "readme.txt").write_text("scans are on the other drive")
    (paths["folder_without_dicom"] / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 60)

    # -- hostile arrays: each would write the marker if unpickled ------------------------------
    import torch

    torch.save({"volume": torch.zeros(4, 8, 8), "extra": Payload(marker)}, paths["pickle_payload_pt"])
    paths["bare_pickle_pt"].write_bytes(pickle.dumps(Payload(marker)))
    objects = np.empty((4, 8, 8), dtype=object)
    objects[0, 0, 0] = Payload(marker)
    np.save(paths["object_npy"], objects, allow_pickle=True)
    np.savez(paths["object_npz"], volume=objects)
    return paths


def write_slices(
    folder: Path,
    count: int,
    series_uid: str | None = None,
    number: int = 1,
    orientation=IOPS["axial"],
    prefix: str = "slice",
) -> list[Path]:
    """``count`` CT slices of one series, 12 x 7 int16 pixels, slice k at 2.5 k mm along the
    normal, named ``<prefix><k>.dcm``."""
    volume = np.stack([np.arange(84, dtype=np.int16).reshape(12, 7) * (k + 1) for k in range(count)])
    paths, _ = write_series(
        folder, volume, list(orientation), [0.0, 0.0, 0.0], spacing=(0.5, 0.5), step=2.5, intercept=-1024.0,
        series_uid=series_uid, number=number, prefix=prefix,
    )
    return paths
