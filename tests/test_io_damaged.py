"""Damaged and hostile compressed DICOM: every file of a corpus made here from pydicom's own JPEG,
JPEG-LS, JPEG 2000 and RLE files (tests/damaged_dicom.py) ends in one `LoadError` line naming it,
never a crash, a hang, a traceback or a memory bomb; the decoder children's crashes, hangs and
excesses (made on purpose through the pool's test hook) are named; a damaged file of a series
refuses the series, or is skipped with ``skip_damaged``.

The decoder pool is the process's own (`decode_pool.get_pool`): started once for the session.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.encaps import encapsulate, generate_frames

from app.errors import LoadError
from app.io import decode_pool, load_volume
from app.io.codestream import CodestreamError, Expected, check_frame
from app.io.messages import DamagedSeriesError
from tests.damaged_dicom import BASES, base_path, write_damaged, write_damaged_series

GIB = 1024**3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_damaged(tmp_path_factory.mktemp("damaged"))


def must_fail(name: str, kind: str) -> bool:
    """Whether the case must be refused: flipped entropy-coded bits can still decode (to other
    pixels), and BitsStored below a JPEG 2000's precision, or an RLE frame's size, is not in its
    codestream to compare."""
    if kind == "flip":
        return False
    if kind == "header":
        return not name.endswith("BitsStored") and not name.startswith("rle")
    return True


def outcome(path: Path) -> str:
    """Load ``path``: "volume", or "LoadError" with a one-line message naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            volume = load_volume(path)
    except LoadError as exc:
        message = str(exc)
        assert message.startswith(f"{path.name}: "), message
        assert "\n" not in message and len(message) < 400 and "Traceback" not in message, message
        return "LoadError"
    assert volume.data.ndim == 4 and np.isfinite(volume.data.numpy()).all()
    return "volume"


def test_every_damaged_file_is_one_line_or_a_volume(corpus):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    refused = []
    for name, (path, kind) in corpus.items():
        got = outcome(path)
        if must_fail(name, kind):
            assert got == "LoadError", name
        refused.append(got == "LoadError")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 2 * GIB, f"the loads grew this process by {grown / GIB:.1f} GiB"
    assert sum(refused) >= 0.8 * len(corpus), f"{sum(refused)} of {len(corpus)} refused"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("jpeg_ls_Rows", "frame 1: the JPEG-LS codestream holds 64 x 64 pixels, but the header says 128 x 64 (Rows, Columns)"),
        ("j2k_bomb1x2000000000", "frame 1: the JPEG 2000 codestream holds 1 x 2000000000 pixels, but the header says 64 x 64 (Rows, Columns)"),
        ("jpeg_baseline_SamplesPerPixel", "frame 1: the JPEG codestream holds 3 samples per pixel, but the header says 1 (SamplesPerPixel)"),
        ("jpeg_ls_cut1476", "cannot decode JPEG-LS pixel data (frame 1): the JPEG-LS codestream is cut short"),
        ("j2k_rgb_cut9970", "cannot decode JPEG 2000 pixel data (frame 1): damaged JP2 box b'jp2c' (28261 bytes at byte 1650, 8320 left)"),
        ("rle_cut16", "cannot decode RLE pixel data (frame 1): the data is damaged (RLE frame of 16 bytes is shorter than its 64-byte header)"),
        ("jpeg_ls_bomb65535x65535_header_too", "too large to open: 1×65535×65535×1 voxels need"),
        ("rle_2frame_NumberOfFrames", "frame 3: the pixel data ends before this frame, but the header says 5 frames (NumberOfFrames)"),
    ],
)
def test_messages_name_the_frame_and_both_values(corpus, case, expected):
    path, _ = corpus[case]
    with pytest.raises(LoadError) as info:
        load_volume(path)
    assert str(info.value).startswith(f"{path.name}: {expected}"), str(info.value)


def test_damaged_jpeg_ls_is_called_damaged_not_a_missing_decoder(corpus):
    for case in ("jpeg_ls_flip0", "jpeg_ls_cut16", "jpeg_ls_near_flip1"):
        with pytest.raises(LoadError) as info:
            load_volume(corpus[case][0])
        assert "gpl-jpeg" not in str(info.value) and "damaged" in str(info.value), str(info.value)


def test_a_jp2_box_of_length_zero_is_refused_by_the_bounded_parser(tmp_path):
    """A JP2 box length of 0 before the codestream box makes pydicom's ``get_j2k_parameters`` loop
    forever; the header check refuses it first, at once."""
    ds = pydicom.dcmread(base_path(BASES["j2k_rgb"]))
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    assert frame[16:20] == b"ftyp"
    frame[12:16] = b"\0\0\0\0"  # the file-type box: "to the end of the file"
    ds.PixelData = encapsulate([bytes(frame)])
    ds.save_as(tmp_path / "box0.dcm")
    with pytest.raises(LoadError, match=r"^box0\.dcm: cannot decode JPEG 2000 pixel data \(frame 1\): the data is damaged \(no codestream box \(jp2c\) in the JP2 file\)$"):
        load_volume(tmp_path / "box0.dcm")


def test_rust_panic_is_caught_in_the_child(corpus):
    """pylibjpeg-rle panics (a BaseException) on a frame narrower than its header says."""
    with pytest.raises(LoadError, match=r"^rle_Columns\.dcm: cannot decode RLE pixel data \(frame 1\): the data is damaged"):
        load_volume(corpus["rle_Columns"][0])


# -- the children misbehaving on purpose ---------------------------------------------------------


@pytest.fixture
def pool(monkeypatch):
    """The session's pool with a short time limit; the hook is cleared afterwards."""
    shared = decode_pool.get_pool()
    monkeypatch.setattr(shared, "time_limit", 2.0)
    yield shared
    shared.hook = None


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        ("segv", r"the RLE decoder crashed on frame 1 \(signal 11\): the file is damaged"),
        ("abort", r"the RLE decoder crashed on frame 1 \(signal 6\): the file is damaged"),
        ("sleep", r"the RLE decoder hung on frame 1 \(no result after 2 s\): the file is damaged"),
        ("alloc", r"the RLE decoder went past its memory limit \(\d+\.\d GiB\) on frame 1: the file is damaged"),
        ("panic", r"cannot decode RLE pixel data \(frame 1\): the data is damaged \(PanicException: index out of bounds\)"),
    ],
)
def test_a_child_that_crashes_hangs_or_overreaches_is_an_error_and_replaced(pool, hook, expected):
    path = base_path(BASES["rle"])
    pool.hook = hook
    with pytest.raises(LoadError, match=rf"^{path.name}: {expected}$"):
        load_volume(path)
    pool.hook = None
    assert load_volume(path).depth == 1  # a fresh child took its place


def test_the_crashing_frame_of_a_multiframe_file_is_named(pool):
    path = base_path(BASES["rle_2frame"])
    pool.hook = "segv@1"
    with pytest.raises(LoadError, match=r"the RLE decoder crashed on frame 2 \(signal 11\)"):
        load_volume(path)


def test_a_crash_in_a_real_process_is_exit_2_without_traceback(tmp_path, corpus):
    env = {**os.environ, "SLICEWISE_DECODE_TEST_HOOK": "segv"}
    path = base_path(BASES["j2k"])
    cases = (
        (path, env, "the JPEG 2000 decoder crashed on frame 1 (signal 11): the file is damaged"),
        (corpus["jpeg_ls_Rows"][0], os.environ, "frame 1: the JPEG-LS codestream holds 64 x 64 pixels, but the header says 128 x 64 (Rows, Columns)"),
    )
    for target, environment, reason in cases:
        done = subprocess.run(
            [sys.executable, "-m", "app", "predict", str(target), "--out", str(tmp_path / "s.csv")],
            capture_output=True, text=True, timeout=300, env=environment,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1] == f"error: {target.name}: {reason}", done.stderr
    assert not (tmp_path / "s.csv").exists()


# -- series ----------------------------------------------------------------------------------------


@pytest.fixture
def compressed_series(tmp_path) -> tuple[Path, list[Path]]:
    return write_damaged_series(tmp_path / "series")


def test_a_damaged_file_refuses_its_series_by_name(compressed_series):
    folder, paths = compressed_series
    with pytest.raises(DamagedSeriesError, match=rf"^series/{paths[3].name}: cannot decode JPEG 2000 pixel data \(frame 1\): .*--skip-damaged loads the others"):
        load_volume(folder)


def test_skip_damaged_loads_the_others_at_their_true_positions(compressed_series):
    folder, paths = compressed_series
    volume = load_volume(folder, skip_damaged=True)
    assert volume.depth == 5
    assert any(f"skipped 1 damaged files ({paths[3].name})" in w for w in volume.warnings), volume.warnings
    assert any("not evenly spaced" in w for w in volume.warnings), volume.warnings
    kept = [p for k, p in enumerate(paths) if k != 3]
    for k, path in enumerate(kept):
        ds = pydicom.dcmread(path)
        expected = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        np.testing.assert_array_equal(np.sort(volume.data.numpy()[k].ravel()), np.sort(expected.ravel()))
    z = sorted(float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in kept)
    np.testing.assert_allclose(sorted(volume.positions_mm), z, atol=1e-6)


def test_skip_damaged_from_the_cli(compressed_series, tmp_path, capsys):
    from app.cli import main

    folder, paths = compressed_series
    out = tmp_path / "scores.csv"
    assert main(["predict", str(folder), "--out", str(out)]) == 2
    assert "--skip-damaged loads the others" in capsys.readouterr().err
    assert main(["predict", str(folder), "--skip-damaged", "--out", str(out), "--strategy", "slice"]) == 0
    err = capsys.readouterr().err
    assert f"skipped 1 damaged files ({paths[3].name})" in err and "not evenly spaced" in err
    assert len(out.read_text().splitlines()) == 6  # the header and five slices


# -- the header check alone, and Hypothesis on top -----------------------------------------------


def test_check_frame_accepts_every_frame_pydicom_ships():
    for name in BASES.values():
        ds = pydicom.dcmread(base_path(name))
        expected = Expected(ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored)
        codec = decode_pool.codec_of(ds.file_meta.TransferSyntaxUID)
        for frame in generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)):
            check_frame(codec, frame, expected)


FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(base=st.sampled_from(["jpeg_ls", "j2k", "j2k_rgb", "jpeg_baseline"]), edits=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), min_size=1, max_size=6))
def test_header_check_never_hangs_or_raises_anything_else(base, edits):
    ds = pydicom.dcmread(base_path(BASES[base]))
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    for at, value in edits:
        frame[at % len(frame)] = value
    expected = Expected(ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored)
    try:
        check_frame(decode_pool.codec_of(ds.file_meta.TransferSyntaxUID), bytes(frame), expected)
    except CodestreamError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(["jpeg_ls", "j2k", "rle", "jpeg_lossless"]), edits=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_files_load_or_fail_in_one_line(tmp_path_factory, base, edits):
    ds = pydicom.dcmread(base_path(BASES[base]))
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    for at, value in edits:
        frame[at % len(frame)] = value
    ds.PixelData = encapsulate([bytes(frame) + b"\0" * (len(frame) % 2)])
    path = tmp_path_factory.mktemp("hyp") / f"{base}.dcm"
    ds.save_as(path)
    outcome(path)
    shutil.rmtree(path.parent)


def test_the_decoder_child_stays_light():
    """A child imports pydicom, numpy and the decoders: no torch, TensorFlow or Qt to start."""
    code = "import sys, app.io.decode_child as c; c._preload(); print(sorted({'torch', 'tensorflow', 'keras', 'PySide6'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout
