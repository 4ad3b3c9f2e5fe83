"""The speed benchmark runs and reports in its format (no test asserts a time)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<name>[a-z_0-9]+) (?P<value>[-+0-9.e]+|nan|inf) (?P<unit>x|ms)  \(target (?P<target>[<>]= [0-9.]+): (met|NOT met); (?P<raw>.+)\)$")


def python(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


# -- the benchmark ----------------------------------------------------------------------------


@pytest.mark.gui
def test_quick_run_prints_one_line_per_figure_and_writes_json(tmp_path):
    only = ["vs_bare_call", "load_vs_nibabel", "scrub_p95_ms"]
    out = tmp_path / "bench.json"
    done = python("-m", "app.tools.bench", "--quick", "--only", ",".join(only), "--json", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [LINE.match(line) for line in done.stdout.splitlines()]
    assert all(lines), done.stdout
    assert [m["name"] for m in lines] == only
    for m in lines:
        raw = dict(item.split("=") for item in m["raw"].split("  "))
        assert len([k for k in raw if k.endswith(("_s", "_ms"))]) >= 2, m.group(0)  # the raw times behind it
        assert all(np.isfinite(float(v)) for v in raw.values())

    report = json.loads(out.read_text())
    assert report["quick"] is True and report["machine"]["cpus"] and report["machine"]["torch"]
    figures = {f["name"]: f for f in report["figures"]}
    assert list(figures) == only
    for m in lines:
        figure = figures[m["name"]]
        assert f"{figure['value']:.3g}" == m["value"] and figure["unit"] == m["unit"] and figure["target"] == m["target"]
        assert isinstance(figure["met"], bool) and figure["raw"]


def test_the_user_script_does_the_same_job_as_slicewise_predict(tmp_path, cli):
    """``whole_job_vs_script`` compares like with like: the script scores the same slices, in the
    same order, with the same model (only the resizing differs: slicewise antialiases)."""
    import nibabel as nib

    from app.tools.bench import USER_SCRIPT, brain_phantom

    volume = tmp_path / "brain.nii.gz"
    head = brain_phantom((48, 56, 24))
    nib.save(nib.Nifti1Image(np.asarray(head.dataobj) // 8, head.affine), volume)  # into the model's window (60 ± 100): slices score apart
    ours, theirs = tmp_path / "slicewise.csv", tmp_path / "script.csv"
    for done in (cli("predict", volume, "--strategy", "slice", "--out", ours), python(str(USER_SCRIPT), str(volume), str(theirs))):  # the script as a program
        assert done.returncode == 0, done.stderr[-2000:]
    a = np.loadtxt(ours, delimiter=",", skiprows=1, usecols=3)
    b = np.loadtxt(theirs, delimiter=",", skiprows=1, usecols=1)
    assert a.shape == b.shape == (24,)
    assert np.ptp(a) > 0.1, "the slices score differently, so an order or orientation mix-up would show"
    np.testing.assert_allclose(a, b, atol=0.05)  # the script clips before it resizes, slicewise after
    assert np.corrcoef(a, b)[0, 1] > 0.95


def test_unknown_figure_is_refused():
    done = python("-m", "app.tools.bench", "--only", "warp_speed")
    assert done.returncode == 2 and "unknown figure(s) warp_speed" in done.stderr


def test_bench_and_window_modules_import_lightly():
    """``app.tools.bench`` imports no Qt; the main window's modules import neither torch nor TensorFlow
    (so the window can show before they load)."""
    done = python("-c", "import sys, app.tools.bench; print(sorted({m.split('.')[0] for m in sys.modules} & {'PySide6', 'pyqtgraph', 'tensorflow'}))")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]
    done = python("-c", "import sys, app.ui.window; print('torch' in sys.modules, 'tensorflow' in sys.modules)")
    assert done.returncode == 0 and done.stdout.strip() == "False False", done.stderr[-2000:]


def test_backend_comparison_scores_on_torch_without_tensorflow(tmp_path):
    """``app.tools.backend_compare``'s torch-backend job imports no TensorFlow and scores each
    slice as ``slicewise predict`` does on TensorFlow."""
    import nibabel as nib

    from app.cli import main as cli_main
    from app.tools.bench import brain_phantom

    volume, out = tmp_path / "brain.nii.gz", tmp_path / "torch.txt"
    head = brain_phantom((48, 56, 12))
    nib.save(nib.Nifti1Image(np.asarray(head.dataobj) // 8, head.affine), volume)  # into the model's window: slices score apart
    done = python("-m", "app.tools.backend_compare", "--child", "job", "--backend", "torch", "--volume", str(volume), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1][len("RESULT ") :])["tensorflow_imported"] is False
    assert cli_main(["predict", str(volume), "--strategy", "slice", "--out", str(tmp_path / "tf.csv")]) == 0
    ours, theirs = np.loadtxt(out), np.loadtxt(tmp_path / "tf.csv", delimiter=",", skiprows=1, usecols=3)
    assert ours.shape == theirs.shape == (12,) and np.ptp(theirs) > 0.1
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
