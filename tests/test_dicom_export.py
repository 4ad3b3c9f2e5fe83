"""DICOM SEG and TID 1500 SR: written from real series, read back with highdicom and pydicom,
checked against each source file's own pixels, and validated with dciodvfy."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from app.dicom_export.seg import write_seg
from app.dicom_export.sources import NotDicomError, find_sources
from app.dicom_export.sr import LABEL_CONCEPT, write_sr
from app.errors import SlicewiseError
from app.io import load_volume
from app.prediction import Prediction
from app.review.labels import Label
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


def probability(values: np.ndarray, limit: float = LIMIT) -> np.ndarray:
    return np.clip(values / limit, 0.0, 1.0)


def threshold_map(volume, kind: str = "sigmoid", limit: float = LIMIT) -> DenseMap:
    """A real map of the volume: its values over ``limit`` as a probability (sigmoid, one class),
    or three softmax classes by value band (background, "mid", "high")."""
    values = volume.data[..., 0].numpy()
    p = probability(values, limit)
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


def frames_by_source(seg) -> list[tuple[str, int, np.ndarray, int]]:
    """Each SEG frame's source SOP instance, segment number, stored pixels ``(rows, cols)`` (the
    raw values: 0/1 for BINARY, 0…255 for FRACTIONAL) and source frame number (1: single-frame)."""
    pixels = pydicom.dcmread(seg.filename).pixel_array if getattr(seg, "filename", None) else seg.pixel_array
    pixels = pixels.reshape(-1, *pixels.shape[-2:])
    shared = seg.SharedFunctionalGroupsSequence[0]
    out = []
    for i, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        source = group.DerivationImageSequence[0].SourceImageSequence[0]
        identification = group.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        frame = int(source.get("ReferencedFrameNumber", 1))
        out.append((str(source.ReferencedSOPInstanceUID), int(identification[0].ReferencedSegmentNumber), pixels[i], frame))
    return out


def own_values(paths: list[Path]):
    """``values(uid, frame)``: the modality values of that frame of that source file, read here."""
    by_uid = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in paths}
    cache: dict[str, np.ndarray] = {}

    def values(uid: str, frame: int) -> np.ndarray:
        if uid not in cache:
            ds = pydicom.dcmread(by_uid[uid])
            cache[uid] = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds).astype(np.float32).reshape(-1, ds.Rows, ds.Columns)
        return cache[uid][frame - 1]

    return values, {uid: pydicom.dcmread(p, stop_before_pixels=True) for uid, p in by_uid.items()}


def check_seg_frames(seg_path: Path, paths: list[Path], expected) -> int:
    """Every frame equals ``expected(values, segment)`` of the source frame it references; the
    frames left out are the empty ones.  Returns the number of frames."""
    seg = hd.seg.segread(seg_path)
    values, headers = own_values(paths)
    seen = set()
    for uid, segment, pixels, frame in frames_by_source(seg):
        assert uid in headers, "every frame references one of the series' images"
        np.testing.assert_array_equal(pixels, expected(values(uid, frame), segment))
        seen.add((uid, frame, segment))
    for uid, ds in headers.items():
        for frame in range(1, int(ds.get("NumberOfFrames", 1) or 1) + 1):
            for segment in range(1, len(seg.SegmentSequence) + 1):
                if (uid, frame, segment) not in seen:
                    assert not expected(values(uid, frame), segment).any(), "only empty frames are left out"
    return len(seen)


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


def test_enhanced_multiframe_source(tmp_path, series):
    """A multi-frame enhanced CT (the series converted by highdicom): frames reference their frame numbers."""
    folder, paths = series
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        [pydicom.dcmread(p) for p in paths], series_instance_uid=hd.UID(), series_number=5, sop_instance_uid=hd.UID(), instance_number=1
    )
    source = tmp_path / "enhanced.dcm"
    enhanced.save_as(source)
    volume = load_volume(source)
    out = write_seg(tmp_path / "seg.dcm", volume, threshold_map(volume), "unet", "ab" * 32)
    assert check_seg_frames(out, [source], lambda values, segment: (probability(values) >= 0.5).astype(np.uint8)) > 0
    assert dciodvfy_errors(out) == []
    sr = write_sr(tmp_path / "sr.dcm", volume, Prediction(np.arange(volume.depth, dtype=np.float32)[:, None], None, "slice", "m", "", "none", "CPU", 1))
    assert dciodvfy_errors(sr) == []
    positions = [np.array(g.PlanePositionSequence[0].ImagePositionPatient, float) for g in enhanced.PerFrameFunctionalGroupsSequence]
    ras = volume.depth_world_axis
    in_display_order = sorted(range(len(positions)), key=lambda f: positions[f][ras] * (1 if ras == 2 else -1))
    for group in report_groups(sr):
        [measurement] = group.get_measurements()
        [image] = measurement.referenced_images
        d = int(measurement.value)  # the score of slice d is d
        assert str(image.referenced_sop_instance_uid) == str(enhanced.SOPInstanceUID)
        assert list(image.referenced_frame_numbers) == [in_display_order[d] + 1]


@pytest.mark.parametrize("name", ["dicomdirtests/98892001/CT5N", "CT_small.dcm"])
def test_pydicom_bundled_series_round_trips(tmp_path, name):
    """A real CT series (five 16×16 slices) and a real single CT image, from pydicom's own files."""
    bundled = Path(get_testdata_file("CT_small.dcm")).parent / name
    source = tmp_path / bundled.name
    (shutil.copytree if bundled.is_dir() else shutil.copy)(bundled, source)
    paths = sorted(source.iterdir()) if source.is_dir() else [source]
    volume = load_volume(source)
    values = volume.data[..., 0].numpy()
    limit = 2 * float(np.median(values))  # half the voxels at or above 0.5
    out = write_seg(tmp_path / "seg.dcm", volume, threshold_map(volume, limit=limit), "unet", "ab" * 32)
    assert check_seg_frames(out, paths, lambda v, segment: (probability(v, limit) >= 0.5).astype(np.uint8)) > 0
    assert dciodvfy_errors(out) == []
    scores = probability(values, limit).mean(axis=(1, 2))[:, None]
    sr = write_sr(tmp_path / "sr.dcm", volume, Prediction(scores, None, "slice", "m", "ab" * 32, "none", "CPU", 1))
    assert dciodvfy_errors(sr) == []
    found = sr_measurements(sr)
    uids = slice_uids(paths, volume.depth_world_axis)
    assert [found[f"slice {d}"][0][1:3] for d in range(volume.depth)] == [(uids[d], pytest.approx(float(scores[d, 0]), rel=1e-6)) for d in range(volume.depth)]
    original = pydicom.dcmread(paths[0], stop_before_pixels=True)
    for written in (pydicom.dcmread(out), pydicom.dcmread(sr)):
        assert (written.PatientName, written.PatientID, written.StudyInstanceUID) == (original.PatientName, original.PatientID, original.StudyInstanceUID)


def test_legacy_multiframe_without_functional_groups_is_refused_for_seg(tmp_path):
    volume = load_volume(get_testdata_file("rtdose.dcm"))
    with pytest.raises(SlicewiseError, match="without functional groups.*--mask-out"):
        write_seg(tmp_path / "seg.dcm", volume, threshold_map(volume), "unet", "")
    assert not list(tmp_path.iterdir())


def test_sources_that_are_not_dicom_or_changed_are_refused(tmp_path, series):
    folder, paths = series
    np.save(tmp_path / "v.npy", np.zeros((3, 4, 5), np.float32))
    with pytest.raises(NotDicomError, match="--mask-out.*--out"):
        find_sources(load_volume(tmp_path / "v.npy"))
    volume = load_volume(folder)
    paths[0].unlink()  # the folder changed since the volume was read
    with pytest.raises(SlicewiseError, match="no DICOM series there matches the loaded volume"):
        find_sources(volume)


def tiny_classifier(path: Path, shape: tuple[int, int]) -> Path:
    """A Keras model whose score follows each slice's mean value (so slices differ)."""
    import keras
    from keras import layers

    inputs = keras.Input((*shape, 1))
    outputs = layers.Dense(1, activation="sigmoid")(layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.full((1, 1), 0.02, np.float32), np.array([-10.0], np.float32)])
    model.save(path)
    return path


def test_cli_sr_numbers_equal_the_csv_and_seg_needs_a_dense_run(tmp_path, series, capsys):
    from app.cli import main

    folder, paths = series
    model = tiny_classifier(tmp_path / "tiny.keras", (9, 11))
    labels = tmp_path / "labels.csv"
    labels.write_text("slice_index,label\n1,1\n4,0\n")
    table, report = tmp_path / "scores.csv", tmp_path / "sr.dcm"
    assert main(["predict", str(folder), "--model", str(model), "--out", str(table), "--sr-out", str(report), "--labels", str(labels)]) == 0
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    found = sr_measurements(report)
    volume = load_volume(folder)
    uids = slice_uids(paths, volume.depth_world_axis)
    scores = [float(r["score"]) for r in rows]
    assert len(set(scores)) > 1, "the slices score differently"
    for row in rows:
        [(_, uid, value, _)] = found[f"slice {row['slice_index']}"]
        assert uid == uids[int(row["slice_index"])] and value == pytest.approx(float(row["score"]), rel=1e-6)
    assert sr_labels(report) == {"slice 1": "Present", "slice 4": "Absent"}
    assert dciodvfy_errors(report) == []

    capsys.readouterr()
    seg = tmp_path / "seg.dcm"
    assert main(["predict", str(folder), "--model", str(model), "--seg-out", str(seg), "--sr-out", str(tmp_path / "sr2.dcm")]) == 2
    assert "--seg-out needs a segmentation run" in capsys.readouterr().err
    assert not seg.exists() and not (tmp_path / "sr2.dcm").exists()


def nib_data() -> Path:
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data"


@pytest.mark.gui
def test_gui_exports_a_seg_only_for_a_dicom_source_with_a_dense_run(window, qtbot, tmp_path, series):
    from tests.ui_helpers import open_volume

    folder, paths = series
    volume = open_volume(qtbot, window, folder)
    action = window.actions_by_name["export_seg"]
    session = window.session
    classifier = Prediction(np.zeros((volume.depth, 1), np.float32), None, "slice", "m", "", "none", "CPU", 1)
    session.finish_run(session.begin_run(job=1), classifier)
    assert not action.isEnabled(), "a classifier run has no map to write"
    dense_run = Prediction(np.zeros((volume.depth, 1), np.float32), None, "slice", "/models/unet.keras", "ab" * 32, "minmax", "CPU", 1)
    dense_run.dense = threshold_map(volume)  # the segmentation contract's field
    session.finish_run(session.begin_run(job=2), dense_run)
    assert action.isEnabled()
    menu = window.menuBar().actions()[0].menu()
    menu.popup(window.mapToGlobal(window.rect().topLeft()))
    qtbot.waitUntil(menu.isVisible)
    menu.grab().save(str(tmp_path / "file_menu.png"))  # looked at: the entry sits under Export plot…
    menu.hide()
    out = window.export_seg(tmp_path / "gui_seg.dcm")
    assert check_seg_frames(out, paths, lambda values, segment: (probability(values) >= 0.5).astype(np.uint8)) > 0
    assert hd.seg.segread(out).SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "unet"
    assert window.errors == []

    np.save(tmp_path / "v.npy", volume.data[..., 0].numpy())
    other = open_volume(qtbot, window, tmp_path / "v.npy")
    not_dicom = Prediction(np.zeros((other.depth, 1), np.float32), None, "slice", "m", "", "none", "CPU", 1)
    not_dicom.dense = threshold_map(other)
    session.finish_run(session.begin_run(job=3), not_dicom)
    assert not action.isEnabled(), "a volume not read from DICOM has no images to reference"


def test_cli_writes_the_seg_from_the_runs_dense_map(tmp_path, series):
    """The CLI's hand-over: `Prediction.dense` (the segmentation contract) feeds --seg-out."""
    import argparse

    from app.cli import _dicom_sources, _write_dicom

    folder, paths = series
    volume = load_volume(folder)
    prediction = Prediction(np.zeros((volume.depth, 1), np.float32), None, "slice", "/models/unet.keras", "ab" * 32, "none", "CPU", 1)
    prediction.dense = threshold_map(volume)
    args = argparse.Namespace(seg_out=str(tmp_path / "seg.dcm"), sr_out=str(tmp_path / "sr.dcm"), mask_probabilities=True)
    _write_dicom(volume, prediction, _dicom_sources(volume, args), None, args)
    assert check_seg_frames(tmp_path / "seg.dcm", paths, lambda values, segment: np.rint(probability(values) * LEVELS).astype(np.uint8)) > 0
    assert hd.seg.segread(tmp_path / "seg.dcm").SegmentationType == "FRACTIONAL"
    assert dciodvfy_errors(tmp_path / "seg.dcm") == [] and dciodvfy_errors(tmp_path / "sr.dcm") == []


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda folder, nifti, out: [str(nifti), "--seg-out", str(out / "seg.dcm")], "is not DICOM: write the mask with --mask-out"),
        (lambda folder, nifti, out: [str(nifti), "--sr-out", str(out / "sr.dcm")], "needs a DICOM source"),
        (lambda folder, nifti, out: [str(folder), "--axis", "axial", "--sr-out", str(out / "sr.dcm")], "use --axis acquired"),
        (lambda folder, nifti, out: [str(folder), str(folder), "--sr-out", str(out / "sr.dcm")], "one volume and one run"),
        (lambda folder, nifti, out: [str(folder), "--seg-out", str(out / "no" / "seg.dcm")], "does not exist"),
    ],
)
def test_cli_refuses_before_scoring(tmp_path, series, capsys, make_args, message):
    """Refused with exit 2 and nothing written, before any model loads: the model named does not exist."""
    from app.cli import main

    folder, _ = series
    out = tmp_path / "out"
    out.mkdir()
    nifti = nib_data() / "anatomical.nii"
    code = main(["predict", *make_args(folder, nifti, out), "--model", str(out / "missing.keras"), "--out", str(out / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "missing.keras" not in err, err
    assert list(out.iterdir()) == []
