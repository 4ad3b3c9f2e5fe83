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
