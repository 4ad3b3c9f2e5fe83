"""Every failure of `load_volume` is a one-line `LoadError` naming the file; no library
exception escapes, whatever the bytes."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import LoadError
from app.io import load_volume

SUFFIXES = [".nii", ".nii.gz", ".mgz", ".mnc", ".hdr", ".npy", ".npz", ".pt", ".dcm", ".bin", ""]


def valid_files() -> dict[str, bytes]:
    """Small valid files of each family, as bytes."""
    out: dict[str, bytes] = {}
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".nii", ".nii.gz", ".mgz"):
            path = Path(tmp) / f"x{suffix}"
            nib.save(nib.Nifti1Image(data, np.eye(4)) if "nii" in suffix else nib.MGHImage(data.astype(np.float32), np.eye(4)), path)
            out[suffix] = path.read_bytes()
    buffer = io.BytesIO()
    np.save(buffer, data)
    out[".npy"] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(data), buffer)
    out[".pt"] = buffer.getvalue()
    out[".dcm"] = Path(pydicom.data.get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    return out


VALID = valid_files()


def assert_load_error_or_volume(name: str, blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(blob)
        try:
            volume = load_volume(path)
        except LoadError as exc:
            message = str(exc)
            assert message.startswith(f"{name}: ") and "\n" not in message, message
        else:
            assert volume.data.ndim == 4 and volume.data.is_contiguous()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suffix=st.sampled_from(SUFFIXES), blob=st.binary(min_size=1, max_size=600))
def test_random_bytes_never_escape_as_library_errors(suffix, blob):
    assert_load_error_or_volume(f"fuzz{suffix}", blob)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suffix=st.sampled_from(sorted(VALID)), fraction=st.floats(0.0, 0.999), flip=st.integers(0, 10_000))
def test_truncated_or_corrupted_files_never_escape(suffix, fraction, flip):
    blob = bytearray(VALID[suffix][: max(1, int(len(VALID[suffix]) * fraction))])
    if flip % 3 == 0:
        blob[flip % len(blob)] ^= 0xFF
    assert_load_error_or_volume(f"cut{suffix}", bytes(blob))


def test_missing_path(tmp_path):
    with pytest.raises(LoadError, match=r"^nowhere\.nii\.gz: no such file or folder$"):
        load_volume(tmp_path / "nowhere.nii.gz")


def test_empty_file(tmp_path):
    (tmp_path / "empty.nii").write_bytes(b"")
    with pytest.raises(LoadError, match=r"^empty\.nii: file is empty$"):
        load_volume(tmp_path / "empty.nii")


def test_unknown_format(tmp_path):
    (tmp_path / "notes.xyz").write_text("just some text, not an image")
    with pytest.raises(LoadError, match=r"^notes\.xyz: unrecognised file format"):
        load_volume(tmp_path / "notes.xyz")


def test_bad_axis_and_index_type(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(LoadError, match="unknown axis 'oblique'"):
        load_volume(tmp_path / "v.npy", axis="oblique")
    with pytest.raises(LoadError, match="volume index must be an integer"):
        load_volume(tmp_path / "v.npy", volume_index=0.5)  # type: ignore[arg-type]


def test_library_errors_are_chained(tmp_path):
    path = tmp_path / "scan.nii.gz"
    path.write_bytes(VALID[".nii.gz"][:200])
    with pytest.raises(LoadError) as info:
        load_volume(path)
    assert str(info.value).startswith("scan.nii.gz: ")


def test_volume_larger_than_memory_is_refused_up_front(tmp_path):
    """A header that promises more voxels than memory holds is refused before any allocation."""
    from app.io.memory import available_memory

    side = int((available_memory() / 4) ** (1 / 3)) + 64  # float32 size just above what is free
    header = nib.Nifti1Header()
    header.set_data_shape((side, side, side))
    header.set_data_dtype(np.int16)
    path = tmp_path / "huge.nii"
    with open(path, "wb") as f:
        f.write(header.binaryblock + b"\0" * 4)  # the data is never read: the check comes first
    with pytest.raises(LoadError, match=r"huge\.nii: too large to open: .* GiB as float32, but only .* GiB"):
        load_volume(path)


def test_peak_memory_sees_an_allocation_inside_its_block():
    """The benchmarks' measure: 64 MiB written inside the block raise the peak over the baseline
    by at least that much (the kernel's high-water mark, reset on entry)."""
    from app.io.memory import PeakMemory, process_memory

    with PeakMemory() as measured:
        block = bytearray(64 << 20)  # zero-filled: every page touched
    if not measured.hwm_reset:
        pytest.skip("/proc/self/clear_refs is not writable here")
    assert measured.peak - measured.baseline >= 60 << 20 and process_memory() >= len(block)
