"""Segmentation models through ``slicewise predict`` (in this process: the ``cli`` fixture; real files): masks written back
in the SOURCE voxel order and affine, read back with nibabel; a legacy ``.h5`` U-Net end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import nibabel as nib
import numpy as np
import pytest
from keras import layers

from tests.dicom_writer import IOPS, write_series
from tests.test_cli import read_csv

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
T = 500.0  # the threshold model's cut, in the stored values


@pytest.fixture(scope="module")
def threshold_file(tmp_path_factory) -> Path:
    """A saved 1×1-convolution model whose mask is exactly the voxels ≥ T (free slice size)."""
    x = keras.Input((None, None, 1))
    gain = 0.5
    y = layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(gain), bias_initializer=keras.initializers.Constant(-gain * T))(x)
    path = tmp_path_factory.mktemp("models") / "threshold.keras"
    keras.Model(x, y).save(path)
    (path.with_suffix(".json")).write_text(json.dumps({"classes": ["bright"]}))
    return path


def blobs(shape, seed: int = 0) -> np.ndarray:
    """int16 voxels: smooth bright blobs (up to ~1000) on 0, never exactly T."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(np.float64)
    out = np.zeros(shape)
    for _ in range(4):
        centre = rng.uniform(0, 1, 3) * np.array(shape)
        out += 1000 * np.exp(-(((grid - centre) / (np.array(shape) / 4)) ** 2).sum(-1))
    out = np.rint(out).astype(np.int16)
    out[out == T] += 1
    return out


def oblique_sagittal_affine() -> np.ndarray:
    """Voxel axes (A-ish, S-ish reversed, R-ish), tilted by 12°: acquired sagittally, not axial."""
    a = np.radians(12)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    axes = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float).T  # columns: voxel axis 0 → A, 1 → -S, 2 → R
    affine = np.eye(4)
    affine[:3, :3] = rot @ axes @ np.diag([0.9, 1.1, 2.0])
    affine[:3, 3] = [-20, 15, 30]
    return affine


def test_mask_out_oblique_nifti_in_source_voxel_order(tmp_path, threshold_file, cli):
    data = blobs((22, 18, 9))
    src = nib.Nifti1Image(data, oblique_sagittal_affine())
    src.set_qform(src.affine, code=1)
    src.set_sform(src.affine, code=2)
    path = tmp_path / "oblique.nii.gz"
    nib.save(src, path)
    out, mask = tmp_path / "out.csv", tmp_path / "mask.nii.gz"
    done = cli("predict", path, "--model", threshold_file, "--out", out, "--mask-out", mask)
    assert done.returncode == 0, done.stderr
    back = nib.load(mask)
    assert back.shape == data.shape and back.get_data_dtype() == np.uint8
    np.testing.assert_allclose(back.affine, src.affine, atol=1e-5)
    assert int(back.header["qform_code"]) == 1 and int(back.header["sform_code"]) == 2
    assert np.array_equal(np.asarray(back.dataobj), (data >= T).astype(np.uint8))
    rows = read_csv(out)
    assert list(rows[0])[3:] == ["area_mm2"]  # one foreground class: the plain name
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    seg = meta["runs"][0]["segmentation"]
    assert seg["kind"] == "sigmoid" and seg["threshold"] == 0.5 and seg["reduce"] == "area"
    volumes = meta["volumes"][0]["runs"][0]["segmentation"]["class_volumes"]
    assert volumes["bright"]["voxels"] == int((data >= T).sum())
    total_area = sum(float(r["area_mm2"]) for r in rows)
    slice_mm = meta["volumes"][0]["spacing_mm"][0]
    assert total_area * slice_mm / 1000 == pytest.approx(volumes["bright"]["volume_ml"], rel=1e-4)


def test_mask_out_dicom_series_patient_space_affine(tmp_path, threshold_file, cli):
    volume = blobs((7, 20, 16), seed=3)  # (slices, rows, columns)
    iop, origin, spacing, step = IOPS["coronal"], [-30.0, 12.0, 40.0], (0.7, 0.9), 2.5
    write_series(tmp_path / "series", volume, iop, origin, spacing=spacing, step=step)
    mask, reference = tmp_path / "mask.nii.gz", tmp_path / "reference.nii.gz"
    row, col = np.array(iop[:3]), np.array(iop[3:])
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = np.cross(row, col) * step, col * spacing[0], row * spacing[1], origin
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # slice k, row i, column j → RAS
    nib.save(nib.Nifti1Image((volume >= T).astype(np.uint8), affine), reference)
    done = cli("predict", tmp_path / "series", "--model", threshold_file, "--mask-out", mask, "--reference-mask", reference, "--out", tmp_path / "o.csv")
    assert done.returncode == 0, done.stderr
    back = nib.load(mask)
    np.testing.assert_allclose(back.affine, affine, atol=1e-4)
    assert np.array_equal(np.asarray(back.dataobj), (volume >= T).astype(np.uint8))
    assert "dice of bright" in done.stderr and ": 1.000" in done.stderr
    per_slice = done.stderr.split("per slice (slice:dice, where either mask has voxels): ")[1].splitlines()[0].split()
    assert len(per_slice) == sum((volume[d] >= T).any() for d in range(len(volume))) and all(v.endswith(":1.000") for v in per_slice)
    meta = json.loads((tmp_path / "o.csv.json").read_text())
    assert meta["volumes"][0]["runs"][0]["segmentation"]["dice"]["classes"]["bright"]["dice"] == 1.0


def test_bad_mask_path_refused_before_scoring(tmp_path, threshold_file, cli):
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(blobs((8, 8, 4)), np.eye(4)), path)
    for bad in (tmp_path / "missing" / "m.nii.gz", tmp_path / "m.png"):
        done = cli("predict", path, "--model", threshold_file, "--mask-out", bad, "--out", tmp_path / "o.csv")
        assert done.returncode == 2 and done.stderr.startswith("error: cannot write") and "Traceback" not in done.stderr
        assert not (tmp_path / "o.csv").exists() and not bad.exists()


def test_legacy_h5_unet_smaller_than_the_slices_end_to_end(tmp_path, cli):
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((32, 32, 1))
    skip = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.MaxPooling2D(2)(skip))
    x = layers.Concatenate()([layers.UpSampling2D(2)(x), skip])
    outputs = layers.Conv2D(1, 1, activation="sigmoid")(layers.Conv2D(4, 3, padding="same", activation="relu")(x))
    model_path = tmp_path / "unet.hdf5"
    model = keras.Model(inputs, outputs)

    def dice_loss(y_true, y_pred):  # a custom loss named in the compile config, as legacy U-Nets have
        return 1 - 2 * keras.ops.sum(y_true * y_pred) / (keras.ops.sum(y_true) + keras.ops.sum(y_pred) + 1)

    model.compile(optimizer="adam", loss=dice_loss)
    model.save(tmp_path / "unet.h5")  # Keras writes the legacy HDF5 format for .h5
    (tmp_path / "unet.h5").rename(model_path)
    data = blobs((45, 40, 6))
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 3.0, 1.0])), tmp_path / "v.nii.gz")
    out = tmp_path / "o.csv"
    done = cli("predict", tmp_path / "v.nii.gz", "--model", model_path, "--normalize", "minmax", "--out", out, "--mask-out", tmp_path / "m.nii.gz")
    assert done.returncode == 0, done.stderr
    rows = read_csv(out)
    assert len(rows) == 6 and all(np.isfinite(float(r["area_mm2"])) for r in rows)
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["runs"][0]["segmentation"]["tiling"] == {"window": [1, 32, 32], "overlap": 0.25, "fit": "tile", "stride": 1}
    assert nib.load(tmp_path / "m.nii.gz").shape == data.shape


def test_user_seg_script_does_the_same_job_as_slicewise_predict(tmp_path, cli, monkeypatch):
    """``seg_whole_job_vs_script`` compares like with like: the script's areas and mask (a per-pixel
    model, so that blending cannot differ) are slicewise's, slice for slice and voxel for voxel."""
    from app.tools.bench import brain_phantom

    head = brain_phantom((48, 56, 24))
    nib.save(head, tmp_path / "brain.nii.gz")
    x = keras.Input((32, 32, 1))
    y = layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(60.0), bias_initializer=keras.initializers.Constant(-30.0))(x)
    keras.Model(x, y).save(tmp_path / "unet.keras")
    ours, theirs = tmp_path / "ours.csv", tmp_path / "theirs.csv"
    monkeypatch.chdir(tmp_path)
    done = cli("predict", "brain.nii.gz", "--model", "unet.keras", "--normalize", "minmax", "--out", ours, "--mask-out", "ours.nii.gz")
    assert done.returncode == 0, done.stderr[-2000:]
    script = ["-m", "app.tools.user_seg_script", "brain.nii.gz", "unet.keras", theirs, "theirs.nii.gz"]  # the script as a program
    done = subprocess.run([sys.executable, *map(str, script)], capture_output=True, text=True, cwd=tmp_path, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    a = np.loadtxt(ours, delimiter=",", skiprows=1, usecols=3)
    b = np.loadtxt(theirs, delimiter=",", skiprows=1, usecols=1)
    assert a.shape == b.shape == (24,) and np.ptp(a) > 100
    np.testing.assert_allclose(a, b, atol=3.0)  # a few pixels within 1/255 of the threshold may differ
    mask_a, mask_b = (np.asarray(nib.load(tmp_path / name).dataobj) for name in ("ours.nii.gz", "theirs.nii.gz"))
    assert mask_a.shape == mask_b.shape == (48, 56, 24) and (mask_a != mask_b).mean() < 1e-3


def test_mask_out_needs_a_segmentation_model(tmp_path, cli):
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(blobs((16, 16, 4)), np.eye(4)), path)
    done = cli("predict", path, "--mask-out", tmp_path / "m.nii.gz", "--out", tmp_path / "o.csv")  # the built-in slice classifier
    assert done.returncode == 2 and "need a segmentation model" in done.stderr
    assert not (tmp_path / "m.nii.gz").exists() and not (tmp_path / "o.csv").exists()
