"""nibabel formats through `load_volume`: orientation against ``nib.as_closest_canonical``,
4D / vector / RGB images, scaling, hashing, and real files shipped with nibabel."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from app.errors import LoadError
from app.io import load_volume
from app.volume import AXES

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def display_reference(canonical: np.ndarray, axis: str) -> np.ndarray:
    """The `Volume` docstring table, applied to a closest-canonical (R, A, S) array."""
    if axis == "axial":  # depth I→S, rows A→P, cols L→R
        return canonical.transpose(2, 1, 0, *range(3, canonical.ndim))[:, ::-1, :]
    if axis == "coronal":  # depth P→A, rows S→I, cols L→R
        return canonical.transpose(1, 2, 0, *range(3, canonical.ndim))[:, ::-1, :]
    # sagittal: depth L→R, rows S→I, cols A→P
    return canonical.transpose(0, 2, 1, *range(3, canonical.ndim))[:, ::-1, ::-1]


def canonical_index(axis: str, d: int, h: int, w: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Canonical voxel index (i, j, k, 1) shown at display index (d, h, w)."""
    i_n, j_n, k_n = shape
    if axis == "axial":
        return np.array([w, j_n - 1 - h, d, 1.0])
    if axis == "coronal":
        return np.array([w, d, k_n - 1 - h, 1.0])
    return np.array([d, j_n - 1 - w, k_n - 1 - h, 1.0])


def check_against_nibabel(volume, img: nib.Nifti1Image, axis: str) -> None:
    """``volume`` equals as_closest_canonical(img) laid out by the table, affine included."""
    canonical = nib.as_closest_canonical(img)
    data = np.asarray(canonical.dataobj, dtype=np.float32)
    expected = display_reference(data, axis)
    got = volume.data.numpy()
    assert got.flags.c_contiguous and got.dtype == np.float32
    np.testing.assert_array_equal(got[..., 0] if expected.ndim == 3 else got, expected)
    shape = canonical.shape[:3]
    rng = np.random.default_rng(0)
    for _ in range(10):
        d, h, w = (int(rng.integers(0, n)) for n in volume.shape[:3])
        world = canonical.affine @ canonical_index(axis, d, h, w, shape)
        np.testing.assert_allclose(volume.world(d, h, w), world[:3], atol=1e-4)


@pytest.fixture(scope="module")
def ras_image() -> tuple[np.ndarray, np.ndarray]:
    """A (6, 7, 8) RAS array with distinct values and a non-trivial affine."""
    data = np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8)
    affine = np.array([[1.5, 0, 0, -10], [0, 2.0, 0, 20], [0, 0, 3.0, -30], [0, 0, 0, 1]])
    return data, affine


def reoriented(data: np.ndarray, affine: np.ndarray, codes: str) -> nib.Nifti1Image:
    """The same image stored with axis codes ``codes`` (same voxels in the world)."""
    transform = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(codes)))
    return nib.Nifti1Image(apply_orientation(data, transform), affine @ inv_ornt_aff(transform, data.shape))


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("codes", ["RAS", "LPS", "PSR", "ILA", "ASL"])
def test_every_storage_order_gives_the_same_volume(tmp_path, ras_image, codes, axis):
    data, affine = ras_image
    img = reoriented(data, affine, codes)
    assert "".join(nib.aff2axcodes(img.affine)) == codes
    path = tmp_path / f"{codes}.nii.gz"
    nib.save(img, path)
    volume = load_volume(path, axis=axis)
    check_against_nibabel(volume, img, axis)
    reference = load_volume(_save(tmp_path / "ras.nii", nib.Nifti1Image(data, affine)), axis=axis)
    np.testing.assert_array_equal(volume.data.numpy(), reference.data.numpy())
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-6)
    assert volume.orientation == {"axial": ("S", "P", "R"), "coronal": ("A", "I", "R"), "sagittal": ("R", "I", "P")}[axis]


@pytest.mark.parametrize(("codes", "acquired"), [("PIR", "sagittal"), ("LSA", "coronal"), ("ASL", "sagittal"), ("LPS", "axial")])
def test_acquired_axis_is_the_third_voxel_axis(tmp_path, ras_image, codes, acquired):
    data, affine = ras_image
    img = reoriented(data, affine, codes)
    volume = load_volume(_save(tmp_path / f"{codes}.nii.gz", img))  # axis="acquired" is the default
    assert (volume.axis, volume.axis_label) == (acquired, f"acquired ({acquired})")
    assert volume.depth == img.shape[2]  # one displayed slice per stored slice img[:, :, k]
    check_against_nibabel(volume, img, acquired)
    stored = np.asarray(img.dataobj)
    for d in range(volume.depth):
        shown = volume.data.numpy()[d, ..., 0]
        assert any(np.array_equal(np.sort(shown, axis=None), np.sort(stored[:, :, k], axis=None)) for k in range(stored.shape[2]))


@pytest.mark.parametrize("axis", AXES)
def test_oblique_affine_matches_closest_canonical(tmp_path, ras_image, axis):
    data, affine = ras_image
    angle = np.radians(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0, 0], [np.sin(angle), np.cos(angle), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    img = reoriented(data, rotation @ affine, "PIR")
    volume = load_volume(_save(tmp_path / "oblique.nii", img), axis=axis)
    check_against_nibabel(volume, img, axis)
    assert any("oblique" in note for note in volume.notes)


@pytest.mark.parametrize("axis", AXES)
def test_positions_follow_the_affine(tmp_path, ras_image, axis):
    data, affine = ras_image
    volume = load_volume(_save(tmp_path / "lps.nii", reoriented(data, affine, "LPS")), axis=axis)
    positions = volume.positions_mm
    assert len(positions) == volume.depth
    assert np.all(np.diff(positions) > 0)
    step = volume.affine[:3, 0]
    ras_axis = int(np.argmax(np.abs(step)))
    np.testing.assert_allclose(np.diff(positions), step[ras_axis])
    np.testing.assert_allclose(positions[0], volume.world(0, (volume.shape[1] - 1) / 2, (volume.shape[2] - 1) / 2)[ras_axis])
    np.testing.assert_allclose(sorted(volume.spacing), [1.5, 2.0, 3.0])


def test_scaled_int16_applies_slope_and_intercept(tmp_path):
    raw = (np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 50) * 7
    path = _save(tmp_path / "scaled.nii", nib.Nifti1Image(raw, np.eye(4)))
    header = nib.load(path).header.copy()
    header["scl_slope"], header["scl_inter"] = 2.5, -10.0
    with open(path, "r+b") as f:
        header.write_to(f)
    assert nib.load(path).get_data_dtype() == np.int16 and nib.load(path).dataobj.slope == 2.5
    volume = load_volume(path)
    assert volume.original_dtype == "int16"
    expected = display_reference(raw.astype(np.float32) * 2.5 - 10.0, "axial")
    np.testing.assert_array_equal(volume.data.numpy()[..., 0], expected)


def test_4d_volume_index_and_range(tmp_path):
    data = np.stack([np.full((3, 4, 5), t, dtype=np.float32) for t in range(3)], axis=-1)
    path = _save(tmp_path / "series.nii.gz", nib.Nifti1Image(data, np.eye(4)))
    for t in range(3):
        volume = load_volume(path, volume_index=t)
        assert volume.n_volumes == 3 and volume.volume_index == t
        assert volume.shape == (5, 4, 3, 1) and np.all(volume.data.numpy() == t)
    for bad in (3, -1):
        with pytest.raises(LoadError, match=r"series\.nii\.gz: volume index .* out of range.*3 volumes"):
            load_volume(path, volume_index=bad)


def test_rgb_nifti_becomes_three_channels(tmp_path):
    rgb = np.zeros((3, 4, 5), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"], rgb["G"], rgb["B"] = 10, np.arange(5, dtype=np.uint8), 200
    path = _save(tmp_path / "rgb.nii", nib.Nifti1Image(rgb, np.eye(4)))
    volume = load_volume(path, axis="sagittal")
    assert volume.shape == (3, 5, 4, 3) and volume.original_dtype == "rgb24"
    plain = np.stack([rgb["R"], rgb["G"], rgb["B"]], axis=-1).astype(np.float32)
    np.testing.assert_array_equal(volume.data.numpy(), display_reference(plain, "sagittal"))


@pytest.mark.parametrize("n_volumes", [1, 2])
def test_5d_vector_image_becomes_channels(tmp_path, n_volumes):
    data = np.random.default_rng(1).random((3, 4, 5, n_volumes, 2)).astype(np.float32)
    path = _save(tmp_path / "vector.nii", nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])))
    volume = load_volume(path, volume_index=n_volumes - 1)
    assert volume.shape == (5, 4, 3, 2) and volume.n_volumes == n_volumes
    np.testing.assert_array_equal(volume.data.numpy(), display_reference(data[:, :, :, n_volumes - 1, :], "axial"))


@pytest.mark.parametrize(
    ("shape", "why"),
    [((4, 5), "2D image"), ((4, 0, 5), "empty dimension"), ((2, 3, 4, 1, 6), "6 components")],
)
def test_unusable_shapes_are_load_errors(tmp_path, shape, why):
    path = _save(tmp_path / "bad.nii", nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)))
    with pytest.raises(LoadError, match=rf"^bad\.nii: .*{why}"):
        load_volume(path)


def test_truncated_gzip_is_one_clear_line(tmp_path):
    path = _save(tmp_path / "scan.nii.gz", nib.Nifti1Image(np.random.default_rng(2).random((20, 20, 20)).astype(np.float32), np.eye(4)))
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(LoadError, match=r"^scan\.nii\.gz: truncated gzip stream") as info:
        load_volume(path)
    assert "\n" not in str(info.value)


def test_truncated_uncompressed_nifti(tmp_path):
    path = _save(tmp_path / "short.nii", nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), np.eye(4)))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(LoadError, match=r"^short\.nii: "):
        load_volume(path)


def test_hash_is_of_file_bytes_and_pairs_hash_both(tmp_path):
    single = _save(tmp_path / "one.nii.gz", nib.Nifti1Image(np.ones((2, 3, 4), np.int16), np.eye(4)))
    assert load_volume(single).sha256 == hashlib.sha256(single.read_bytes()).hexdigest()
    pair = _save(tmp_path / "pair.img", nib.AnalyzeImage(np.ones((2, 3, 4), np.int16), np.eye(4)))
    header = pair.with_suffix(".hdr")
    expected = hashlib.sha256(header.read_bytes() + pair.read_bytes()).hexdigest()
    assert load_volume(pair).sha256 == expected == load_volume(header).sha256


@pytest.mark.parametrize(
    "name",
    ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz", "standard.nii.gz", "test.mgz", "minc1_1_scale.mnc", "small.mnc"],
)
def test_real_files_match_nibabel(name):
    path = NIBABEL_DATA / name
    img = nib.load(path)
    three_d = nib.Nifti1Image(np.asarray(img.dataobj[..., 0] if len(img.shape) == 4 else img.dataobj), img.affine)
    for axis in AXES:
        volume = load_volume(path, axis=axis)
        check_against_nibabel(volume, three_d, axis)
        assert volume.source == path and len(volume.sha256) == 64
        assert volume.original_dtype == np.dtype(img.get_data_dtype()).name
        assert volume.n_volumes == (img.shape[3] if len(img.shape) == 4 else 1)


@pytest.mark.parametrize("name", ["minc1_4d.mnc", "minc2_4d.mnc", "minc2-4d-d.mnc"])
def test_minc_4d_has_time_first(name):
    path = NIBABEL_DATA / name
    img = nib.load(path)
    n_volumes, *spatial = img.shape  # time, then the three *space axes the affine covers
    volume = load_volume(path, axis="axial", volume_index=1)
    assert volume.n_volumes == n_volumes and sorted(volume.shape[:3]) == sorted(spatial)
    check_against_nibabel(volume, nib.Nifti1Image(np.asarray(img.dataobj)[1], img.affine), "axial")


def test_missing_companion_file(tmp_path):
    pair = _save(tmp_path / "lonely.img", nib.AnalyzeImage(np.ones((2, 3, 4), np.int16), np.eye(4)))
    pair.unlink()
    with pytest.raises(LoadError, match=r"^lonely\.hdr: .*lonely\.img"):
        load_volume(pair.with_suffix(".hdr"))


def test_not_a_volume_image():
    with pytest.raises(LoadError, match=r"row_major\.dconn\.nii: .*not a volume"):
        load_volume(NIBABEL_DATA / "row_major.dconn.nii")


def _save(path: Path, img) -> Path:
    nib.save(img, path)
    return path
