"""CSV and sidecar: columns, formatting, atomic writes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from app import export
from app.errors import SlicewiseError
from app.prediction import Prediction
from app.volume import Volume


def prediction(depth: int, outputs: int = 1, volume_score=None) -> Prediction:
    scores = np.arange(depth * outputs, dtype=np.float32).reshape(depth, outputs) / 7
    return Prediction(scores, volume_score, "slice", "built-in:slice", "ab" * 32, "none", "CPU (2 threads)", 8, {"total_s": 0.5})


def test_csv_rows_and_columns():
    volume = Volume.from_tensor(torch.zeros(3, 4, 5), source="v.npy")
    lines = export.csv_text([(volume, prediction(3, outputs=2))]).splitlines()
    assert lines[0] == "volume,slice_index,position_mm,score_0,score_1"
    assert lines[1] == "v.npy,0,0.000,0,0.14285715"
    assert len(lines) == 4


def test_mixed_outputs_refused():
    volume = Volume.from_tensor(torch.zeros(2, 4, 5))
    with pytest.raises(SlicewiseError, match="different numbers of outputs"):
        export.csv_text([(volume, prediction(2, 1)), (volume, prediction(2, 3))])


def test_write_predictions_atomic_and_sidecar(tmp_path):
    volume = Volume.from_tensor(torch.zeros(4, 4, 5), source="v.npy")
    out = tmp_path / "p.csv"
    out.write_text("earlier results\n")
    table, meta = export.write_predictions(out, [(volume, prediction(4, volume_score=np.array([0.25], np.float32)))])
    assert table.read_text().count("\n") == 5
    data = json.loads(meta.read_text())
    assert data["volumes"][0]["volume_score"] == [0.25]
    assert data["volumes"][0]["shape"] == [4, 4, 5, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv", "p.csv.json"]


def test_failed_write_keeps_earlier_file(tmp_path):
    out = tmp_path / "p.csv"
    out.write_text("earlier results\n")
    with pytest.raises(SlicewiseError, match="cannot write"):
        export.write_atomic(tmp_path / "missing" / "p.csv", "x")
    target = tmp_path / "p.csv"
    target_dir = tmp_path / "dir.csv"
    target_dir.mkdir()
    with pytest.raises(SlicewiseError, match="cannot write"):
        export.write_atomic(target_dir, "x")
    assert target.read_text() == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.csv", "p.csv"]


def test_disk_full_keeps_earlier_file_and_leaves_no_half_file(tmp_path, monkeypatch):
    """A write that fails part-way (here: the disk fills up at fsync) leaves the earlier file as
    it was and no temporary file behind."""
    out = tmp_path / "p.csv"
    out.write_text("earlier results\n")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SlicewiseError, match=r"cannot write .*p\.csv: No space left on device"):
        export.write_atomic(out, "new results\n" * 1000)
    assert out.read_text() == "earlier results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def test_killed_mid_write_keeps_earlier_file(tmp_path):
    """A process killed after writing the new table but before the rename: the earlier file is
    intact (at most a hidden temporary file is left beside it)."""
    out = tmp_path / "p.csv"
    out.write_text("earlier results\n")
    code = (
        "import os, signal, sys; from pathlib import Path; from app import atomic\n"
        "atomic.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "atomic.write_atomic(Path(sys.argv[1]), 'new results\\n' * 100000)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert out.read_text() == "earlier results\n"
    assert all(p.name == "p.csv" or (p.name.startswith(".p.csv.") and p.name.endswith(".tmp")) for p in tmp_path.iterdir())


def run(depth: int, strategy: str = "slice", model: str = "built-in:slice", outputs: int = 1, classes=None, offset: float = 0.0, **fields) -> Prediction:
    scores = (np.arange(depth * outputs, dtype=np.float32).reshape(depth, outputs) + offset) / 8
    return Prediction(scores, None, strategy, model, "cd" * 32, "none", "CPU (2 threads)", 4, {"total_s": 0.25}, classes=classes, **fields)


def test_one_run_keeps_the_plain_score_column_and_classes_name_columns():
    volume = Volume.from_tensor(torch.zeros(3, 4, 5), source="v.npy")
    assert export.csv_text([(volume, run(3))]).splitlines()[0] == "volume,slice_index,position_mm,score"
    assert export.csv_text([(volume, [run(3)])]).splitlines()[0] == "volume,slice_index,position_mm,score"
    named = export.csv_text([(volume, run(3, outputs=3, classes=("none", "bleed", "big tumour")))]).splitlines()
    assert named[0] == "volume,slice_index,position_mm,score_none,score_bleed,score_big_tumour"
    assert named[2] == "v.npy,1,1.000,0.375,0.5,0.625"


def test_several_runs_a_column_each_with_unique_readable_names():
    volume = Volume.from_tensor(torch.zeros(3, 4, 5), source="v.npy")
    runs = [
        run(3, "slice"),
        run(3, "temporal", "built-in:temporal", offset=1),
        run(3, "slice", "/models/my model.keras", offset=2),
        run(3, "embedding", "/m/e.keras", outputs=2, classes=("a", "b"), offset=3),
    ]
    lines = export.csv_text([(volume, runs)]).splitlines()
    assert lines[0].split(",") == [
        "volume", "slice_index", "position_mm", "score_slice_builtin", "score_temporal", "score_slice_my_model", "score_embedding_a", "score_embedding_b"
    ]  # fmt: skip
    assert lines[1].split(",")[3:] == ["0", "0.125", "0.25", "0.375", "0.5"]
    assert export.run_names([run(3), run(3, channels="neighbors:1")]) == ["slice_replicate", "slice_neighbors_1"]
    assert export.run_names([run(3), run(3)]) == ["slice", "slice_2"]


def test_several_runs_sidecar_entry_per_run():
    volume = Volume.from_tensor(torch.zeros(3, 4, 5), source="v.npy")
    runs = [run(3, "slice"), run(3, "temporal", "built-in:temporal", notes=["temporal: uneven"])]
    meta = export.sidecar([(volume, runs)])
    assert [r["name"] for r in meta["runs"]] == ["slice", "temporal"]
    assert [r["columns"] for r in meta["runs"]] == [["score_slice"], ["score_temporal"]]
    assert meta["runs"][1]["model"]["source"] == "built-in:temporal" and meta["runs"][0]["channels"] == "replicate"
    assert meta["strategy"] == "slice"  # the first run's settings stay at the top level
    entry = meta["volumes"][0]
    assert [r["name"] for r in entry["runs"]] == ["slice", "temporal"] and entry["runs"][1]["notes"] == ["temporal: uneven"]


def test_volumes_with_different_runs_refused():
    a, b = Volume.from_tensor(torch.zeros(2, 4, 5), source="a.npy"), Volume.from_tensor(torch.zeros(2, 4, 5), source="b.npy")
    with pytest.raises(SlicewiseError, match="cannot put predictions with columns"):
        export.csv_text([(a, [run(2), run(2, "temporal")]), (b, [run(2), run(2, "embedding")])])


def test_label_column(tmp_path):
    volume = Volume.from_tensor(torch.zeros(3, 4, 5), source="v.npy")
    table, meta = export.write_predictions(tmp_path / "p.csv", [(volume, run(3))], labels={0: "normal", 2: "lesion"})
    lines = table.read_text().splitlines()
    assert lines[0] == "volume,slice_index,position_mm,score,label"
    assert [line.rsplit(",", 1)[1] for line in lines[1:]] == ["normal", "", "lesion"]
    assert json.loads(meta.read_text())["labels"] == {"column": "label", "labelled_slices": 2}
    with pytest.raises(SlicewiseError, match="labels belong to one volume"):
        export.csv_text([(volume, run(3)), (volume, run(3))], labels={})


def test_output_path_check(tmp_path):
    from app.atomic import check_writable

    assert check_writable(tmp_path / "p.csv") == tmp_path / "p.csv"
    with pytest.raises(SlicewiseError, match="does not exist"):
        check_writable(tmp_path / "no" / "p.csv")
    with pytest.raises(SlicewiseError, match="it is a folder"):
        check_writable(tmp_path)
    with pytest.raises(SlicewiseError, match="must be a .png file"):
        check_writable(tmp_path / "p.jpg", ".png")
