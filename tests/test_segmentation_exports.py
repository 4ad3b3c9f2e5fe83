"""Segmentation runs through the other doors: an ONNX segmenter against its Keras twin, and one
`slicewise predict` of the demo's lesion U-Net on a DICOM series writing every result at once
(CSV, NIfTI mask, DICOM SEG and SR), all of it read back."""

from __future__ import annotations

import csv
import shutil

import highdicom as hd
import keras
import numpy as np
import onnx
import pydicom
import pytest
import torch
from keras import layers
from pydicom.uid import generate_uid

from app.cli import main
from app.inference import Engine
from app.inference.models import LoadedModel, spec_of
from app.inference.onnx_model import load_onnx
from app.io import load_volume
from app.phantom import make_phantom
from app.strategies import get_strategy
from app.volume import Volume
from tests.dicom_writer import IOPS, write_series
from tests.onnx_models import segmentation_graph
from tests.test_dicom_export import PATIENT, dciodvfy_errors


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(threads=1)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_onnx_segmenter_gives_its_keras_twins_mask(engine, tmp_path, layout):
    """The same 1×1-conv sigmoid segmenter as an ONNX graph and as a Keras model: the same maps on
    the volume's grid (streamed through ``on_map``), the same masks and areas."""
    weight, bias = np.array([[0.04], [-0.03]], np.float32), np.array([-2.0, 1.5], np.float32)
    onnx.save(segmentation_graph(weight, bias, layout), tmp_path / "seg.onnx")
    keras_twin = keras.Sequential([keras.Input((None, None, 1)), layers.Conv2D(2, 1, activation="sigmoid")], name="twin")
    keras_twin.set_weights([weight.T[None, None], bias])
    twin = LoadedModel(keras_twin, "twin.keras", "", "none", spec_of(keras_twin), whole=keras_twin).with_output(None)
    data = np.random.default_rng(3).uniform(0, 100, (5, 23, 17)).astype(np.float32)
    volume = Volume.from_tensor(torch.from_numpy(data))
    streamed: dict[str, list] = {"onnx": [], "keras": []}
    runs = {
        name: engine.run(volume, get_strategy("slice"), model, on_map=lambda i, p, name=name: streamed[name].append((i, p)), batch_size=2)
        for name, model in (("onnx", load_onnx(tmp_path / "seg.onnx")), ("keras", twin))
    }
    onnx_run, keras_run = runs["onnx"], runs["keras"]
    assert onnx_run.dense is not None and keras_run.dense is not None
    np.testing.assert_array_equal(onnx_run.dense.masks(slice(None)), keras_run.dense.masks(slice(None)))
    assert np.abs(onnx_run.dense.probabilities.astype(int) - keras_run.dense.probabilities).max() <= 1  # uint8 rounding of float noise
    np.testing.assert_allclose(onnx_run.scores, keras_run.scores)
    expected = 1 / (1 + np.exp(-(data[..., None] * weight[:, 0] + bias)))
    assert onnx_run.dense.masks(slice(None)).sum() == (expected >= 0.5).sum() > 0
    assert sorted(np.concatenate([i for i, _ in streamed["onnx"]]).tolist()) == list(range(5))


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    """The demo phantom (12 slices, with lesions) as an axial CT series in shuffled files."""
    phantom = make_phantom(seed=3, depth=12, size=96, lesions=3)
    stack = np.asarray(phantom.image.dataobj).transpose(2, 1, 0)[:, ::-1].astype(np.int16)  # (slices, rows, cols)
    folder = tmp_path_factory.mktemp("series") / "ct"
    patient = {**PATIENT, "FrameOfReferenceUID": generate_uid()}
    paths, _ = write_series(folder, np.ascontiguousarray(stack), IOPS["axial"], [-43.0, -43.0, 0.0], spacing=(0.9, 0.9), step=2.5, patient=patient)
    return folder, paths


def test_lesion_unet_on_a_dicom_series_writes_csv_mask_seg_and_sr_together(tmp_path, phantom_series, capsys):
    """One run of ``--model builtin:lesion`` on a DICOM series: the CSV's areas, the NIfTI mask, the
    SEG's frames and the SR's measurements all tell the same map, and the DICOM files validate."""
    folder, paths = phantom_series
    out = tmp_path / "out"
    out.mkdir()
    code = main(["predict", str(folder), "--model", "builtin:lesion", "--out", str(out / "areas.csv"), "--mask-out", str(out / "mask.nii.gz"),
                 "--seg-out", str(out / "seg.dcm"), "--sr-out", str(out / "sr.dcm")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["areas.csv", "areas.csv.json", "mask.nii.gz", "seg.dcm", "sr.dcm"]

    with open(out / "areas.csv") as f:
        rows = list(csv.DictReader(f))
    areas = np.array([float(r["area_mm2"]) for r in rows])
    assert len(areas) == len(paths) and (areas > 0).sum() >= 2, areas

    import nibabel as nib

    mask = np.asarray(nib.load(out / "mask.nii.gz").dataobj)
    volume = load_volume(folder)
    pixel_mm2 = volume.spacing[1] * volume.spacing[2]
    np.testing.assert_allclose(mask.reshape(-1, *mask.shape[2:]).sum() * pixel_mm2, areas.sum(), rtol=1e-5)  # every voxel, whichever layout

    seg = hd.seg.segread(out / "seg.dcm")
    frames = pydicom.dcmread(out / "seg.dcm").pixel_array.reshape(-1, seg.Rows, seg.Columns)
    per_source = {}
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        per_source[uid] = int(frame.sum())
    by_uid = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: k for k, p in enumerate(paths)}  # file k is display slice k (axial, inferior first)
    seg_areas = np.zeros(len(paths))
    for uid, count in per_source.items():
        seg_areas[by_uid[uid]] = count * pixel_mm2
    np.testing.assert_allclose(seg_areas, areas, rtol=1e-5)

    sr = hd.sr.srread(out / "sr.dcm")
    values = [
        float(item.MeasuredValueSequence[0].NumericValue)
        for item in _walk(sr.ContentSequence)
        if item.ValueType == "NUM" and item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "mm2"
    ]
    assert sorted(values) == pytest.approx(sorted(areas.tolist()), rel=1e-5, abs=1e-6)
    if shutil.which("dciodvfy"):
        assert dciodvfy_errors(out / "seg.dcm") == [] and dciodvfy_errors(out / "sr.dcm") == []


def _walk(items):
    """Every content item of an SR tree, depth first."""
    for item in items:
        yield item
        yield from _walk(getattr(item, "ContentSequence", []))
