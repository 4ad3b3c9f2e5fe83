"""Cohorts on Dask: folders and globs expanded, one task per volume on a LocalCluster of two
worker processes on loopback, results equal to serial scoring, resumable, and robust to a
worker killed mid-run."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app.cli import build_parser
from app.cohort import CohortRequest, is_cohort, predict_cohort
from app.cohort.inputs import expand
from app.errors import LoadError, SlicewiseError
from tests.dicom_writer import IOPS, write_series

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


# ---------------------------------------------------------------- data


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Nested folders: .npy, NIfTI (.nii.gz and .nii), a DICOM series folder, a corrupt file and
    files that are not volumes."""
    root = tmp_path_factory.mktemp("cohort") / "study"
    rng = np.random.default_rng(7)
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    np.save(root / "p01.npy", rng.random((12, 40, 40), dtype=np.float32))
    np.save(root / "a" / "p02.npy", rng.random((9, 32, 48), dtype=np.float32) * 100)
    np.save(root / "a" / "deep" / "p03.npy", rng.random((16, 24, 24), dtype=np.float32))
    nib.save(nib.Nifti1Image(rng.random((30, 30, 11)).astype(np.float32), np.diag([0.9, 0.9, 2.0, 1.0])), root / "a" / "p04.nii.gz")
    nib.save(nib.Nifti1Image((rng.random((20, 28, 7)) * 500).astype(np.int16), np.eye(4)), root / "b" / "p05.nii")
    write_series(root / "b" / "series1", (rng.random((6, 20, 20)) * 1000).astype(np.int16), IOPS["axial"], [0.0, 0.0, 0.0], (0.8, 0.8), step=2.0)
    (root / "b" / "broken.nii.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 8)
    (root / "README.txt").write_text("not a volume")
    (root / "a" / "labels.csv").write_text("slice,label\n")
    return root


ORDER = ["p01.npy", "a/p02.npy", "a/p04.nii.gz", "a/deep/p03.npy", "b/broken.nii.gz", "b/p05.nii", "b/series1"]  # walk order
BROKEN = "b/broken.nii.gz"
OK_VOLUMES = [n for n in ORDER if n != BROKEN]


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on loopback, shared by the tests of this module."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}
    ) as cluster:
        with Client(cluster) as client:
            yield cluster, client


def cohort_args(*argv: str | Path, scheduler: str | None = None) -> CohortRequest:
    """The request that ``slicewise predict ARGV`` makes."""
    argv = ["predict", *map(str, argv)]
    if scheduler:
        argv += ["--scheduler", scheduler]
    return CohortRequest.from_args(build_parser().parse_args(argv))


def read_table(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def read_sidecar(out: Path) -> dict:
    return json.loads(out.with_name(out.name + ".json").read_text())


def part_files(out: Path) -> list[Path]:
    """The per-volume result JSONs (named by a 64-hex key) in the parts folder."""
    return [p for p in out.with_name(out.name + ".parts").glob("*.json") if len(p.stem) == 64]


def check_complete(rows: list[list[str]], expected: dict[str, int]) -> None:
    """Every slice of every expected volume exactly once, volumes in the expected order."""
    keys = [(r[0], int(r[1])) for r in rows[1:]]
    assert len(keys) == len(set(keys)), "duplicate rows"
    assert keys == [(volume, k) for volume, depth in expected.items() for k in range(depth)]


def compare_rows(got: list[list[str]], want: list[list[str]]) -> None:
    assert got[0] == want[0] and len(got) == len(want)
    assert [r[:3] for r in got] == [r[:3] for r in want]
    np.testing.assert_allclose(np.array([r[3:] for r in got[1:]], float), np.array([r[3:] for r in want[1:]], float), **TOLERANCE)


@pytest.fixture(scope="module")
def full_run(study, cluster, tmp_path_factory):
    """One complete run of the study on the shared cluster: (exit code, out path, stderr)."""
    out = tmp_path_factory.mktemp("full") / "scores.csv"
    stderr = io.StringIO()
    old, sys.stderr = sys.stderr, stderr
    try:
        code = predict_cohort(cohort_args(study, "--out", out, scheduler=cluster[0].scheduler_address))
    finally:
        sys.stderr = old
    return code, out, stderr.getvalue()


# ---------------------------------------------------------------- no cluster


def test_is_cohort_is_cheap_and_right(study):
    code = (
        "import sys; from app.cohort import is_cohort; "
        f"print(is_cohort([{str(study)!r}]), is_cohort([{str(study / 'b' / 'series1')!r}]), is_cohort([{str(study / 'p01.npy')!r}]), "
        f"is_cohort([{str(study / '*.npy')!r}]), is_cohort([{str(study / 'p0?.npy')!r}]), is_cohort(['/no/such/file.nii']), "
        "any(m.split('.')[0] in ('dask', 'distributed', 'tensorflow', 'keras') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.stdout.split() == ["True", "False", "False", "True", "True", "False", "False"], done.stderr
    assert is_cohort([str(study / "p01.npy"), str(study / "a")]) and not is_cohort([str(study / "p01.npy")])


def test_expand_walks_folders_in_order_without_duplicates(study):
    items, unmatched = expand([str(study), str(study / "p01.npy"), str(study / "**" / "*.npy"), str(study / "*.mgz")])
    assert [os.path.relpath(i.path, study) for i in items] == ORDER
    assert all(os.path.isabs(i.path) for i in items)
    assert unmatched == [str(study / "*.mgz")]
    globbed, _ = expand([str(study / "**" / "*.npy")])
    assert [os.path.relpath(i.path, study) for i in globbed] == ["a/deep/p03.npy", "a/p02.npy", "p01.npy"]


def test_result_keys_follow_what_decides_the_scores():
    from app.cohort.store import Settings

    base = Settings("m" * 64, "slice", "window:60,200", "axial", 0)
    keys = {
        base.key("v" * 64),
        base.key("w" * 64),
        Settings("n" * 64, "slice", "window:60,200", "axial", 0).key("v" * 64),
        Settings("m" * 64, "temporal", "window:60,200", "axial", 0).key("v" * 64),
        Settings("m" * 64, "slice", "none", "axial", 0).key("v" * 64),
        Settings("m" * 64, "slice", "window:60,200", "coronal", 0).key("v" * 64),
        Settings("m" * 64, "slice", "window:60,200", "axial", 1).key("v" * 64),
    }
    assert len(keys) == 7 and base.key("v" * 64) == Settings("m" * 64, "slice", "window:60,200", "axial", 0).key("v" * 64)


def test_request_carries_the_options_and_refuses_what_a_cohort_cannot_honour(study):
    request = cohort_args(study, "--strategy", "temporal", "--normalize", "zscore", "--batch-size", "4", "--axis", "coronal", "--workers", "3", "--out", "o.csv")
    assert (request.volumes, request.strategy, request.normalize, request.batch_size, request.axis, request.workers, request.scheduler) == (
        (str(study),), "temporal", "zscore", 4, "coronal", 3, None
    )
    with pytest.raises(AttributeError):
        request.strategy = "slice"  # frozen: what was asked cannot change under the run
    for extra, dropped in (("--channels=neighbors:1", "drop --channels"), ("--classes=a,b", "drop --classes"), ("--strategy=slice", "drop the extra --strategy")):
        with pytest.raises(SlicewiseError, match=dropped):
            cohort_args(study, "--strategy", "temporal", extra, "--out", "o.csv")
    with pytest.raises(SlicewiseError, match="--saliency-dir and --labels review one volume"):
        cohort_args(study, "--labels", "l.csv", "--out", "o.csv")
    assert not request.skip_damaged and cohort_args(study, "--skip-damaged", "--out", "o.csv").skip_damaged


def test_a_decoder_crash_fails_that_volume_and_the_worker_goes_on(monkeypatch, tmp_path):
    """What a Dask worker runs for one volume: a JPEG 2000 decoder dying by a signal (made to, by
    the pool's test hook) is that volume's failure; the next volume in the same process scores;
    a series with a damaged file loads without it when the job says ``skip_damaged``."""
    from app.cohort.worker import score_volume
    from app.io import decode_pool
    from tests.damaged_dicom import BASES, base_path, write_damaged_series

    job = {"strategy": "slice", "model": None, "model_sha256": None, "unsafe": False, "normalize": None, "axis": "acquired", "volume_index": 0, "batch_size": 8}
    path = str(base_path(BASES["j2k"]))
    monkeypatch.setattr(decode_pool.get_pool(), "hook", "segv")
    failed = score_volume(path, path, job)
    assert failed["status"] == "failed", failed
    assert failed["reason"] == "MR_small_jp2klossless.dcm: the JPEG 2000 decoder crashed on frame 1 (signal 11): the file is damaged"
    monkeypatch.setattr(decode_pool.get_pool(), "hook", None)
    assert score_volume(path, path, job)["status"] == "ok"
    folder, _ = write_damaged_series(tmp_path / "series")
    assert score_volume(str(folder), str(folder), job)["status"] == "failed"
    result = score_volume(str(folder), str(folder), {**job, "skip_damaged": True})
    assert result["status"] == "ok" and result["slices"] == 5


def test_cohort_needs_out(study, capsys):
    with pytest.raises(SlicewiseError, match="needs --out"):
        predict_cohort(cohort_args(study))
    from app.cli import main

    assert main(["predict", str(study)]) == 2
    assert "error: scoring a cohort needs --out" in capsys.readouterr().err


# ---------------------------------------------------------------- on the cluster


def test_cluster_gives_the_serial_results(full_run, study, engine):
    """Two workers give exactly what scoring each volume in this process gives; the corrupt file
    is reported with the loader's reason, the others are complete."""
    from app import export
    from app.io import load_volume
    from app.strategies import get_strategy

    code, out, stderr = full_run
    assert code == 2
    volumes, predictions = [], []
    for name in OK_VOLUMES:
        volumes.append(load_volume(str(study / name)))
        predictions.append(engine.run(volumes[-1], get_strategy("slice")))
    serial = list(csv.reader(io.StringIO(export.csv_text(list(zip(volumes, predictions))))))
    table = read_table(out)
    check_complete(table, {str(study / n): v.depth for n, v in zip(OK_VOLUMES, volumes)})
    compare_rows(table, serial)

    meta = read_sidecar(out)
    assert [v["path"] for v in meta["volumes"]] == [str(study / n) for n in ORDER]
    broken = meta["volumes"][ORDER.index(BROKEN)]
    with pytest.raises(LoadError) as serial_error:
        load_volume(str(study / BROKEN))
    assert broken["status"] == "failed" and broken["reason"] == str(serial_error.value)
    assert f"error: {study / BROKEN}: " in stderr
    ok = [v for v in meta["volumes"] if v["status"] == "ok"]
    assert len(ok) == 6 and not any(v["reused"] for v in ok)
    for v, volume in zip(ok, volumes):
        assert v["sha256"] == volume.sha256 and v["shape"] == list(volume.shape)
    assert meta["model"]["sha256"] == predictions[0].model_sha256
    assert meta["cohort"] | {"cluster": None, "scoring_s": None, "volumes_per_s": None} == {
        "inputs": [str(study)],
        "total": 7,
        "ok": 6,
        "failed": 1,
        "reused": 0,
        "scored": 6,
        "cluster": None,
        "scoring_s": None,
        "volumes_per_s": None,
        "parts": str(out.with_name(out.name + ".parts")),
    }
    # the model was loaded once per worker process, not once per volume
    loads: dict[int, set[int]] = {}
    for part in part_files(out):
        data = json.loads(part.read_text())
        loads.setdefault(data["pid"], set()).add(data["model_loads"])
    assert 1 <= len(loads) <= 2 and all(len(counts) == 1 for counts in loads.values())


class Stop(Exception):
    """Stands for the client being stopped part-way (Ctrl-C, a kill)."""


def test_interrupted_run_resumes_without_duplicates(full_run, study, cluster, tmp_path):
    out = tmp_path / "scores.csv"
    args = cohort_args(study, "--out", out, scheduler=cluster[0].scheduler_address)

    def stop_after_two(client, run):
        if run.done + run.failed >= 2:
            raise Stop

    with pytest.raises(Stop):
        predict_cohort(args, on_result=stop_after_two)
    assert not out.exists(), "no table until the run is complete"
    saved = len(part_files(out))
    assert 1 <= saved <= 2

    assert predict_cohort(args) == 2
    assert read_table(out) == read_table(full_run[1])
    meta = read_sidecar(out)["cohort"]
    assert (meta["ok"], meta["failed"], meta["reused"], meta["scored"]) == (6, 1, saved, 6 - saved)

    # nothing left but the broken file: all reused; a volume changed on disk is scored again
    assert predict_cohort(args) == 2
    assert read_sidecar(out)["cohort"]["reused"] == 6
    changed = study.parent / "changed"
    changed.mkdir()
    np.save(changed / "p01.npy", np.load(study / "p01.npy") * 2)
    args = cohort_args(changed, study, "--out", out, scheduler=cluster[0].scheduler_address)
    assert predict_cohort(args) == 2
    meta = read_sidecar(out)
    assert (meta["cohort"]["reused"], meta["cohort"]["scored"]) == (6, 1)
    assert meta["volumes"][0]["path"] == str(changed / "p01.npy") and not meta["volumes"][0]["reused"]
    check_complete(read_table(out), {str(changed / "p01.npy"): 12, **_depths(full_run[1])})


def _depths(table: Path) -> dict[str, int]:
    depths: dict[str, int] = {}
    for row in read_table(table)[1:]:
        depths[row[0]] = depths.get(row[0], 0) + 1
    return depths


def test_user_model_on_the_cluster_and_a_model_that_cannot_load(study, cluster, tmp_path, engine):
    """A user's .keras file is hashed on the client and loaded once per worker; one that cannot
    load stops the run with Keras's reason (it is no volume's fault)."""
    from app.errors import ModelError
    from app.io import load_volume
    from app.strategies import get_strategy
    from app.tools.seed_models import seed_slice_model

    model_path = tmp_path / "mine.keras"
    seed_slice_model(16, 16, 1).save(model_path)
    out = tmp_path / "mine.csv"
    volumes = [str(study / n) for n in ("a/deep/p03.npy", "a/p02.npy", "p01.npy")]
    args = cohort_args(str(study / "**" / "*.npy"), "--model", model_path, "--normalize", "minmax", "--out", out, scheduler=cluster[0].scheduler_address)
    assert predict_cohort(args) == 0
    meta = read_sidecar(out)
    assert meta["model"]["source"] == str(model_path) and meta["normalize"] == "minmax"
    model = engine.load(model_path, "none")
    assert meta["model"]["sha256"] == model.sha256
    table = read_table(out)
    for name in volumes:
        volume = load_volume(name)
        want = engine.run(volume, get_strategy("slice"), model, normalize="minmax").scores
        got = np.array([r[3:] for r in table[1:] if r[0] == name], float)
        np.testing.assert_allclose(got, want, **TOLERANCE)

    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not a zip")
    args = cohort_args(study, "--model", broken, "--out", tmp_path / "broken.csv", scheduler=cluster[0].scheduler_address)
    with pytest.raises(ModelError, match="broken.keras: cannot load Keras model"):
        predict_cohort(args)
    assert not (tmp_path / "broken.csv").exists()


def test_the_shipped_segmentation_model_on_the_cluster(study, cluster, tmp_path, engine):
    """``--model builtin:lesion``: hashed on the client from its shipped file, its JSON's window
    applied on the workers, per-slice areas as a single run gives them."""
    from app.inference.models import RESOURCES, file_sha256
    from app.io import load_volume
    from app.strategies import get_strategy

    out = tmp_path / "lesions.csv"
    name = str(study / "a" / "p02.npy")
    assert predict_cohort(cohort_args(name, "--model", "builtin:lesion", "--out", out, scheduler=cluster[0].scheduler_address)) == 0
    meta = read_sidecar(out)
    assert meta["model"] == {"source": "built-in:lesion", "sha256": file_sha256(RESOURCES / "lesion.keras")} and meta["normalize"] == "window:60,200"
    table = read_table(out)
    assert table[0] == ["volume", "slice_index", "position_mm", "area_mm2"]
    volume = load_volume(name)
    single = engine.run(volume, get_strategy("slice"), engine.load("builtin:lesion"))
    np.testing.assert_allclose(np.array([r[3:] for r in table[1:]], float), single.scores, **TOLERANCE)
    assert meta["volumes"][0]["mask"].startswith("lesions.csv.parts/")  # kept with the part, for a review


def test_a_segmentation_cohort_writes_its_masks_and_a_review_shows_them(study, cluster, tmp_path, engine):
    """``--mask-dir``: each volume's mask as a single run's ``--mask-out`` writes it (kept in the
    parts folder, copied out under readable names); a re-run reuses them; parts kept without a
    mask are scored again; a review gets the mask back on the volume's grid."""
    import nibabel as nib

    from app.cli import main
    from app.io import load_volume
    from app.review.results import load_results
    from app.strategies import get_strategy

    address = cluster[0].scheduler_address
    names = [str(study / "p01.npy"), str(study / "a" / "p04.nii.gz")]
    out, masks = tmp_path / "seg.csv", tmp_path / "masks"
    assert predict_cohort(cohort_args(*names, "--model", "builtin:lesion", "--mask-dir", masks, "--out", out, scheduler=address)) == 0
    entries = read_sidecar(out)["volumes"]
    written = sorted(p.name for p in masks.iterdir())
    assert [Path(e["mask"]).name for e in entries] == [f"p01-{entries[0]['sha256'][:8]}.nii.gz", f"p04-{entries[1]['sha256'][:8]}.nii.gz"]
    assert sorted(Path(e["mask"]).name for e in entries) == written
    for name, entry in zip(names, entries):
        assert main(["predict", name, "--model", "builtin:lesion", "--mask-out", str(tmp_path / "one.nii.gz"), "--out", str(tmp_path / "one.csv")]) == 0
        cohort_mask, one = nib.load(out.parent / entry["mask"]), nib.load(tmp_path / "one.nii.gz")
        np.testing.assert_array_equal(np.asarray(cohort_mask.dataobj), np.asarray(one.dataobj))
        np.testing.assert_allclose(cohort_mask.affine, one.affine)

    results = load_results(out)
    volume = load_volume(names[1])
    dense = results.mask(next(c for c in results.cases if c.name == names[1]), volume)
    single = engine.run(volume, get_strategy("slice"), engine.load("builtin:lesion"))
    np.testing.assert_array_equal(dense.label_map(), single.dense.label_map())
    assert dense.kind == "sigmoid" and dense.classes == ("lesion",)

    assert predict_cohort(cohort_args(*names, "--model", "builtin:lesion", "--mask-dir", masks, "--out", out, scheduler=address)) == 0
    assert read_sidecar(out)["cohort"]["scored"] == 0, "masks kept: nothing to score again"
    kept = next((out.parent / "seg.csv.parts").glob("*.mask.nii.gz"))
    kept.unlink()  # a part kept without its mask (as before masks were kept)
    assert predict_cohort(cohort_args(*names, "--model", "builtin:lesion", "--mask-dir", masks, "--out", out, scheduler=address)) == 0
    assert read_sidecar(out)["cohort"]["scored"] == 1 and kept.is_file()


def test_worker_killed_mid_run_still_completes(cluster, tmp_path, engine):
    """os._exit on a worker that holds tasks, after the first result: Dask reschedules them."""
    from app import export
    from app.io import load_volume
    from app.strategies import get_strategy

    local, client = cluster
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(10):
        np.save(folder / f"v{k:02d}.npy", rng.random((24, 64, 64), dtype=np.float32))
    out = tmp_path / "scores.csv"
    killed: list[tuple[str, list]] = []

    def kill_a_busy_worker(dask_client, run):
        if killed:
            return
        busy = {w: keys for w, keys in dask_client.processing().items() if keys}
        if busy:
            victim = sorted(busy)[0]
            killed.append((victim, list(busy[victim])))
            dask_client.run(os._exit, 1, workers=[victim], on_error="ignore")

    args = cohort_args(folder, "--out", out, scheduler=local.scheduler_address)
    assert predict_cohort(args, on_result=kill_a_busy_worker) == 0
    assert killed and killed[0][1], "a worker holding tasks was killed"
    names = sorted(str(p) for p in folder.glob("*.npy"))
    volumes = [load_volume(n) for n in names]
    serial = export.csv_text([(v, engine.run(v, get_strategy("slice"))) for v in volumes])
    table = read_table(out)
    check_complete(table, {n: 24 for n in names})
    compare_rows(table, list(csv.reader(io.StringIO(serial))))
    meta = read_sidecar(out)
    assert meta["cohort"]["ok"] == 10 and all(v["status"] == "ok" for v in meta["volumes"])
    client.wait_for_workers(2, timeout=60)
    assert killed[0][0] not in client.scheduler_info()["workers"]


# ---------------------------------------------------------------- the command line


def test_cli_local_cluster_glob_then_resume(study, tmp_path, full_run):
    out = tmp_path / "x.csv"
    command = [sys.executable, "-m", "app", "predict", str(study / "**" / "*.npy"), "--workers", "2", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=240)
    assert first.returncode == 0, first.stderr
    assert "scoring 3 of 3 volumes on a local Dask cluster (2 workers)" in first.stderr
    npy = [str(study / n) for n in ("a/deep/p03.npy", "a/p02.npy", "p01.npy")]  # sorted glob matches
    reference = read_table(full_run[1])
    expected = [reference[0]] + sorted((r for r in reference[1:] if r[0] in npy), key=lambda r: (npy.index(r[0]), int(r[1])))
    table = read_table(out)
    compare_rows(table, expected)

    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "all 3 volumes already scored" in again.stderr
    assert read_table(out) == table
    assert read_sidecar(out)["cohort"]["reused"] == 3


def test_a_cohort_keys_results_by_the_normalisation_the_engine_will_apply(tmp_path):
    """Known on the client before any worker runs: as given, else the model's JSON's (a shipped
    ``builtin:NAME`` too), else none; the shipped model is hashed from its file."""
    import json

    from app.cohort.identity import effective_normalize, model_sha_on_client
    from app.inference.models import RESOURCES, file_sha256
    from app.strategies import get_strategy

    slice_ = get_strategy("slice")
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"not read here")
    assert effective_normalize(None, str(mine), slice_) == "none"
    (tmp_path / "mine.json").write_text(json.dumps({"normalize": "Window:40,400"}))
    assert effective_normalize(None, str(mine), slice_) == "window:40,400"
    assert effective_normalize("zscore", str(mine), slice_) == "zscore"
    assert effective_normalize(None, "builtin:lesion", slice_) == "window:60,200"
    assert model_sha_on_client("builtin:lesion", "slice") == file_sha256(RESOURCES / "lesion.keras")


def test_uncertainty_over_a_cohort(study, cluster, tmp_path, engine):
    """``--tta`` and ``--ensemble`` on the cluster: each volume's mean and sd as a single run gives
    them, the method in the sidecar and in each result's key (a plain run's parts are not
    reused); ``--mc-dropout`` with a model without dropout stops the run with the model's reason."""
    from app.errors import ModelError
    from app.io import load_volume
    from app.strategies import get_strategy
    from app.tools.seed_models import seed_slice_model
    from app.uncertainty import Uncertainty

    address = cluster[0].scheduler_address
    names = [str(study / "p01.npy"), str(study / "a" / "p02.npy")]
    out = tmp_path / "tta.csv"
    assert predict_cohort(cohort_args(*names, "--out", out, scheduler=address)) == 0  # plain first: its parts must not stand in
    assert predict_cohort(cohort_args(*names, "--tta", "flip-lr,shift:2", "--out", out, scheduler=address)) == 0
    table, meta = read_table(out), read_sidecar(out)
    assert table[0] == ["volume", "slice_index", "position_mm", "score", "score_sd"] and meta["cohort"]["scored"] == 2
    assert meta["runs"][0]["uncertainty"]["augmentations"] == ["identity", "flip-lr", "shift:2"]
    slice_ = get_strategy("slice")
    for name in names:
        want = engine.run(load_volume(name), slice_, engine.builtin(slice_), uncertainty=Uncertainty("tta", augmentations=("flip-lr", "shift:2")))
        got = np.array([r[3:] for r in table[1:] if r[0] == name], float)
        np.testing.assert_allclose(got, np.concatenate([want.scores, want.spread], axis=1), **TOLERANCE)

    members = []
    for seed in (1, 2):
        members.append(tmp_path / f"m{seed}.keras")
        model = seed_slice_model(16, 16, 1)
        model.set_weights([w + 0.01 * seed for w in model.get_weights()])
        model.save(members[-1])
    out = tmp_path / "ensemble.csv"
    assert predict_cohort(cohort_args(names[0], "--ensemble", ",".join(map(str, members)), "--out", out, scheduler=address)) == 0
    entry = read_sidecar(out)["runs"][0]["uncertainty"]
    assert [m["sha256"] for m in entry["members"]] == [engine.load(m).sha256 for m in members]
    loaded = [engine.load(m) for m in members]
    want = engine.run(load_volume(names[0]), slice_, loaded[0], uncertainty=Uncertainty("ensemble", paths=tuple(map(str, members))).with_members(loaded))
    np.testing.assert_allclose(np.array([r[3:] for r in read_table(out)[1:]], float), np.concatenate([want.scores, want.spread], axis=1), **TOLERANCE)

    with pytest.raises(ModelError, match="--mc-dropout needs a model with dropout layers"):
        predict_cohort(cohort_args(names[0], "--mc-dropout", "5", "--out", tmp_path / "mc.csv", scheduler=address))
    with pytest.raises(SlicewiseError, match="embedding strategy"):
        cohort_args(names[0], "--strategy", "embedding", "--tta", "flip-lr", "--out", tmp_path / "e.csv")
