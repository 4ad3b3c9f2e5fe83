"""The bad-input corpus (tests/bad_inputs.py) through `slicewise predict`: every broken or hostile
file ends in exit code 2 and one line ``error: <file>: <reason>``, no output file, no payload run;
NaN/Inf voxels load, are scored elsewhere, and are reported; a series with a missing slice loads
at its true positions, with a warning."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys

import pytest

from app.cli import main
from tests.bad_inputs import EXPECTED, MARKER, MISSING_SLICE_POSITIONS, NAMED_AS, NAN_SLICES, write_corpus

FAILING = sorted(item for item, reason in EXPECTED.items() if reason is not None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


def predict(capsys, *args) -> tuple[int, list[str]]:
    """Run the CLI in this process; its exit code and its stderr lines."""
    code = main(["predict", *map(str, args)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("item", FAILING)
def test_each_bad_file_exit_2_one_line_naming_file_and_reason(corpus, capsys, tmp_path, item):
    folder, paths = corpus
    out = tmp_path / "scores.csv"
    code, lines = predict(capsys, paths[item], "--out", out)
    assert code == 2
    assert len(lines) == 1, lines
    name = NAMED_AS.get(item, paths[item].name)
    assert re.fullmatch(rf"error: {re.escape(name)}: {EXPECTED[item]}.*", lines[0]), lines[0]
    assert not out.exists() and not out.with_name("scores.csv.json").exists()
    assert not (folder / MARKER).exists(), "a hostile file ran its payload"


def test_bad_files_in_a_real_process(corpus, tmp_path):
    """The same from the console script's process: no traceback, nothing written, nothing run."""
    folder, paths = corpus
    for item in ("cut_gzip_stream", "pickle_payload_pt", "dicom_truncated_pixels"):
        out = tmp_path / f"{item}.csv"
        done = subprocess.run(
            [sys.executable, "-m", "app", "predict", str(paths[item]), "--out", str(out)], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(f"error: {paths[item].name}: ")
        assert not out.exists()
    assert not (folder / MARKER).exists()


def test_nan_inf_voxels_load_and_are_reported_not_scored(corpus, capsys, tmp_path):
    _, paths = corpus
    out = tmp_path / "scores.csv"
    code, lines = predict(capsys, paths["nan_inf_voxels"], "--strategy", "slice", "--out", out)
    assert code == 0, lines
    assert any(line.startswith("warning: ") and "2 slices hold NaN/Inf voxels" in line for line in lines), lines
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    empty = [int(r["slice_index"]) for r in rows if r["score"] == "" or math.isnan(float(r["score"]))]
    assert empty == list(NAN_SLICES)
    meta = json.loads(out.with_name("scores.csv.json").read_text())
    volume = meta["volumes"][0]
    assert volume["nonfinite_slices"] == list(NAN_SLICES)
    assert any("NaN/Inf voxels in 2 of 10 slices (3, 7)" in note for note in volume["notes"])


def test_series_with_a_missing_slice_loads_at_true_positions_with_a_warning(corpus, capsys, tmp_path):
    _, paths = corpus
    out = tmp_path / "scores.csv"
    code, lines = predict(capsys, paths["dicom_missing_slice"], "--strategy", "slice", "--out", out)
    assert code == 0, lines
    warning = "slices are not evenly spaced (2.5 to 5 mm apart; missing slices?): shown at their true positions, without resampling"
    assert f"warning: {paths['dicom_missing_slice']}: {warning}" in lines, lines
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["position_mm"]) for r in rows] == pytest.approx(MISSING_SLICE_POSITIONS, abs=1e-3)
    volume = json.loads(out.with_name("scores.csv.json").read_text())["volumes"][0]
    assert f"warning: {warning}" in volume["notes"] and volume["axis_label"] == "acquired (axial)"
