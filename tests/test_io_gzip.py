"""gzip-compressed images (.nii.gz, .mgz, .img.gz) read straight into float32 by the fast path
(`nibabel_formats._fill_from_gzip`): bit for bit what nibabel's own path gives, the oracle; a
damaged stream falls back to nibabel's error, and a bug in the fast path is not hidden."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app.errors import LoadError
from app.io import load_volume, nibabel_formats
from app.volume import AXES, Volume


def _images(tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    stored = rng.integers(-1000, 2000, (33, 40, 27)).astype(np.int16)
    scaled = nib.Nifti1Image(stored, np.diag([-0.9, 1.1, 2.5, 1]))
    scaled.header.set_slope_inter(0.37, -12.5)
    series = nib.Nifti1Image(rng.integers(0, 255, (10, 11, 12, 3)).astype(np.int16), np.eye(4))
    images = {
        "int16.nii.gz": nib.Nifti1Image(stored, np.diag([0.9, 1.1, 2.5, 1])),
        "scaled.nii.gz": scaled,
        "big_endian_f8.nii.gz": nib.Nifti1Image(rng.random((20, 21, 22)).astype(">f8"), np.eye(4)),
        "nan.nii.gz": nib.Nifti1Image(np.where(rng.random((8, 9, 10)) > 0.9, np.nan, 1.0).astype(np.float32), np.eye(4)),
        "series.nii.gz": series,
        "pair.img.gz": nib.Nifti1Pair(stored, np.eye(4)),
        "image.mgz": nib.MGHImage(rng.random((20, 21, 22)).astype(np.float32), np.eye(4)),
    }
    paths = {}
    for name, image in images.items():
        nib.save(image, tmp / name)
        paths[name] = tmp / name
    raw = images["int16.nii.gz"].to_bytes()
    members = tmp / "members.nii.gz"  # concatenated gzip members (and zero padding), as some tools write
    members.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:5000]) + b"\0\0\0\0" + gzip.compress(raw[5000:]))
    paths["members.nii.gz"] = members
    return paths


@pytest.fixture(scope="module")
def gz_images(tmp_path_factory) -> dict[str, Path]:
    return _images(tmp_path_factory.mktemp("gz"))


def _load_both(monkeypatch, path: Path, **kwargs) -> tuple[Volume, Volume, list[bool]]:
    used: list[bool] = []
    fast = nibabel_formats._fill_from_gzip

    def spy(*args):
        used.append(fast(*args))
        return used[-1]

    with monkeypatch.context() as m:
        m.setattr(nibabel_formats, "_fill_from_gzip", spy)
        ours = load_volume(path, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(nibabel_formats, "_fill_from_gzip", lambda *args: False)
        plain = load_volume(path, **kwargs)
    return ours, plain, used


@pytest.mark.parametrize("name", ["int16.nii.gz", "scaled.nii.gz", "big_endian_f8.nii.gz", "nan.nii.gz", "pair.img.gz", "image.mgz", "members.nii.gz"])
@pytest.mark.parametrize("axis", AXES)
def test_gzip_fast_path_gives_nibabels_values(monkeypatch, gz_images, name, axis):
    ours, plain, used = _load_both(monkeypatch, gz_images[name], axis=axis)
    assert used == [True]
    assert np.array_equal(ours.data.numpy(), plain.data.numpy(), equal_nan=True)
    assert ours.sha256 == plain.sha256 and np.array_equal(ours.affine, plain.affine) and ours.data.is_contiguous()


def test_gzip_fast_path_reads_one_volume_of_a_series(monkeypatch, gz_images):
    for index in (0, 2):
        ours, plain, used = _load_both(monkeypatch, gz_images["series.nii.gz"], volume_index=index)
        assert used == [True] and np.array_equal(ours.data.numpy(), plain.data.numpy())
    assert np.array_equal(ours.data.numpy()[..., 0], np.asarray(nib.load(gz_images["series.nii.gz"]).dataobj[..., 2]).transpose(2, 1, 0)[:, ::-1, :])


def test_damaged_gzip_falls_back_to_nibabels_error(tmp_path, gz_images):
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(gz_images["int16.nii.gz"].read_bytes()[:-3000])
    with pytest.raises(LoadError, match=r"^cut\.nii\.gz: truncated gzip stream"):
        load_volume(path)


def test_corrupt_deflate_falls_back_to_nibabels_error(tmp_path, gz_images):
    blob = bytearray(gz_images["int16.nii.gz"].read_bytes())
    blob[60:68] = bytes(b ^ 0x5A for b in blob[60:68])
    path = tmp_path / "corrupt.nii.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(LoadError, match=r"^corrupt\.nii\.gz: corrupt gzip stream"):
        load_volume(path)


def test_a_bug_in_the_fast_path_is_not_a_silent_fallback(monkeypatch, gz_images):
    def broken(*args):
        raise TypeError("a bug, not a damaged file")

    monkeypatch.setattr(nibabel_formats, "_inflate_into", broken)
    with pytest.raises(LoadError, match=r"a bug, not a damaged file"):
        load_volume(gz_images["int16.nii.gz"])
