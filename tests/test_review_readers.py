"""Several readers: κ between them (against scikit-learn, statsmodels and worked examples),
``slicewise agreement``, per-reader label files, decisions that survive a kill, a cohort's
results read back, and blinded mode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app import export
from app.cli import main
from app.io import load_volume
from app.prediction import Prediction
from app.review.decisions import CaseDecisions, decisions_of
from app.review.kappa import fleiss_kappa, reader_agreement
from app.review.labels import SliceLabels
from app.review.readers import ReaderLabels, read_label_file, readers_of
from app.review.results import load_results
from app.review.worklist import CohortReview

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa" page: 10 subjects, 14 raters, 5
# categories; P̄ = 0.378, P̄e = 0.213, κ = 0.210.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
]  # fmt: skip


def test_cohen_kappa_is_scikit_learns_over_the_slices_all_labelled():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(3)
    a = {i: str(v) for i, v in enumerate(rng.integers(0, 2, 60))}
    b = {i: (a.get(i, "1") if rng.random() < 0.7 else str(1 - int(a.get(i, "1")))) for i in range(5, 70)}  # slices 60…69: b only
    a[10], b[11] = "?", "?"
    found = reader_agreement({"a": a, "b": b})
    both = [i for i in range(5, 60) if i not in (10, 11)]
    x, y = [int(a[i]) for i in both], [int(b[i]) for i in both]
    assert found.method == "cohen" and found.compared == len(both)
    assert found.kappa == pytest.approx(cohen_kappa_score(x, y))
    assert found.percent_agreement == pytest.approx(100 * np.mean(np.equal(x, y)))
    assert (found.unsure, found.incomplete) == (2, 5 + 10)
    assert [i for i, _ in found.disagreements] == [i for i in both if a[i] != b[i]]


def test_fleiss_kappa_of_a_worked_example_and_of_statsmodels():
    from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

    assert round(fleiss_kappa(np.array(FLEISS_TABLE)), 3) == 0.210
    rng = np.random.default_rng(0)
    for raters in (3, 4, 7):
        table = rng.multinomial(raters, [0.3, 0.7], size=40)
        assert fleiss_kappa(table) == pytest.approx(statsmodels_fleiss(table, method="fleiss"))


def test_three_readers_hand_computed():
    """Four slices, three readers; positives per slice 3, 2, 0, 1: Pᵢ = 1, ⅓, 1, ⅓ so P̄ = ⅔;
    p(1) = 6/12 so P̄e = ½; κ = (⅔ − ½) / (1 − ½) = ⅓."""
    readers = {"a": {0: "1", 1: "1", 2: "0", 3: "1"}, "b": {0: "1", 1: "1", 2: "0", 3: "0"}, "c": {0: "1", 1: "0", 2: "0", 3: "0"}}
    found = reader_agreement(readers)
    assert found.method == "fleiss" and found.kappa == pytest.approx(1 / 3)
    assert (found.compared, found.agreed) == (4, 2) and [i for i, _ in found.disagreements] == [1, 3]


def _nifti(path: Path, depth: int = 10, seed: int = 0) -> Path:
    data = np.random.default_rng(seed).normal(0, 50, (16, 16, depth)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_agreement_cli_reads_label_files_and_csvs_and_writes_json(tmp_path, capsys):
    volume = load_volume(_nifti(tmp_path / "scan.nii.gz"))
    alice = ReaderLabels.for_reader(volume, "alice", fallback_dirs=[tmp_path / "data"])
    alice.update({0: "1", 1: "0", 2: "1", 3: "?", 4: "0"})
    assert alice.path.name == "scan.nii.gz.labels.alice.csv"
    (tmp_path / "bob.csv").write_text("slice_index,label\n0,1\n1,1\n2,1\n3,1\n4,0\n")
    out = tmp_path / "agreement.json"
    assert main(["agreement", str(alice.path), str(tmp_path / "bob.csv"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "readers: alice, bob" in printed and "Cohen's κ" in printed and "1 (alice=0 bob=1)" in printed
    document = json.loads(out.read_text())
    assert document["readers"] == ["alice", "bob"] and document["compared"] == 4 and document["left_out"]["unsure"] == 1
    assert document["disagreements"] == [{"slice": 1, "labels": {"alice": "0", "bob": "1"}}]
    (tmp_path / "carol.csv").write_text("slice_index,label\n0,1\n2,0\n0,0\n")
    assert main(["agreement", str(alice.path), str(tmp_path / "carol.csv")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'carol.csv'}, line 4: slice 0 is labelled both 1 and 0")
    assert not out.with_name("other.json").exists()
    assert read_label_file(alice.path).reader == "alice" and read_label_file(tmp_path / "bob.csv").reader == "bob"


def test_per_reader_files_and_the_single_reader_file(tmp_path):
    volume = load_volume(_nifti(tmp_path / "scan.nii.gz"))
    single = SliceLabels.for_volume(volume, fallback_dirs=[tmp_path / "data"])
    single.update({1: "1", 2: "0"}, user="alice")
    bob = ReaderLabels.for_reader(volume, "bob", fallback_dirs=[tmp_path / "data"])
    assert bob.labels == {}, "the single-reader file is alice's, not bob's"
    bob.set(1, "0")
    alice = ReaderLabels.for_reader(volume, "alice", fallback_dirs=[tmp_path / "data"])
    assert alice.labels == {1: "1", 2: "0"}, "the single-reader file read as its user's"
    assert readers_of(volume.source, alice.key) == {"alice": {1: "1", 2: "0"}, "bob": {1: "0"}}
    alice.set(3, "1")
    assert alice.path.name == "scan.nii.gz.labels.alice.csv"
    assert readers_of(volume.source, alice.key)["alice"] == {1: "1", 2: "0", 3: "1"}


def _decider_code(volume: Path, sha: str) -> str:
    return (
        "from app.review.decisions import CaseDecisions\n"
        f"d = CaseDecisions({str(volume)!r}, {sha!r}, 'alice', fallback_dirs=[])\n"
        "d.decide('accept', 'first')\n"
        "print('ready', flush=True)\n"
        "n = 0\n"
        "while True:\n"
        "    d.decide(('accept', 'reject', 'second read')[n % 3], 'note ' * (n % 50)); n += 1\n"
    )


def test_decisions_survive_a_kill_mid_save(tmp_path):
    volume, sha = tmp_path / "scan.nii.gz", "cd" * 32
    proc = subprocess.Popen([sys.executable, "-c", _decider_code(volume, sha)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # hundreds of saves in flight
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    history = CaseDecisions(volume, sha, "alice", fallback_dirs=[]).history
    assert len(history) > 1 and history[0].decision == "accept" and history[0].note == "first"
    assert [d.decision for d in history[1:]] == [("accept", "reject", "second read")[n % 3] for n in range(len(history) - 1)], "every record kept, in order"
    assert decisions_of(volume, sha)["alice"] == history


def _results(tmp_path: Path, sd: bool = False) -> tuple[Path, list]:
    """Three volumes and a results CSV of made-up scores, written as `predict` writes them."""
    results, volumes = [], []
    for seed in range(3):
        volume = load_volume(_nifti(tmp_path / f"case{seed}.nii.gz", seed=seed))
        scores = np.linspace(0, 0.3 * (seed + 1), volume.depth, dtype=np.float32).reshape(-1, 1)
        results.append((volume, Prediction(scores, None, "slice", "built-in:slice", "ab" * 32, "none", "cpu", 8)))
        volumes.append(volume)
    path, _ = export.write_predictions(tmp_path / "results.csv", results)
    if sd:
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0] + ",score_sd", *(f"{line},0.{i % 9}" for i, line in enumerate(lines[1:]))]) + "\n")
    return path, volumes


def test_results_read_back_with_their_scores_and_spread(tmp_path):
    path, volumes = _results(tmp_path, sd=True)
    results = load_results(path)
    assert [c.name for c in results.cases] == [str(v.source) for v in volumes] and results.has_spread
    case = results.cases[2]
    assert case.depth == 10 and case.max_slice == pytest.approx(0.9) and case.sha256 == volumes[2].sha256
    assert case.spread == pytest.approx(np.mean([(20 + i) % 9 / 10 for i in range(10)]))
    (prediction,) = results.predictions(case)
    np.testing.assert_allclose(prediction.scores[:, 0], np.linspace(0, 0.9, 10), rtol=1e-6)
    assert prediction.strategy == "slice" and prediction.model_source == "built-in:slice"


def test_blinded_mode_hides_the_other_readers_until_the_case_is_decided(tmp_path):
    path, volumes = _results(tmp_path)
    for reader, value in (("bob", "1"), ("carol", "0")):
        ReaderLabels.for_reader(volumes[0], reader, fallback_dirs=[]).update({2: value, 9: "1"})
    CaseDecisions(volumes[0].source, volumes[0].sha256, "bob").decide("reject", "a bad slice")
    ReaderLabels.for_reader(volumes[0], "alice", fallback_dirs=[]).update({2: "1", 9: "1"})
    results = load_results(path)
    open_review = CohortReview(results, "alice", blinded=False)
    status = open_review.status(0)
    assert sorted(status.others) == ["bob", "carol"] and status.other_decisions["bob"].decision == "reject"
    assert status.agreement.method == "fleiss" and [i for i, _ in status.agreement.disagreements] == [2]
    blind = CohortReview(results, "alice", blinded=True)
    status = blind.status(0)
    assert status.others == {} and status.other_decisions == {} and status.hidden == 2 and status.agreement is None
    assert status.own == {2: "1", 9: "1"}
    assert blind.disagreements() == [] and blind.cohort_agreement() is None
    blind.decide(0, "accept", "fine")
    status = blind.status(0)
    assert sorted(status.others) == ["bob", "carol"] and status.hidden == 0
    assert [(row, index) for row, index, _ in blind.disagreements()] == [(0, None), (0, 2)]


def test_results_read_from_the_parts_folder_of_a_stopped_run(tmp_path):
    """A cohort run stopped before its table: the parts it saved are reviewable."""
    from app.cohort.store import Parts

    path, volumes = _results(tmp_path)
    whole = load_results(path)
    parts = Parts(tmp_path / "stopped.csv")
    parts.create()
    for volume, case in zip(volumes[:2], whole.cases):
        prediction = whole.predictions(case)[0]
        meta = {"path": str(volume.source), "sidecar": export.sidecar([(volume, prediction)])}
        parts.write(volume.sha256, export.csv_text([(volume, prediction)]), meta)
    results = load_results(tmp_path / "stopped.csv")
    assert sorted(c.name for c in results.cases) == sorted(str(v.source) for v in volumes[:2])
    for case in results.cases:
        original = next(c for c in whole.cases if c.name == case.name)
        np.testing.assert_array_equal(results.predictions(case)[0].scores, whole.predictions(original)[0].scores)
        assert case.sha256 == original.sha256


def test_worklist_names_tell_cases_apart_with_the_fewest_folders():
    from app.review.worklist import short_names

    names = ["a/phantom.nii.gz", "b/phantom.nii.gz", "c/t1.nii.gz", "/data/x/sub-1/anat/T1w.nii.gz", "/data/y/sub-1/anat/T1w.nii.gz", "same.npy", "same.npy"]
    assert short_names(names) == ["a/phantom.nii.gz", "b/phantom.nii.gz", "t1.nii.gz", "x/sub-1/anat/T1w.nii.gz", "y/sub-1/anat/T1w.nii.gz", "same.npy", "same.npy"]
    assert short_names([]) == [] and short_names(["C:\\scans\\a.dcm", "D:\\scans\\a.dcm"]) == ["C:/scans/a.dcm", "D:/scans/a.dcm"]
