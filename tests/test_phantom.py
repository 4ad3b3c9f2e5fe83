"""The synthetic phantom: deterministic, CT-like, correctly placed, and its labels are true."""

from __future__ import annotations

import hashlib
import time

import nibabel as nib
import numpy as np
import pytest

from app.errors import SlicewiseError
from app.phantom import (
    HU,
    LABEL_PATCH,
    LABEL_THRESHOLD_HU,
    Phantom,
    _render,
    lesion_mask,
    make_phantom,
    write_demo,
)

# the detector below was never tuned on these seeds' images; train_demo uses 0-47 and 10000+
CHECK_SEEDS = range(20_000, 20_006)


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    return make_phantom(seed=7)


def array(p: Phantom) -> np.ndarray:
    return np.asarray(p.image.dataobj)


def runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of positive slices."""
    edges = np.flatnonzero(np.diff(np.r_[0, labels.astype(int), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(phantom):
    again = make_phantom(seed=7)
    assert array(again).tobytes() == array(phantom).tobytes()
    assert again.labels.tobytes() == phantom.labels.tobytes()
    np.testing.assert_array_equal(again.image.affine, phantom.image.affine)


def test_different_seed_different_volume(phantom):
    other = make_phantom(seed=8)
    assert array(other).tobytes() != array(phantom).tobytes()
    assert other.labels.tobytes() != phantom.labels.tobytes()
    # not just noise: the anatomy itself differs (body outline at the middle slice)
    body = [(array(p)[:, :, 32] > -500).sum() for p in (phantom, other)]
    assert body[0] != body[1]


# ---------------------------------------------------------------------------- geometry


def test_shape_dtype_and_header(phantom):
    img = phantom.image
    assert isinstance(img, nib.Nifti1Image)
    assert img.shape == (128, 128, 64)
    assert array(phantom).dtype == np.int16
    assert img.get_data_dtype() == np.int16
    assert phantom.labels.shape == (64,) and phantom.labels.dtype == np.uint8
    assert set(np.unique(phantom.labels)) <= {0, 1}
    header = img.header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1
    assert header.get_xyzt_units() == ("mm", "sec")
    assert float(header["scl_slope"]) == 1.0 and float(header["scl_inter"]) == 0.0
    np.testing.assert_allclose(header.get_zooms(), (0.9, 0.9, 2.5), rtol=1e-6)


def test_affine_is_ras_centred_with_the_spacing():
    p = make_phantom(seed=1, depth=20, size=48, spacing=(0.7, 0.8, 3.0))
    affine = p.image.affine
    assert p.image.shape == (48, 48, 20) and p.labels.shape == (20,)
    np.testing.assert_allclose(affine[:3, :3], np.diag([0.7, 0.8, 3.0]), atol=1e-6)
    assert nib.aff2axcodes(affine) == ("R", "A", "S")
    centre = affine @ np.array([47 / 2, 47 / 2, 19 / 2, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-4)
    np.testing.assert_allclose(p.image.get_qform(), affine, atol=1e-5)
    np.testing.assert_allclose(p.image.get_sform(), affine, atol=1e-6)


def test_hounsfield_like_anatomy(phantom):
    a = array(phantom).astype(np.float64)
    corner = a[:6, :6, :]
    assert abs(corner.mean() - HU["air"]) < 5  # air outside the body, with noise
    centre = a[54:74, 54:74, :20]  # mid-body, lower slices: soft tissue (and perhaps liver)
    assert 25 < np.median(centre) < 75
    lung = np.zeros(a.shape, bool)  # air-like voxels well inside the body outline
    lung[24:104, 36:92] = a[24:104, 36:92] < -500
    lung_per_slice = lung.sum(axis=(0, 1))
    assert lung_per_slice[:10].max() < 20  # no lungs at the inferior end ...
    assert lung_per_slice[-10:].min() > 500  # ... big ones at the superior end
    assert (a > 500).sum(axis=(0, 1)).min() > 20  # a spine in every slice
    # the spine is posterior (low j in RAS), the lungs are left and right of the midline
    bone_j = np.nonzero(a > 500)[1]
    assert np.median(bone_j) < 64
    lung_i = np.nonzero(lung[:, :, -5])[0]
    assert (lung_i < 54).any() and (lung_i > 74).any()


def test_body_varies_smoothly_along_z(phantom):
    area = (array(phantom) > -500).sum(axis=(0, 1)).astype(np.float64)
    assert area.max() / area.min() > 1.02  # it does vary ...
    assert np.abs(np.diff(area)).max() < 0.05 * area.mean()  # ... but gently from slice to slice


# ---------------------------------------------------------------------------- labels


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """In-plane sum over a (2r+1)² window, zero outside; ``a`` is (x, y, z)."""
    p = np.pad(a, ((r + 1, r), (r + 1, r), (0, 0)))
    c = p.cumsum(0).cumsum(1)
    n = 2 * r + 1
    return c[n:, n:] - c[:-n, n:] - c[n:, :-n] + c[:-n, :-n]


def detect(image: np.ndarray) -> np.ndarray:
    """Per slice, how far the brightest small blob stands above the plain soft tissue around it.

    Image only: 3×3 smoothing, background = mean of the nearby voxels that look like plain soft
    tissue (−30…90 HU), ignoring places next to bone.
    """
    v = image.astype(np.float64)
    smooth = _box_sum(v, 1) / 9
    near_bone = _box_sum((v > 300).astype(np.float64), 5) > 0
    plain = ((smooth >= -30) & (smooth <= 90)).astype(np.float64)
    count = _box_sum(plain, 12)
    background = _box_sum(smooth * plain, 12) / np.maximum(count, 1)
    usable = (count > 0.5 * 25 * 25) & ~near_bone & (smooth < 300)
    return np.where(usable, smooth - background, -np.inf).max(axis=(0, 1))


@pytest.mark.parametrize("seed", CHECK_SEEDS)
def test_labels_agree_with_what_the_image_shows(seed):
    p = make_phantom(seed=seed)
    labels = p.labels.astype(bool)
    excess = detect(array(p))
    found = excess >= 48.0
    assert not (found & ~labels).any(), f"bright blob in unlabelled slices {np.flatnonzero(found & ~labels)}"
    assert excess[~labels].max() < 45.0  # negatives are clearly negative
    for start, stop in runs(p.labels):  # every lesion is plainly visible somewhere in its run
        assert found[start:stop].any(), f"nothing visible in labelled slices {start}..{stop - 1}"
    assert found[labels].mean() >= 0.7  # and in most of its slices (caps at the ends may be faint)


@pytest.mark.parametrize("seed", [0, 6, 20_000])  # seed 6 has faint caps that are labelled 0
def test_labels_are_exactly_the_slices_where_the_lesions_show(seed):
    with_lesions, labels, _ = _render(seed, 64, 128, (0.9, 0.9, 2.5))
    without, no_labels, _ = _render(seed, 64, 128, (0.9, 0.9, 2.5), lesions=0)
    assert not no_labels.any()
    change = with_lesions.astype(np.int32) - without
    assert change.min() >= 0  # lesions only brighten
    patch = _box_sum(change.astype(np.float64), LABEL_PATCH // 2).max(axis=(0, 1)) / LABEL_PATCH**2
    # int16 rounding moves a voxel's change by at most 1 HU, so a patch's mean too
    assert (patch[labels == 1] >= LABEL_THRESHOLD_HU - 1).all()
    assert (patch[labels == 0] <= LABEL_THRESHOLD_HU + 1).all()
    assert 60 - 1 <= change.max() <= 120 + 1  # contrast within the documented range
    # lesions sit in soft tissue: never in air, lung, fat or bone
    host = without[change > 0].astype(np.float64)
    assert host.min() > -150 and host.max() < 250
    assert change[:, :, 0].max() == 0 and change[:, :, -1].max() == 0


@pytest.mark.parametrize("seed", range(10))
def test_positive_fraction_and_free_end_slices(seed):
    labels = make_phantom(seed=seed).labels
    assert 0.12 <= labels.mean() <= 0.40
    assert labels[0] == 0 and labels[-1] == 0
    assert len(runs(labels)) >= 2


@pytest.mark.parametrize("seed", [6, 20_001])
def test_lesion_mask_marks_the_visible_lesions(seed):
    mask = np.asarray(lesion_mask(seed).dataobj)
    p = make_phantom(seed)
    assert mask.shape == array(p).shape and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask.any(axis=(0, 1)), p.labels.astype(bool))
    without, _, _ = _render(seed, 64, 128, (0.9, 0.9, 2.5), lesions=0)
    change = array(p).astype(np.int32) - without
    assert change[mask == 1].min() >= LABEL_THRESHOLD_HU - 1  # int16 rounding: at most 1 HU off
    assert (change[:, :, p.labels == 1] >= LABEL_THRESHOLD_HU + 1)[mask[:, :, p.labels == 1] == 0].sum() == 0


def test_lesion_free_phantom_is_the_same_body_without_lesions():
    plain, with_lesions = make_phantom(seed=4, lesions=0), make_phantom(seed=4)
    assert not plain.labels.any() and with_lesions.labels.any()
    change = array(with_lesions).astype(np.int32) - array(plain)
    assert change.min() >= 0 and (change > 0).any()  # same anatomy and noise: only the lesions differ
    assert change[:, :, with_lesions.labels == 0].max() < LABEL_PATCH**2 * LABEL_THRESHOLD_HU


@pytest.mark.parametrize("count", [1, 2, 4])
def test_asked_number_of_lesions(count):
    from scipy import ndimage

    with_lesions, _, _ = _render(9, 64, 128, (0.9, 0.9, 2.5), lesions=count)
    without, _, _ = _render(9, 64, 128, (0.9, 0.9, 2.5), lesions=0)
    _, found = ndimage.label(with_lesions.astype(np.int32) - without >= 20)
    assert found == count  # lesions never overlap: each is one blob


def test_write_demo_lesion_free(tmp_path):
    _, labels_path = write_demo(tmp_path, seed=3, depth=24, size=48, lesions=0)
    table = np.loadtxt(labels_path, delimiter=",", skiprows=1, dtype=np.int64)
    assert table.shape == (24, 2) and not table[:, 1].any()


def test_other_depths_and_sizes_keep_the_ends_free():
    for seed, depth, size in [(1, 16, 64), (2, 32, 96), (3, 100, 128)]:
        p = make_phantom(seed=seed, depth=depth, size=size)
        assert p.image.shape == (size, size, depth)
        assert p.labels[0] == 0 and p.labels[-1] == 0 and p.labels.any() and not p.labels.all()


def test_fast():
    started = time.perf_counter()
    make_phantom(seed=11)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "kwargs", [{"seed": -1}, {"depth": 4}, {"size": 8}, {"spacing": (1, 0, 1)}, {"seed": 1.5}, {"lesions": -1}, {"lesions": 1.5}, {"lesions": True}]
)
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(SlicewiseError):
        make_phantom(**kwargs)


# ---------------------------------------------------------------------------- files


def test_write_demo_round_trip(tmp_path):
    out = tmp_path / "new" / "folder"
    image_path, labels_path = write_demo(out, seed=5, depth=40, size=64)
    assert (image_path, labels_path) == (out / "phantom.nii.gz", out / "labels.csv")
    assert sorted(p.name for p in out.iterdir()) == ["labels.csv", "phantom.nii.gz"]  # no temp files left

    expected = make_phantom(seed=5, depth=40, size=64)
    loaded = nib.load(image_path)
    data = np.asarray(loaded.dataobj)
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data, array(expected))
    np.testing.assert_allclose(loaded.affine, expected.image.affine, atol=1e-5)
    assert int(loaded.header["qform_code"]) == 1 and int(loaded.header["sform_code"]) == 1

    lines = labels_path.read_text().splitlines()
    assert lines[0] == "slice_index,label"
    assert len(lines) == 1 + 40
    table = np.loadtxt(labels_path, delimiter=",", skiprows=1, dtype=np.int64)
    np.testing.assert_array_equal(table[:, 0], np.arange(40))
    np.testing.assert_array_equal(table[:, 1], expected.labels)


def test_write_demo_is_byte_reproducible_and_overwrites(tmp_path):
    first = write_demo(tmp_path / "a", seed=2, depth=24, size=48)
    second = write_demo(tmp_path / "b", seed=2, depth=24, size=48)
    digest = [[hashlib.sha256(p.read_bytes()).hexdigest() for p in pair] for pair in (first, second)]
    assert digest[0] == digest[1]

    write_demo(tmp_path / "a", seed=3, depth=24, size=48)  # replaces the files in place
    assert hashlib.sha256(first[0].read_bytes()).hexdigest() != digest[0][0]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["labels.csv", "phantom.nii.gz"]
