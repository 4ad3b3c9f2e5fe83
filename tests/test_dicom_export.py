"""DICOM SEG and TID 1500 SR: written from real series, read back with highdicom and pydicom,
checked against each source file's own pixels, and validated with dciodvfy."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from app.dicom_export.seg import write_seg
from app.dicom_export.sr import LABEL_CONCEPT, write_sr
from app.io import load_volume
from app.labels import Label
from app.prediction import Prediction
from app.segmentation.dense_map import LEVELS, DenseMap
from tests.dicom_writer import IOPS, write_series

PATIENT = {"FrameOfReferenceUID": "", "PatientID": "SW-0042", "PatientName": "Doe^Jane", "StudyDate": "20260301"}
LIMIT = 1000.0  # the test maps' probability: stored value / LIMIT


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines dciodvfy prints for ``path`` (warnings are not failures); skipped only
    where dciodvfy is missing outside CI (CI installs it: a missing one there fails)."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("dciodvfy (dicom3tools) is missing on CI; .ci/run installs it")
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("Error")]


def stored_values(path: Path) -> np.ndarray:
    """A source file's own modality values (rows, cols), read here, not by the loader."""
    ds = pydicom.dcmread(path)
    return pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


def probability(values: np.ndarray) -> np.ndarray:
    return np.clip(values / LIMIT, 0.0, 1.0)


def threshold_map(volume, kind: str = "sigmoid") -> DenseMap:
    """A real map of the volume: its values over LIMIT as a probability (sigmoid, one class), or
    three softmax classes by value band (background, "mid", "high")."""
    values = volume.data[..., 0].numpy()
    p = probability(values)
    if kind == "sigmoid":
        dense = DenseMap.empty((*values.shape, 1), "sigmoid", ("lesion",))
        dense.put(np.arange(volume.depth), p[..., None])
        return dense
    bands = np.digitize(values, [LIMIT * 0.4, LIMIT * 0.7])
    onehot = (bands[..., None] == np.arange(3)).astype(np.float32)
    dense = DenseMap.empty((*values.shape, 3), "softmax", ("background", "mid", "high"), background=0)
    dense.put(np.arange(volume.depth), onehot)
    return dense


@pytest.fixture
def series(tmp_path) -> tuple[Path, list[Path]]:
    """An axial CT series in shuffled file names and instance numbers, values 0…1000."""
    rng = np.random.default_rng(7)
    stack = rng.integers(0, 1000, (6, 9, 11)).astype(np.int16)
    folder = tmp_path / "ct"
    patient = {**PATIENT, "FrameOfReferenceUID": generate_uid()}
    paths, _ = write_series(folder, stack, IOPS["oblique"], [-20.0, 30.0, 40.0], spacing=(0.5, 0.75), step=2.5, patient=patient)
    return folder, paths


def frames_by_source(seg) -> list[tuple[str, int, np.ndarray]]:
    """Each SEG frame's source SOP instance, segment number and stored pixels ``(rows, cols)``
    (the raw values: 0/1 for BINARY, 0…255 for FRACTIONAL)."""
    pixels = pydicom.dcmread(seg.filename).pixel_array if getattr(seg, "filename", None) else seg.pixel_array
    pixels = pixels.reshape(-1, *pixels.shape[-2:])
    shared = seg.SharedFunctionalGroupsSequence[0]
    out = []
    for i, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        identification = group.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        out.append((str(source), int(identification[0].ReferencedSegmentNumber), pixels[i]))
    return out


def check_seg_frames(seg_path: Path, paths: list[Path], expected) -> int:
    """Every frame equals ``expected(values, segment)`` of the file it references; empty
    frames are the ones left out.  Returns the number of frames."""
    seg = hd.seg.segread(seg_path)
    by_uid = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in paths}
    frames = frames_by_source(seg)
    seen = set()
    for uid, segment, pixels in frames:
        assert uid in by_uid, "every frame references one of the series' images"
        np.testing.assert_array_equal(pixels, expected(stored_values(by_uid[uid]), segment))
        seen.add((uid, segment))
    for uid, path in by_uid.items():
        for segment in range(1, len(seg.SegmentSequence) + 1):
            if (uid, segment) not in seen:
                assert not expected(stored_values(path), segment).any(), "only empty frames are left out"
    return len(frames)


@pytest.mark.parametrize("axis", ["acquired", "coronal", "sagittal"])
def test_binary_seg_frames_are_their_source_images_masks(tmp_path, series, axis):
    folder, paths = series
    volume = load_volume(folder, axis=axis)
    out = write_seg(tmp_path / "seg.dcm", volume, threshold_map(volume), "unet", "ab" * 32)
    assert check_seg_frames(out, paths, lambda values, segment: (probability(values) >= 0.5).astype(np.uint8)) > 0
    assert dciodvfy_errors(out) == []

    seg = pydicom.dcmread(out)
    source = pydicom.dcmread(paths[0], stop_before_pixels=True)
    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID", "StudyDate"):
        assert seg[keyword].value == source[keyword].value, f"{keyword} copied from the source"
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID and seg.SOPInstanceUID != source.SOPInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert len(seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence) == len(paths)
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "lesion" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # SCT Lesion
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "unet" and algorithm.AlgorithmVersion == "ab" * 6


def test_fractional_softmax_seg_one_segment_per_foreground_class(tmp_path, series):
    folder, paths = series
    volume = load_volume(folder)
    dense = threshold_map(volume, "softmax")
    out = write_seg(tmp_path / "seg.dcm", volume, dense, "unet", "cd" * 32, probabilities=True)

    def expected(values, segment):  # segment 1 is class 1 ("mid"), 2 is "high": one-hot, so 0 or 255
        return ((np.digitize(values, [LIMIT * 0.4, LIMIT * 0.7]) == segment) * LEVELS).astype(np.uint8)

    seg = hd.seg.segread(out)
    assert seg.SegmentationType == "FRACTIONAL" and int(seg.MaximumFractionalValue) == LEVELS
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["mid", "high"]
    assert check_seg_frames(out, paths, expected) > 0
    assert dciodvfy_errors(out) == []


def test_fractional_seg_keeps_probabilities(tmp_path, series):
    folder, paths = series
    volume = load_volume(folder, axis="sagittal")
    out = write_seg(tmp_path / "seg.dcm", volume, threshold_map(volume), "unet", "", probabilities=True)
    assert check_seg_frames(out, paths, lambda values, segment: np.rint(probability(values) * LEVELS).astype(np.uint8)) > 0
    stored = pydicom.dcmread(out)
    assert stored.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "unknown"


def report_groups(path: Path):
    """The SR's measurement groups, parsed back by highdicom."""
    sr = hd.sr.srread(path)
    return hd.sr.MeasurementReport.from_sequence([sr]).get_image_measurement_groups()


def sr_measurements(path: Path) -> dict[str, list[tuple[str, str, float, str]]]:
    """Tracking identifier → its measurements as (concept, referenced SOP instance, value, unit)."""
    found: dict[str, list] = {}
    for group in report_groups(path):
        for m in group.get_measurements():
            images = m.referenced_images
            uid = str(images[0].referenced_sop_instance_uid) if images else ""
            found.setdefault(str(group.tracking_identifier), []).append((m.name.meaning, uid, float(m.value), m.unit.value))
    return found


def sr_labels(path: Path) -> dict[str, str]:
    """Tracking identifier → the reader's label (the qualitative evaluation's value)."""
    out = {}
    for group in report_groups(path):
        for evaluation in group.get_qualitative_evaluations(name=LABEL_CONCEPT):
            out[str(group.tracking_identifier)] = evaluation.value.meaning
    return out


def slice_uids(paths: list[Path], ras_axis: int) -> list[str]:
    """The series' SOP instances in display order, computed here: every display depth runs
    toward increasing RAS (I→S, P→A, L→R), so sort by the RAS coordinate of each position."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    headers.sort(key=lambda ds: float(np.array(ds.ImagePositionPatient, float)[ras_axis] * (1 if ras_axis == 2 else -1)))
    return [str(ds.SOPInstanceUID) for ds in headers]


def test_sr_of_a_classifier_run_holds_each_slice_score_with_its_image(tmp_path, series):
    folder, paths = series
    volume = load_volume(folder)
    scores = probability(volume.data[..., 0].numpy()).mean(axis=(1, 2))[:, None]
    scores[2, 0] = np.nan  # a slice with NaN voxels: no measurement
    prediction = Prediction(scores, np.array([0.61]), "slice", "/models/tiny.keras", "ef" * 32, "none", "CPU", 4)
    labels = {0: Label("1", "alice", "2026-03-01T10:00:00+00:00"), 3: Label("?", "alice", "2026-03-01T10:01:00+00:00")}
    out = write_sr(tmp_path / "sr.dcm", volume, prediction, labels)
    assert dciodvfy_errors(out) == []

    found = sr_measurements(out)
    uid_of_slice = slice_uids(paths, volume.depth_world_axis)
    assert "slice 2" not in found
    for d in set(range(volume.depth)) - {2}:
        [(concept, uid, value, unit)] = found[f"slice {d}"]
        assert uid == uid_of_slice[d] and unit == "{score}" and concept.startswith("Score")
        assert value == pytest.approx(float(scores[d, 0]), rel=1e-6)
    [(_, _, value, _)] = found["volume"]
    assert value == pytest.approx(0.61)
    assert sr_labels(out) == {"slice 0": "Present", "slice 3": "Presence Undetermined"}

    report = pydicom.dcmread(out)
    source = pydicom.dcmread(paths[0], stop_before_pixels=True)
    assert report.PatientID == source.PatientID and report.StudyInstanceUID == source.StudyInstanceUID
    evidence = report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.SeriesInstanceUID == source.SeriesInstanceUID and len(evidence.ReferencedSOPSequence) == len(paths)
    text = str(report)
    assert "tiny" in text and "strategy=slice" in text and "ef" * 6 in text and "alice" in text


def test_sr_of_an_area_run_in_mm2_and_ml(tmp_path, series):
    folder, paths = series
    volume = load_volume(folder)
    dense = threshold_map(volume, "softmax")
    voxel_mm2 = volume.spacing[1] * volume.spacing[2]
    areas = dense.masks(slice(None))[..., 1:].sum(axis=(1, 2)).astype(np.float32) * voxel_mm2  # (D, 2): "mid", "high"
    prediction = Prediction(areas, None, "slice", "/models/unet.keras", "12" * 32, "none", "CPU", 4, classes=("mid", "high"))
    prediction.reduce, prediction.unit = "area", "mm²"  # a dense run's fields (segmentation contract)
    out = write_sr(tmp_path / "sr.dcm", volume, prediction)
    assert dciodvfy_errors(out) == []
    found = sr_measurements(out)
    uid_of_slice = slice_uids(paths, volume.depth_world_axis)
    for d in range(volume.depth):
        for k, name in enumerate(("mid", "high")):
            [(concept, uid, value, unit)] = found[f"slice {d} {name}"]
            assert (concept, unit, uid) == ("Area", "mm2", uid_of_slice[d])
            assert value == pytest.approx(float(areas[d, k]), rel=1e-6)
    for k, name in enumerate(("mid", "high")):
        [(concept, _, value, unit)] = found[f"volume {name}"]
        assert (concept, unit) == ("Volume", "ml")
        assert value == pytest.approx(float(dense.masks(slice(None))[..., k + 1].sum()) * np.prod(volume.spacing) / 1000, rel=1e-5)
