"""The speed benchmark runs and reports in its format (no test asserts a time), and the code
behind its figures gives exactly the results of the plain code it replaced."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

import app.io.nibabel_formats as nibabel_formats
from app import preprocessing
from app.errors import LoadError, ModelError
from app.io import load_volume
from app.volume import AXES, Volume

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




# -- gzip-compressed images: read straight into float32, as nibabel would read them -----------


def _images(tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    stored = rng.integers(-1000, 2000, (33, 40, 27)).astype(np.int16)
    scaled = nib.Nifti1Image(stored, np.diag([-0.9, 1.1, 2.5, 1]))
    scaled.header.set_slope_inter(0.37, -12.5)
    series = nib.Nifti1Image(rng.integers(0, 255, (10, 11, 12, 3)).astype(np.int16), np.eye(4))
    images = {
        "int16.nii.gz": nib.Nifti1Image(stored, np.diag([0.9, 1.1, 2.5, 1])),
        "scaled.nii.gz": scaled,
        "big_endian_f8.nii.gz": nib.Nifti1Image(rng.random((20, 21, 22)).astype(">f8"), np.eye(4)),
        "nan.nii.gz": nib.Nifti1Image(np.where(rng.random((8, 9, 10)) > 0.9, np.nan, 1.0).astype(np.float32), np.eye(4)),
        "series.nii.gz": series,
        "pair.img.gz": nib.Nifti1Pair(stored, np.eye(4)),
        "image.mgz": nib.MGHImage(rng.random((20, 21, 22)).astype(np.float32), np.eye(4)),
    }
    paths = {}
    for name, image in images.items():
        nib.save(image, tmp / name)
        paths[name] = tmp / name
    raw = images["int16.nii.gz"].to_bytes()
    members = tmp / "members.nii.gz"  # concatenated gzip members (and zero padding), as some tools write
    members.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:5000]) + b"\0\0\0\0" + gzip.compress(raw[5000:]))
    paths["members.nii.gz"] = members
    return paths


@pytest.fixture(scope="module")
def gz_images(tmp_path_factory) -> dict[str, Path]:
    return _images(tmp_path_factory.mktemp("gz"))


def _load_both(monkeypatch, path: Path, **kwargs) -> tuple[Volume, Volume, list[bool]]:
    used: list[bool] = []
    fast = nibabel_formats._fill_from_gzip

    def spy(*args):
        used.append(fast(*args))
        return used[-1]

    with monkeypatch.context() as m:
        m.setattr(nibabel_formats, "_fill_from_gzip", spy)
        ours = load_volume(path, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(nibabel_formats, "_fill_from_gzip", lambda *args: False)
        plain = load_volume(path, **kwargs)
    return ours, plain, used


@pytest.mark.parametrize("name", ["int16.nii.gz", "scaled.nii.gz", "big_endian_f8.nii.gz", "nan.nii.gz", "pair.img.gz", "image.mgz", "members.nii.gz"])
@pytest.mark.parametrize("axis", AXES)
def test_gzip_fast_path_gives_nibabels_values(monkeypatch, gz_images, name, axis):
    ours, plain, used = _load_both(monkeypatch, gz_images[name], axis=axis)
    assert used == [True]
    assert np.array_equal(ours.data.numpy(), plain.data.numpy(), equal_nan=True)
    assert ours.sha256 == plain.sha256 and np.array_equal(ours.affine, plain.affine) and ours.data.is_contiguous()


def test_gzip_fast_path_reads_one_volume_of_a_series(monkeypatch, gz_images):
    for index in (0, 2):
        ours, plain, used = _load_both(monkeypatch, gz_images["series.nii.gz"], volume_index=index)
        assert used == [True] and np.array_equal(ours.data.numpy(), plain.data.numpy())
    assert np.array_equal(ours.data.numpy()[..., 0], np.asarray(nib.load(gz_images["series.nii.gz"]).dataobj[..., 2]).transpose(2, 1, 0)[:, ::-1, :])


def test_damaged_gzip_falls_back_to_nibabels_error(tmp_path, gz_images):
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(gz_images["int16.nii.gz"].read_bytes()[:-3000])
    with pytest.raises(LoadError, match=r"^cut\.nii\.gz: truncated gzip stream"):
        load_volume(path)


# -- normalisation and checks, in NumPy: the same numbers as in torch --------------------------


def _torch_reference(norm: preprocessing.Normalization, x: torch.Tensor) -> torch.Tensor:
    if norm.spec != "none":
        x = x.sub(norm.offset).mul_(1.0 / norm.scale)
        if norm.clip:
            x.clamp_(0.0, 1.0)
    if norm.zero_nonfinite:
        x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x


@pytest.mark.parametrize("spec", ["none", "minmax", "zscore", "window:40,400"])
@pytest.mark.parametrize("zero_nonfinite", [False, True])
def test_normalisation_matches_torch(spec, zero_nonfinite):
    x = torch.randn(5, 16, 12, 2, generator=torch.Generator().manual_seed(3)) * 500
    x[1, 2, 3, 0], x[2, 0, 0, 1], x[3, 5, 5, 0] = float("nan"), float("inf"), -float("inf")
    norm = preprocessing.fit(spec, x, zero_nonfinite=zero_nonfinite)
    ours = norm(x)
    if spec == "none" and not zero_nonfinite:
        assert ours is x
    else:
        assert ours.dtype == torch.float32 and ours.is_contiguous() and ours.data_ptr() != x.data_ptr()
    assert torch.equal(torch.nan_to_num(ours, nan=-7.0), torch.nan_to_num(_torch_reference(norm, x.clone()), nan=-7.0))
    assert torch.isfinite(x[0]).all(), "the input is left alone"


def test_nonfinite_slices_matches_a_plain_scan():
    x = torch.randn(40, 8, 9, 1, generator=torch.Generator().manual_seed(4))
    x[3, 1, 1, 0], x[17, 0, 0, 0], x[39, 7, 8, 0] = float("nan"), float("inf"), -float("inf")
    x[20] = 3e38  # finite, but its sum overflows
    plain = [d for d in range(40) if not torch.isfinite(x[d]).all()]
    assert preprocessing.nonfinite_slices(x).tolist() == plain == [3, 17, 39]
    assert preprocessing.nonfinite_slices(x[:0]).tolist() == []


def test_a_model_that_raises_is_a_model_error(engine):
    """The engine calls a traced model through its concrete function, traced on the first call:
    a model that cannot run still fails there, as a ModelError naming it, its input, the volume
    and the batch, then the reason."""
    import keras

    from app.inference.models import LoadedModel, spec_of
    from app.strategies import get_strategy

    class Broken(keras.Model):
        def call(self, x, training=False):
            raise ValueError("this model always fails")

    spec = spec_of(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]))
    volume = Volume.from_tensor(torch.rand(4, 8, 8))
    with pytest.raises(ModelError, match=r"^broken \(input \(8, 8, 1\)\) failed on the volume 4×8×8×1 \(slices × height × width × channels\) \(a batch of shape \(4, 8, 8, 1\)\): .*this model always fails"):
        engine.run(volume, get_strategy("slice"), LoadedModel(Broken(), "broken", "", "none", spec))
