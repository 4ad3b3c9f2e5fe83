"""DICOM through `load_volume`: series written here from known arrays and geometry (shuffled
files and InstanceNumbers), multi-frame files, and the real files pydicom ships."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedCTImageStorage, generate_uid

from app.errors import LoadError
from app.io import load_volume
from app.volume import AXES
from tests.dicom_writer import IOPS, base_dataset, write_series

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SERIES_DIRS = TEST_FILES / "dicomdirtests"
LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def pydicom_file(name: str) -> Path:
    found = pydicom.data.get_testdata_file(name, download=False)
    if found is None:
        pytest.skip(f"{name} is not available offline")
    return Path(found)


def coded_volume(k: int = 5, rows: int = 6, cols: int = 7) -> np.ndarray:
    """Each voxel's value encodes its (slice, row, column): 100*k + 10*r + c."""
    kk, rr, cc = np.meshgrid(np.arange(k), np.arange(rows), np.arange(cols), indexing="ij")
    return (100 * kk + 10 * rr + cc).astype(np.int16)


def check_world_positions(volume, positions, iop, spacing) -> None:
    """Every voxel sits where DICOM puts the pixel its value came from (LPS → RAS)."""
    row, col = np.array(iop[:3]), np.array(iop[3:])
    data = volume.data.numpy()[..., 0]
    for d, h, w in np.ndindex(*data.shape):
        code = int(round(data[d, h, w]))
        k, r, c = code // 100, (code // 10) % 10, code % 10
        lps = positions[k] + c * spacing[1] * row + r * spacing[0] * col
        np.testing.assert_allclose(volume.world(d, h, w), lps * LPS_TO_RAS, atol=1e-3)




@pytest.mark.parametrize("acquisition", list(IOPS))
@pytest.mark.parametrize("axis", AXES)
def test_series_order_and_geometry_from_positions(tmp_path, acquisition, axis):
    iop, spacing = IOPS[acquisition], (0.5, 0.75)
    paths, positions = write_series(tmp_path / "series", coded_volume(), iop, [-20.0, 30.0, 40.0], spacing)
    volume = load_volume(tmp_path / "series", axis=axis)
    assert volume.shape[3] == 1 and volume.original_dtype == "int16"
    assert sorted(volume.shape[:3]) == [5, 6, 7]
    check_world_positions(volume, positions, iop, spacing)
    assert np.all(np.diff(volume.positions_mm) > 0)
    assert volume.sha256 == hashlib.sha256(b"".join(p.read_bytes() for p in sorted(paths))).hexdigest()


def test_axial_series_layout_is_explicit(tmp_path):
    """Standard axial CT: depth = slices inferior→superior, columns mirrored (patient left on the left)."""
    stack = coded_volume()
    # written with the origin at the top: slice k sits at z = 40 - 2.5 k (inferior as k grows)
    positions = [np.array([-20.0, 30.0, 40.0 - 2.5 * k]) for k in range(len(stack))]
    write_series(tmp_path / "ct", stack, IOPS["axial"], [0, 0, 0], positions=positions)
    volume = load_volume(tmp_path / "ct")
    expected = stack[::-1, :, ::-1].astype(np.float32)
    np.testing.assert_array_equal(volume.data.numpy()[..., 0], expected)
    np.testing.assert_allclose(volume.positions_mm, 40.0 - 2.5 * np.arange(5)[::-1], atol=1e-4)
    np.testing.assert_allclose(volume.spacing, (2.5, 0.5, 0.75), atol=1e-6)
    assert volume.orientation == ("S", "P", "R")


def test_rescale_slope_and_intercept(tmp_path):
    stack = coded_volume()
    write_series(tmp_path / "hu", stack, IOPS["axial"], [0.0, 0.0, 0.0], slope=2.0, intercept=-1024.0)
    volume = load_volume(tmp_path / "hu")
    assert volume.data.dtype.is_floating_point and str(volume.data.dtype) == "torch.float32"
    np.testing.assert_array_equal(volume.data.numpy()[..., 0], stack[:, :, ::-1] * 2.0 - 1024.0)


def test_folder_with_several_series_loads_the_largest(tmp_path):
    folder = tmp_path / "mixed"
    big, _ = write_series(folder, coded_volume(6), IOPS["axial"], [0, 0, 0], number=3, seed=1)
    write_series(folder, coded_volume(3), IOPS["coronal"], [0, 0, 0], number=7, seed=2)
    write_series(folder, coded_volume(2), IOPS["sagittal"], [0, 0, 0], number=9, seed=3)
    (folder / "README.txt").write_text("not dicom")
    volume = load_volume(folder)
    assert volume.depth == 6
    note = next(n for n in volume.notes if "also holds" in n)
    assert '7 "series 7" (3 slices)' in note and '9 "series 9" (2 slices)' in note
    assert any("skipped 1" in n for n in volume.notes)
    assert volume.sha256 == hashlib.sha256(b"".join(p.read_bytes() for p in sorted(big))).hexdigest()


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("tilted", "orientations differ"),
        ("duplicate", "2 slices share a position with different pixels"),
        ("off_line", "slice positions do not lie on a line"),
    ],
)
def test_inconsistent_series_are_load_errors(tmp_path, problem, message):
    folder = tmp_path / "broken"
    paths, positions = write_series(folder, coded_volume(), IOPS["axial"], [0.0, 0.0, 0.0])
    ds = pydicom.dcmread(paths[2])
    if problem == "tilted":
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.43589]
    elif problem == "duplicate":
        ds.ImagePositionPatient = [float(v) for v in positions[3]]
    else:
        ds.ImagePositionPatient = [4.0, 0.0, float(positions[2][2])]  # 4 mm aside, in the slice's plane
    ds.save_as(paths[2])
    with pytest.raises(LoadError, match=rf"^broken: .*{message}"):
        load_volume(folder)


def gapped_positions() -> list[np.ndarray]:
    """A CT series with one slice missing: 1.25 mm apart, then a 200 mm jump (as in pydicom's CT2)."""
    return [np.array([-20.0, 30.0, z]) for z in (10.0, 11.25, 12.5, 212.5, 213.75)]


@pytest.mark.parametrize("axis", ["acquired", "axial"])
def test_gapped_series_loads_at_true_positions_with_a_warning(tmp_path, axis):
    positions = gapped_positions()
    write_series(tmp_path / "gap", coded_volume(), IOPS["axial"], [0, 0, 0], positions=positions, spacing=(0.5, 0.75))
    volume = load_volume(tmp_path / "gap", axis=axis)
    assert volume.depth == 5 and not volume.uniform_spacing
    np.testing.assert_allclose(volume.positions_mm, [10.0, 11.25, 12.5, 212.5, 213.75], atol=1e-4)
    check_world_positions(volume, positions, IOPS["axial"], (0.5, 0.75))  # every voxel at its true place, in true order
    assert volume.warnings == ("slices are not evenly spaced (1.25 to 200 mm apart; missing slices?): shown at their true positions, without resampling",)
    assert "warning: " + volume.warnings[0] in volume.notes
    np.testing.assert_allclose(volume.spacing[0], 1.25)


def test_gapped_series_across_another_axis_is_said_to_be_shown_evenly(tmp_path):
    write_series(tmp_path / "gap", coded_volume(), IOPS["axial"], [0, 0, 0], positions=gapped_positions())
    volume = load_volume(tmp_path / "gap", axis="sagittal")
    assert volume.uniform_spacing and volume.shape[:3] == (7, 5, 6)
    assert volume.warnings and any("shown evenly spaced" in n for n in volume.notes)


def test_evenly_spaced_series_is_uniform(tmp_path):
    write_series(tmp_path / "even", coded_volume(), IOPS["sagittal"], [0, 0, 0])
    volume = load_volume(tmp_path / "even")
    assert volume.uniform_spacing and volume.warnings == ()


def test_identical_duplicate_slices_are_dropped_with_a_note(tmp_path):
    folder = tmp_path / "twice"
    paths, _ = write_series(folder, coded_volume(), IOPS["axial"], [0.0, 0.0, 0.0])
    (folder / "copy_of_slice_2.dcm").write_bytes(paths[2].read_bytes())
    volume = load_volume(folder)
    assert volume.depth == 5 and volume.uniform_spacing
    assert "dropped 1 duplicate slices (the same position and pixels as a slice kept)" in volume.notes
    np.testing.assert_array_equal(volume.data.numpy(), load_volume(folder, axis="axial").data.numpy())


def assert_acquired_slices(volume, stack: np.ndarray) -> None:
    """Each displayed slice is one acquired image, whole (the coded values say which), in order."""
    assert volume.depth == len(stack) and volume.shape[1:3] == stack.shape[1:]
    images = []
    for d in range(volume.depth):
        codes = np.rint(volume.data.numpy()[d, ..., 0]).astype(int)
        k = int(codes.flat[0]) // 100
        assert np.all(codes // 100 == k), f"slice {d} mixes acquired images"
        assert sorted(codes.ravel()) == sorted(stack[k].ravel())
        images.append(k)
    assert images in (sorted(images), sorted(images, reverse=True))


@pytest.mark.parametrize(("acquisition", "resolved"), [("sagittal", "sagittal"), ("coronal", "coronal"), ("oblique", "coronal")])
def test_acquired_axis_is_the_series_own(tmp_path, acquisition, resolved):
    stack = coded_volume(5, 6, 7)
    write_series(tmp_path / acquisition, stack, IOPS[acquisition], [-20.0, 30.0, 40.0])
    volume = load_volume(tmp_path / acquisition)  # axis="acquired" is the default
    assert (volume.axis, volume.axis_source, volume.axis_label) == (resolved, "acquired", f"acquired ({resolved})")
    assert_acquired_slices(volume, stack)
    chosen = load_volume(tmp_path / acquisition, axis="axial")
    assert (chosen.axis, chosen.axis_label) == ("axial", "axial") and chosen.depth != 5


def test_single_oblique_sagittal_image_is_one_slice(tmp_path):
    image = coded_volume(1, 9, 8)
    tilted_sagittal = [0, 0.98480775, 0.17364818, 0, 0.17364818, -0.98480775]  # sagittal, turned 10° about x
    paths, _ = write_series(tmp_path / "one", image, tilted_sagittal, [0, 0, 0])
    volume = load_volume(paths[0])
    assert volume.axis_label == "acquired (sagittal)" and volume.shape == (1, 9, 8, 1)
    assert_acquired_slices(volume, image)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(LoadError, match=r"no DICOM images in this folder"):
        load_volume(tmp_path)


def test_series_in_subfolders(tmp_path):
    write_series(tmp_path / "study" / "SE1", coded_volume(4), IOPS["axial"], [0.0, 0.0, 0.0])
    volume = load_volume(tmp_path / "study")
    assert volume.depth == 4 and any("subfolders" in n for n in volume.notes)


def test_enhanced_multiframe_uses_per_frame_positions(tmp_path):
    stack = coded_volume(4)
    order = [2, 0, 3, 1]  # frame f holds slice order[f]
    iop, spacing = IOPS["coronal"], (0.5, 0.75)
    normal = np.cross(iop[:3], iop[3:])
    path = tmp_path / "enhanced.dcm"
    ds = base_dataset(path, EnhancedCTImageStorage)
    ds.SeriesInstanceUID, ds.NumberOfFrames = generate_uid(), len(order)
    ds.Rows, ds.Columns = stack.shape[1:]
    shared = Dataset()
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = iop
    measures.PixelSpacing, measures.SliceThickness = list(spacing), 3.0
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = Sequence([orientation]), Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    positions = [np.array([5.0, -7.0, 11.0]) + 3.0 * k * normal for k in range(len(order))]
    for k in order:
        group, position, rescale = Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [float(v) for v in positions[k]]
        rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 1.0, 0.0, "HU"
        group.PlanePositionSequence, group.PixelValueTransformationSequence = Sequence([position]), Sequence([rescale])
        frames.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = np.ascontiguousarray(stack[order], dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    for axis in AXES:
        volume = load_volume(path, axis=axis)
        check_world_positions(volume, positions, iop, spacing)
    volume = load_volume(path, axis="coronal")
    assert volume.depth == 4 and np.all(np.diff(volume.positions_mm) > 0)
    folder = tmp_path / "only_one_file"
    folder.mkdir()
    (folder / "frames.dcm").write_bytes(path.read_bytes())
    np.testing.assert_array_equal(load_volume(folder, axis="coronal").data.numpy(), volume.data.numpy())


def test_enhanced_multiframe_per_frame_rescale(tmp_path):
    stack = coded_volume(2)
    path = tmp_path / "rescaled.dcm"
    ds = base_dataset(path, EnhancedCTImageStorage)
    ds.NumberOfFrames, (ds.Rows, ds.Columns) = 2, stack.shape[1:]
    groups = []
    for k, (slope, intercept) in enumerate([(2.0, -5.0), (0.5, 100.0)]):
        group, position, orientation, rescale = Dataset(), Dataset(), Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, float(k)]
        orientation.ImageOrientationPatient = IOPS["axial"]
        rescale.RescaleSlope, rescale.RescaleIntercept = slope, intercept
        group.PlanePositionSequence = Sequence([position])
        group.PlaneOrientationSequence = Sequence([orientation])
        group.PixelValueTransformationSequence = Sequence([rescale])
        groups.append(group)
    ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    ds.PixelData = np.ascontiguousarray(stack, dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    data = load_volume(path).data.numpy()[..., 0]
    np.testing.assert_array_equal(data[0], stack[0, :, ::-1] * 2.0 - 5.0)
    np.testing.assert_array_equal(data[1], stack[1, :, ::-1] * 0.5 + 100.0)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_real_single_slice(name):
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    volume = load_volume(path)
    expected = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)[:, ::-1]  # LPS columns → left on the left
    assert volume.shape == (1, ds.Rows, ds.Columns, 1) and volume.n_volumes == 1
    np.testing.assert_array_equal(volume.data.numpy()[0, ..., 0], expected)
    assert volume.original_dtype == "int16"
    assert volume.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_allclose(volume.spacing[1:], [float(s) for s in ds.PixelSpacing])
    corner = np.array([float(v) for v in ds.ImagePositionPatient]) * LPS_TO_RAS
    np.testing.assert_allclose(volume.world(0, 0, ds.Columns - 1), corner, atol=1e-4)
    for axis in ("coronal", "sagittal"):
        assert load_volume(path, axis=axis).data.numel() == ds.Rows * ds.Columns


def test_real_multiframe_rt_dose_uses_grid_offsets():
    path = pydicom_file("rtdose.dcm")
    ds = pydicom.dcmread(path)
    volume = load_volume(path)
    assert volume.shape == (15, 10, 10, 1)
    offsets = np.asarray(ds.GridFrameOffsetVector, dtype=float)
    np.testing.assert_allclose(volume.positions_mm, float(ds.ImagePositionPatient[2]) + np.sort(offsets - offsets[0]), atol=1e-4)
    expected = ds.pixel_array.astype(np.float32) * np.float32(ds.DoseGridScaling)
    np.testing.assert_allclose(volume.data.numpy()[..., 0], expected[:, :, ::-1], rtol=1e-6)


def test_real_multiframe_rgb_without_geometry_is_shown_as_stored():
    path = pydicom_file("SC_rgb_rle_2frame.dcm")
    volume = load_volume(path)
    assert volume.shape == (2, 100, 100, 3) and volume.original_dtype == "uint8"
    np.testing.assert_array_equal(volume.data.numpy(), pydicom.dcmread(path).pixel_array.astype(np.float32))
    assert any("no patient geometry" in n for n in volume.notes)


def test_emri_multiframe_if_available():
    path = pydicom_file("emri_small.dcm")
    volume = load_volume(path)
    assert volume.depth == int(pydicom.dcmread(path).NumberOfFrames)


def test_real_series_folder_is_sorted_by_position_not_instance_number():
    folder = SERIES_DIRS / "98892001" / "CT5N"  # InstanceNumber grows as z falls
    volume = load_volume(folder)
    assert volume.shape == (5, 16, 16, 1)
    positions = sorted(float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in folder.iterdir())
    np.testing.assert_allclose(volume.positions_mm, positions, atol=1e-4)
    first = min(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    ds = pydicom.dcmread(first)
    np.testing.assert_array_equal(volume.data.numpy()[0, :, :, 0], apply_modality_lut(ds.pixel_array, ds)[:, ::-1])


def test_real_series_with_a_missing_stretch_loads_with_a_warning():
    folder = SERIES_DIRS / "77654033" / "CT2"  # 1.25 mm apart, then a jump of about 200 mm
    volume = load_volume(folder)
    positions = sorted(float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in folder.iterdir())
    np.testing.assert_allclose(volume.positions_mm, positions, atol=1e-4)
    assert volume.depth == 4 and not volume.uniform_spacing and "missing slices?" in volume.warnings[0]
    first = min(folder.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    ds = pydicom.dcmread(first)
    np.testing.assert_array_equal(volume.data.numpy()[0, :, :, 0], apply_modality_lut(ds.pixel_array, ds)[:, ::-1])


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("98892003/MR700", "orientations differ"),
        ("DICOMDIR", "DICOMDIR index"),
    ],
)
def test_real_inconsistent_inputs(relative, message):
    with pytest.raises(LoadError, match=message):
        load_volume(SERIES_DIRS / relative)


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "rtplan.dcm"])
def test_real_unusable_files(name):
    with pytest.raises(LoadError, match=rf"^{name.replace('.', '[.]')}: "):
        load_volume(pydicom_file(name))
