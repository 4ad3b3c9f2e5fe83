"""Slice labels: saved beside the volume on every change, atomically; found again by the volume's
content hash (not its name); a fallback folder when the volume's folder cannot be written;
import of a ``slice_index,label`` CSV such as the demo's ground truth."""

from __future__ import annotations

import csv
import errno
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app.errors import SlicewiseError
from app.io import load_volume
from app.review.labels import (
    SliceLabels,
    VolumeKey,
    current_user,
    read_labels_csv,
    read_sidecar,
)

DEMO_LABELS = Path(__file__).parents[1] / "resources" / "demo" / "labels.csv"
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def small_volume(folder: Path, name: str = "scan.nii.gz", seed: int = 0, depth: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(-100, 100, size=(8, 7, depth)).astype(np.int16)
    path = folder / name
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), path)
    return path


@pytest.fixture
def scan(tmp_path) -> Path:
    return small_volume(tmp_path / "data")


def test_labels_are_written_beside_the_volume_on_every_change(scan, tmp_path):
    volume = load_volume(scan)
    labels = SliceLabels.for_volume(volume, fallback_dirs=[tmp_path / "fallback"])
    assert labels.labels == {} and labels.path is None
    labels.set(2, "1")
    sidecar = scan.with_name("scan.nii.gz.labels.csv")
    assert labels.path == sidecar and sidecar.is_file()
    assert read_sidecar(sidecar)[1][2].value == "1"
    labels.set(4, "0")
    labels.set(5, "?")
    labels.set(2, "0")
    labels.clear(4)
    key, entries = read_sidecar(sidecar)
    assert {i: e.value for i, e in entries.items()} == {2: "0", 5: "?"} == labels.labels
    assert key == VolumeKey(volume.sha256, "axial", 0, volume.depth)
    entry = entries[5]
    assert entry.user == current_user()
    assert abs((datetime.fromisoformat(entry.time) - datetime.now().astimezone()).total_seconds()) < 600
    assert not (tmp_path / "fallback").exists()
    assert sorted(p.name for p in scan.parent.iterdir()) == ["scan.nii.gz", "scan.nii.gz.labels.csv"]  # no temporary file left


def test_reopened_volume_gets_its_labels_back_also_after_a_rename(scan, tmp_path):
    labels = SliceLabels.for_volume(load_volume(scan), fallback_dirs=[])
    labels.update({0: "1", 3: "0"})
    renamed = scan.with_name("renamed.nii.gz")
    scan.rename(renamed)
    again = SliceLabels.for_volume(load_volume(renamed), fallback_dirs=[])
    assert again.labels == {0: "1", 3: "0"}
    assert again.path == scan.with_name("scan.nii.gz.labels.csv")  # found by content hash, kept there
    again.set(1, "?")
    assert SliceLabels.for_volume(load_volume(renamed), fallback_dirs=[]).labels == {0: "1", 1: "?", 3: "0"}


def test_labels_stay_with_the_content_not_the_name(scan):
    SliceLabels.for_volume(load_volume(scan), fallback_dirs=[]).set(1, "1")
    small_volume(scan.parent, name="scan.nii.gz", seed=1)  # other voxels under the same name
    assert SliceLabels.for_volume(load_volume(scan), fallback_dirs=[]).labels == {}
    coronal = SliceLabels.for_volume(load_volume(small_volume(scan.parent, "other.nii.gz"), axis="coronal"), fallback_dirs=[])
    assert coronal.labels == {}, "the same voxels along another axis are other slices"


def test_failed_write_keeps_the_earlier_file_and_the_shown_labels(scan, monkeypatch):
    labels = SliceLabels.for_volume(load_volume(scan), fallback_dirs=[])
    labels.set(1, "1")
    before = labels.path.read_bytes()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(SlicewiseError, match="No space left on device"):
        labels.set(2, "0")
    assert labels.path.read_bytes() == before
    assert labels.labels == {1: "1"}, "a label that could not be saved is not shown as made"
    assert sorted(p.name for p in scan.parent.iterdir()) == ["scan.nii.gz", "scan.nii.gz.labels.csv"]


def _writer_code(sidecar_home: Path, sha: str, kill_before_rename: bool) -> str:
    kill = "atomic.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n" if kill_before_rename else ""
    return (
        "import os, signal, sys; from pathlib import Path; from app import atomic\n"
        "from app.review.labels import SliceLabels, VolumeKey\n"
        f"labels = SliceLabels(VolumeKey({sha!r}, 'axial', 0, 500), 'scan.nii.gz', Path({str(sidecar_home)!r}))\n"
        "labels.update({i: '1' for i in range(0, 500, 2)})\n"
        "print('ready', flush=True)\n"
        f"{kill}"
        "n = 0\n"
        "while True:\n"
        "    labels.set(n % 500, '01?'[n % 3]); n += 1\n"
    )


@pytest.mark.parametrize("kill_before_rename", [True, False], ids=["killed-before-rename", "killed-anywhere"])
def test_killed_while_saving_leaves_a_whole_labels_file(tmp_path, kill_before_rename):
    """The app killed in the middle of saving: the file on disk is a whole, earlier version."""
    sha = "ab" * 32
    proc = subprocess.Popen([sys.executable, "-c", _writer_code(tmp_path, sha, kill_before_rename)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        if not kill_before_rename:
            time.sleep(0.3)  # hundreds of saves in flight
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    key, entries = read_sidecar(tmp_path / "scan.nii.gz.labels.csv")
    assert key.sha256 == sha
    if kill_before_rename:
        assert {i: e.value for i, e in entries.items()} == {i: "1" for i in range(0, 500, 2)}
    else:
        assert len(entries) >= 250 and {e.value for e in entries.values()} <= {"0", "1", "?"}
    text = (tmp_path / "scan.nii.gz.labels.csv").read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 6 + len(entries)


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders; the blocked-path test below covers the fallback")
def test_read_only_folder_falls_back_to_the_fallback_folder(scan, tmp_path):
    fallback = tmp_path / "user-data"
    scan.parent.chmod(0o555)
    try:
        labels = SliceLabels.for_volume(load_volume(scan), fallback_dirs=[fallback])
        labels.set(3, "1")
        assert labels.path.parent == fallback
        assert SliceLabels.for_volume(load_volume(scan), fallback_dirs=[fallback]).labels == {3: "1"}
    finally:
        scan.parent.chmod(0o755)


def test_unwritable_place_falls_back_next_to_the_export_and_the_data_folder(scan, tmp_path):
    """Where the sidecar cannot be written beside the volume (here its name is taken by a
    folder, which stops root too), labels go to the fallback folders, and are found there."""
    scan.with_name("scan.nii.gz.labels.csv").mkdir()
    data_dir, export_dir = tmp_path / "user-data", tmp_path / "exports"
    labels = SliceLabels.for_volume(load_volume(scan), fallback_dirs=[data_dir])
    labels.set(3, "1")
    assert labels.path.parent == data_dir and labels.path.name.startswith("scan.nii.gz.") and labels.path.name.endswith(".labels.csv")
    export_dir.mkdir()
    labels.use_folder(export_dir)  # the GUI exported a CSV there
    labels.set(4, "0")
    assert labels.path.parent == export_dir
    for folder in (export_dir, data_dir):
        (found,) = folder.glob("*.labels.csv")
        assert {i: e.value for i, e in read_sidecar(found)[1].items()} == {3: "1", 4: "0"}
    assert SliceLabels.for_volume(load_volume(scan), fallback_dirs=[data_dir]).labels == {3: "1", 4: "0"}


def test_nowhere_to_write_is_a_clear_error(scan):
    scan.with_name("scan.nii.gz.labels.csv").mkdir()
    labels = SliceLabels.for_volume(load_volume(scan), fallback_dirs=[])
    with pytest.raises(SlicewiseError, match="cannot save the slice labels"):
        labels.set(0, "1")
    assert labels.labels == {}


def test_in_memory_volume_keeps_labels_in_memory():
    import torch

    from app.volume import Volume

    labels = SliceLabels.for_volume(Volume.from_tensor(torch.zeros(4, 3, 3)), fallback_dirs=[])
    labels.set(1, "1")
    assert labels.labels == {1: "1"} and labels.path is None


def test_import_of_the_demo_ground_truth(tmp_path):
    with open(DEMO_LABELS, newline="") as f:
        rows = list(csv.DictReader(f))
    truth = {int(r["slice_index"]): r["label"] for r in rows}
    depth = len(rows)
    volume = load_volume(small_volume(tmp_path, depth=depth))
    labels = SliceLabels.for_volume(volume, fallback_dirs=[])
    labels.set(0, "?")
    assert labels.import_csv(DEMO_LABELS) == depth
    assert labels.labels == truth and set(truth.values()) == {"0", "1"}
    assert read_sidecar(labels.path)[1][0].value == truth[0]
    one = tmp_path / "one.csv"
    one.write_text("slice_index,label\n5,?\n")
    labels.import_csv(one)
    assert labels.labels == {**truth, 5: "?"}
    labels.import_csv(one, replace=True)
    assert labels.labels == {5: "?"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("slice,label\n0,1\n", "expected columns slice_index and label"),
        ("slice_index,label\n0,maybe\n", r"line 2: bad label 'maybe'"),
        ("slice_index,label\nx,1\n", "line 2: slice_index 'x' is not a whole number"),
        ("slice_index,label\n9,1\n", r"line 2: slice 9 does not exist \(the volume has 6 slices\)"),
        ("slice_index,label\n1,1\n1,0\n", "line 3: slice 1 is labelled both 1 and 0"),
        ("volume,slice_index,label\na.nii,0,1\nb.nii,0,1\n", "several volumes"),
        ("", "no header line"),
    ],
)
def test_bad_label_files_are_refused_with_the_line(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(SlicewiseError, match=message):
        read_labels_csv(path, depth=6)


def test_import_accepts_comments_spellings_blanks_and_other_columns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("# from a reader\nvolume,slice_index,score,label\nv,0,0.2,negative\nv,2,0.9,1\nv,3,0.5,\nv,4,0.5,?\n")
    assert read_labels_csv(path, depth=6) == {0: "0", 2: "1", 4: "?"}
