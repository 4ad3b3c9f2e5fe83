"""Raw arrays (.npy / .npz / .pt): exact round trips, the raw-array layout, refused pickles."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from app.errors import LoadError, UnsafeFileError
from app.io import load_volume


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def array() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)


def test_npy_axial_is_the_array_itself(tmp_path, array):
    path = tmp_path / "vol.npy"
    np.save(path, array)
    volume = load_volume(path)
    assert volume.shape == (5, 6, 7, 1) and volume.original_dtype == "float32"
    assert volume.data.is_contiguous() and volume.data.dtype == torch.float32
    np.testing.assert_array_equal(volume.data.numpy()[..., 0], array)
    assert volume.spacing == (1.0, 1.0, 1.0) and volume.orientation == ("S", "P", "R")
    np.testing.assert_array_equal(volume.positions_mm, np.arange(5))
    assert volume.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert any("no geometry" in note for note in volume.notes)
    assert volume.data.data_ptr() != 0 and volume.data.numpy().flags.writeable


def test_raw_arrays_match_volume_from_tensor(tmp_path, array):
    from app.volume import Volume

    np.save(tmp_path / "vol.npy", array)
    np.testing.assert_array_equal(load_volume(tmp_path / "vol.npy").affine, Volume.from_tensor(array).affine)


def test_raw_array_other_axes_reslice_consistently(tmp_path, array):
    """Axis 0 is taken as inferior→superior, axis 1 anterior→posterior, axis 2 left→right."""
    np.save(tmp_path / "vol.npy", array)
    coronal = load_volume(tmp_path / "vol.npy", axis="coronal").data.numpy()[..., 0]
    sagittal = load_volume(tmp_path / "vol.npy", axis="sagittal").data.numpy()[..., 0]
    np.testing.assert_array_equal(coronal, array.transpose(1, 0, 2)[::-1, ::-1, :])  # depth P→A, rows S→I
    np.testing.assert_array_equal(sagittal, array.transpose(2, 0, 1)[:, ::-1, :])  # depth L→R, rows S→I, cols A→P


def test_npy_integer_and_channels(tmp_path):
    ints = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    np.save(tmp_path / "ints.npy", ints)
    volume = load_volume(tmp_path / "ints.npy")
    assert volume.original_dtype == "int16"
    np.testing.assert_array_equal(volume.data.numpy()[..., 0], ints)
    rgb = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    np.save(tmp_path / "rgb.npy", rgb)
    np.testing.assert_array_equal(load_volume(tmp_path / "rgb.npy").data.numpy(), rgb)


def test_fortran_order_npy(tmp_path, array):
    np.save(tmp_path / "f.npy", np.asfortranarray(array))
    np.testing.assert_array_equal(load_volume(tmp_path / "f.npy").data.numpy()[..., 0], array)


@pytest.mark.parametrize(
    ("shape", "why"),
    [((4, 5), "2D array"), ((2, 3, 4, 5, 6), "5D array"), ((3, 0, 4), "empty dimension"), ((2, 3, 4, 8), "8 channels")],
)
def test_unusable_arrays(tmp_path, shape, why):
    np.save(tmp_path / "bad.npy", np.zeros(shape, np.float32))
    with pytest.raises(LoadError, match=rf"^bad\.npy: .*{why}"):
        load_volume(tmp_path / "bad.npy")


def test_raw_array_has_one_volume(tmp_path, array):
    np.save(tmp_path / "vol.npy", array)
    with pytest.raises(LoadError, match="out of range"):
        load_volume(tmp_path / "vol.npy", volume_index=1)


def test_object_npy_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "objects.npy"
    np.save(path, np.array([Payload(marker), 1], dtype=object), allow_pickle=True)
    with pytest.raises(UnsafeFileError, match=r"^objects\.npy: .*pickled"):
        load_volume(path)
    assert not marker.exists()


def test_pickle_named_npy_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "sneaky.npy"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UnsafeFileError):
        load_volume(path)
    assert not marker.exists()


def test_npz_picks_volume_then_arr0(tmp_path, array):
    np.savez(tmp_path / "named.npz", mask=np.zeros((2, 2, 2)), volume=array)
    volume = load_volume(tmp_path / "named.npz")
    np.testing.assert_array_equal(volume.data.numpy()[..., 0], array)
    assert any("'mask'" in note for note in volume.notes)
    np.savez_compressed(tmp_path / "plain.npz", array)
    np.testing.assert_array_equal(load_volume(tmp_path / "plain.npz").data.numpy()[..., 0], array)


def test_npz_with_object_array_is_refused(tmp_path):
    marker = tmp_path / "marker"
    np.savez(tmp_path / "evil.npz", volume=np.array([Payload(marker)], dtype=object))
    with pytest.raises(UnsafeFileError, match=r"^evil\.npz: "):
        load_volume(tmp_path / "evil.npz")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_torch_tensor_and_single_tensor_dict(tmp_path, array, suffix):
    torch.save(torch.from_numpy(array), tmp_path / f"t{suffix}")
    np.testing.assert_array_equal(load_volume(tmp_path / f"t{suffix}").data.numpy()[..., 0], array)
    torch.save({"scan": torch.from_numpy(array).to(torch.float64)}, tmp_path / f"d{suffix}")
    volume = load_volume(tmp_path / f"d{suffix}")
    assert volume.original_dtype == "float64"
    np.testing.assert_array_equal(volume.data.numpy()[..., 0], array)


def test_torch_dict_rules_and_bfloat16(tmp_path, array):
    torch.save({"volume": torch.from_numpy(array), "label": torch.zeros(3)}, tmp_path / "v.pt")
    np.testing.assert_array_equal(load_volume(tmp_path / "v.pt").data.numpy()[..., 0], array)
    torch.save({"a": torch.zeros(2, 3, 4), "b": torch.zeros(2, 3, 4)}, tmp_path / "two.pt")
    with pytest.raises(LoadError, match=r"^two\.pt: dict holds 2 tensors"):
        load_volume(tmp_path / "two.pt")
    torch.save(torch.ones(2, 3, 4, dtype=torch.bfloat16), tmp_path / "bf.pt")
    volume = load_volume(tmp_path / "bf.pt")
    assert volume.original_dtype == "bfloat16" and float(volume.data.sum()) == 24.0


def test_torch_pickle_payload_is_refused(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"volume": torch.zeros(2, 3, 4), "extra": Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFileError, match=r"^evil\.pt: "):
        load_volume(tmp_path / "evil.pt")
    assert not marker.exists()


def test_torch_file_that_is_not_torch(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"this is not a torch file at all" * 10)
    with pytest.raises(LoadError, match=r"^junk\.pt: "):
        load_volume(tmp_path / "junk.pt")
