"""`app.planes`: the three planes through a voxel, oriented for reading, on real volumes.

Each plane's screen directions are checked against the volume's affine (world RAS mm), not
against the index bookkeeping that produced them: moving right on screen must move toward the
patient side the right-hand letter names, moving down toward the bottom letter.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app.planes import OPPOSITE, plane, planes
from app.volume import Volume
from tests.ui_helpers import write_nifti

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
#: RAS axis and sign a direction letter points along
TOWARD = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("planes")
    # stored LPS-like (x flipped) and permuted: the loader must still land on RAS
    data = np.arange(9 * 7 * 5, dtype=np.int16).reshape(9, 7, 5)
    affine = np.array([[0, 0, -1.5, 10], [1.2, 0, 0, -4], [0, 2.0, 0, 3], [0, 0, 0, 1]])
    odd = folder / "permuted.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), odd)
    return {"small": write_nifti(folder / "small.nii.gz", depth=10, height=14, width=12), "permuted": odd,
            "anatomical": NIBABEL_DATA / "anatomical.nii"}


@pytest.fixture(scope="module")
def loaded(files) -> dict[tuple[str, str], Volume]:
    from app.io import load_volume

    return {(name, axis): load_volume(path, axis=axis) for name, path in files.items() for axis in ("axial", "coronal", "sagittal")}


def screen_step(volume: Volume, p, through, d_row: int, d_col: int) -> np.ndarray:
    """World (RAS mm) step from screen pixel (1, 1) to (1 + d_row, 1 + d_col)."""
    a = p.to_voxel(volume, 1, 1, through)
    b = p.to_voxel(volume, 1 + d_row, 1 + d_col, through)
    return volume.world(*b) - volume.world(*a)


def assert_points_toward(step: np.ndarray, letter: str) -> None:
    axis, sign = TOWARD[letter]
    assert int(np.argmax(np.abs(step))) == axis, (step, letter)
    assert np.sign(step[axis]) == sign, (step, letter)


EXPECTED_NAMES = {  # the plane each fixed index axis shows, per depth axis
    "axial": ("axial", "coronal", "sagittal"),
    "coronal": ("coronal", "axial", "sagittal"),
    "sagittal": ("sagittal", "axial", "coronal"),
}
LETTERS = {  # (top, bottom, left, right) of each kind of plane, radiological
    "axial": ("A", "P", "R", "L"),
    "coronal": ("S", "I", "R", "L"),
    "sagittal": ("S", "I", "A", "P"),
}


@pytest.mark.parametrize("name", ["small", "permuted", "anatomical"])
@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
@pytest.mark.parametrize("radiological", [True, False])
def test_screen_directions_follow_the_anatomy(loaded, name, axis, radiological):
    volume = loaded[(name, axis)]
    through = tuple(n // 2 for n in volume.shape[:3])
    for fixed, p in enumerate(planes(volume, radiological)):
        assert p.fixed == fixed and p.name == EXPECTED_NAMES[axis][fixed]
        top, bottom, left, right = LETTERS[p.name]
        if not radiological and p.name != "sagittal":
            left, right = right, left
        assert p.labels == (top, bottom, left, right)
        assert OPPOSITE[top] == bottom and OPPOSITE[left] == right
        assert_points_toward(screen_step(volume, p, through, 0, 1), right)
        assert_points_toward(screen_step(volume, p, through, 1, 0), bottom)


def test_axial_ras_volume_images_are_the_expected_numpy_planes(loaded):
    volume = loaded[("small", "axial")]
    data = volume.data.numpy()[..., 0]
    assert volume.orientation == ("S", "P", "R")
    voxel = (3, 5, 7)
    depth_r, coronal_r, sagittal_r = planes(volume, radiological=True)
    depth_n, coronal_n, sagittal_n = planes(volume, radiological=False)
    np.testing.assert_array_equal(depth_n.image(volume, voxel), data[3])
    np.testing.assert_array_equal(depth_r.image(volume, voxel), np.fliplr(data[3]))
    # coronal through row 5: superior on top (depth reversed), right on the left when radiological
    np.testing.assert_array_equal(coronal_r.image(volume, voxel), data[::-1, 5, ::-1])
    np.testing.assert_array_equal(coronal_n.image(volume, voxel), data[::-1, 5, :])
    # sagittal through column 7: superior on top, anterior (row 0) on the left, either convention
    np.testing.assert_array_equal(sagittal_r.image(volume, voxel), data[::-1, :, 7])
    np.testing.assert_array_equal(sagittal_n.image(volume, voxel), data[::-1, :, 7])
    for p in (depth_r, coronal_r, sagittal_r):
        image = p.image(volume, voxel)
        assert image.dtype == np.float32 and image.flags.c_contiguous
        assert image.shape == p.shape(volume)


def test_sagittal_volume_side_plane_is_transposed(loaded):
    volume = loaded[("small", "sagittal")]  # (d, h, w) = (L→R, S→I, A→P)
    assert volume.orientation == ("R", "I", "P")
    data = volume.data.numpy()[..., 0]
    axial = plane(volume, 1, radiological=True)  # holds the S/I index: an axial plane
    assert axial.name == "axial" and axial.vertical == 2 and axial.horizontal == 0
    np.testing.assert_array_equal(axial.image(volume, (4, 6, 2)), data[:, 6, :].T[:, ::-1])
    np.testing.assert_array_equal(plane(volume, 1, radiological=False).image(volume, (4, 6, 2)), data[:, 6, :].T)


@pytest.mark.parametrize("axis", ["axial", "coronal", "sagittal"])
def test_to_voxel_and_to_screen_round_trip_and_index_the_image(loaded, axis):
    volume = loaded[("anatomical", axis)]
    data = volume.data.numpy()[..., 0]
    rng = np.random.default_rng(1)
    for radiological in (True, False):
        for p in planes(volume, radiological):
            rows, cols = p.shape(volume)
            for _ in range(20):
                voxel = tuple(int(rng.integers(0, n)) for n in volume.shape[:3])
                row, col = p.to_screen(volume, voxel)
                assert 0 <= row < rows and 0 <= col < cols
                assert p.to_voxel(volume, int(row), int(col), voxel) == voxel
                assert p.image(volume, voxel)[int(row), int(col)] == data[voxel]
            # every screen pixel maps to a distinct voxel of the plane through the fixed index
            through = tuple(n // 2 for n in volume.shape[:3])
            seen = {p.to_voxel(volume, r, c, through) for r in range(rows) for c in range(cols)}
            assert len(seen) == rows * cols
            assert {v[p.fixed] for v in seen} == {through[p.fixed]}


def test_pixel_size_is_the_spacing_along_the_shown_axes(loaded):
    volume = loaded[("small", "axial")]  # spacing (d, h, w) = (2.5, 1.1, 0.9) mm
    assert volume.spacing == pytest.approx((2.5, 1.1, 0.9))
    depth, coronal, sagittal = planes(volume)
    assert depth.pixel_mm(volume) == pytest.approx((1.1, 0.9))
    assert coronal.pixel_mm(volume) == pytest.approx((2.5, 0.9))
    assert sagittal.pixel_mm(volume) == pytest.approx((2.5, 1.1))
    assert coronal.shape(volume) == (10, 12) and sagittal.shape(volume) == (10, 14)


def test_in_memory_tensor_reads_as_axial():
    data = np.random.default_rng(0).normal(size=(6, 8, 5)).astype(np.float32)
    volume = Volume.from_tensor(data)
    depth = plane(volume, 0, radiological=True)
    assert depth.name == "axial" and depth.labels == ("A", "P", "R", "L")
    np.testing.assert_array_equal(depth.image(volume, (2, 0, 0)), data[2, :, ::-1])
    np.testing.assert_array_equal(plane(volume, 0, radiological=False).image(volume, (2, 0, 0)), data[2])


def test_orient_lays_out_an_overlay_like_the_image(loaded):
    volume = loaded[("small", "coronal")]
    data = volume.data.numpy()[..., 0]
    for p in planes(volume):
        index = [slice(None)] * 3
        index[p.fixed] = 3
        voxel = [1, 1, 1]
        voxel[p.fixed] = 3
        np.testing.assert_array_equal(p.orient(data[tuple(index)]), p.image(volume, tuple(voxel)))
