"""``slicewise predict`` end to end, as a user runs it: real files, real models; a subprocess
where the program itself is under test (its exit, its output streams), else in this process
(the ``cli`` fixture: the same command without a fresh TensorFlow import)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def slicewise(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def real_nifti() -> Path:
    """A real anatomical image that nibabel ships in its package."""
    path = NIBABEL_DATA / "anatomical.nii"
    assert path.is_file()
    return path


@pytest.mark.parametrize("strategy", ["slice", "temporal", "embedding"])
def test_predict_real_nifti_each_strategy(tmp_path, real_nifti, strategy, cli):
    out = tmp_path / f"{strategy}.csv"
    done = (slicewise if strategy == "slice" else cli)("predict", real_nifti, "--strategy", strategy, "--out", out)  # one as a program
    assert done.returncode == 0, done.stderr
    depth = nib.as_closest_canonical(nib.load(real_nifti)).shape[2]
    rows = read_csv(out)
    assert len(rows) == depth
    assert list(rows[0]) == ["volume", "slice_index", "position_mm", "score"]
    assert [int(r["slice_index"]) for r in rows] == list(range(depth))
    positions = np.array([float(r["position_mm"]) for r in rows])
    assert np.all(np.diff(positions) > 0), "axial slices run inferior → superior"
    scores = np.array([float(r["score"]) for r in rows])
    assert np.isfinite(scores).all()

    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["strategy"] == strategy
    assert meta["model"]["source"].startswith("built-in")
    assert len(meta["model"]["sha256"]) == 64
    assert meta["device"].startswith("CPU")
    assert meta["slicewise_version"]
    volume = meta["volumes"][0]
    assert volume["path"] == str(real_nifti) and len(volume["sha256"]) == 64
    assert volume["shape"][0] == depth and volume["axis"] == "axial"
    assert len(volume["spacing_mm"]) == 3 and volume["timings_s"]["total_s"] > 0
    assert (volume["volume_score"] is not None) == (strategy == "embedding")
    assert meta["normalize"]


def test_predict_user_model_several_volumes_to_stdout(tmp_path):
    """A user's .keras model with two outputs, two .npy volumes, the table on stdout."""
    import keras

    from app.tools.seed_models import seed_temporal_model

    model_path = tmp_path / "two.keras"
    seed_temporal_model(4, 16 * 16, outputs=2).save(model_path)
    rng = np.random.default_rng(0)
    paths = []
    for name, depth in (("a", 6), ("b", 9)):
        paths.append(tmp_path / f"{name}.npy")
        np.save(paths[-1], rng.random((depth, 16, 16), dtype=np.float32))
    done = slicewise("predict", *paths, "--strategy", "temporal", "--model", model_path, "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    assert list(rows[0]) == ["volume", "slice_index", "position_mm", "score_0", "score_1"]
    assert [r["volume"] for r in rows] == [str(paths[0])] * 6 + [str(paths[1])] * 9
    del keras


@pytest.mark.parametrize(
    "make_args, reason",
    [
        (lambda d: ["predict", d / "missing.nii.gz"], "missing.nii.gz"),
        (lambda d: ["predict", d / "text.nii"], "text.nii"),
        (lambda d: ["predict", d / "ok.npy", "--strategy", "nonsense"], "invalid choice"),
        (lambda d: ["predict", d / "ok.npy", "--model", d / "nomodel.keras"], "nomodel.keras"),
        (lambda d: ["predict", d / "ok.npy", "--normalize", "window:40"], "window"),
        (lambda d: ["predict", d / "ok.npy", "--out", d / "no" / "such" / "dir.csv"], "does not exist"),
    ],
)
def test_bad_input_exit_code_2_one_line_no_output(tmp_path, make_args, reason, cli):
    (tmp_path / "text.nii").write_text("this is not an image\n")
    np.save(tmp_path / "ok.npy", np.zeros((3, 8, 8), np.float32))
    out = tmp_path / "out.csv"
    args = make_args(tmp_path)
    run = slicewise if reason in ("missing.nii.gz", "nomodel.keras") else cli  # two as a program: before and after TensorFlow starts
    done = run(*args, *([] if "--out" in args else ["--out", out]))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith(("error:", "slicewise predict: error:")) and reason in done.stderr
    assert not out.exists() and not out.with_name("out.csv.json").exists()


def test_model_that_does_not_fit(tmp_path, cli):
    from app.tools.seed_models import seed_slice_model

    seed_slice_model(32, 32, 3).save(tmp_path / "rgb.keras")
    np.save(tmp_path / "two_channels.npy", np.zeros((3, 32, 32, 2), np.float32))
    done = cli("predict", tmp_path / "two_channels.npy", "--model", tmp_path / "rgb.keras", "--out", tmp_path / "o.csv")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: rgb.keras (input (32, 32, 3)) does not fit the volume 3×32×32×2 (slices × height × width × channels): "
        "model expects 3 channels per slice; the volume has 2"
    ]
    assert not (tmp_path / "o.csv").exists()


def test_help_and_version_do_not_import_tensorflow():
    code = "import sys; from app.cli import build_parser; build_parser(); print('tensorflow' in sys.modules, 'PySide6' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"]
    assert slicewise("--version").stdout.startswith("slicewise ")


@pytest.mark.parametrize(
    "make_model, strategy, expected",
    [
        (  # wrong rank: a 3D-volume model given to the slice strategy
            lambda: keras_model((4, 8, 8, 1), "Conv3D"),
            "slice",
            r"error: model\.keras \(input \(4, 8, 8, 1\)\) does not fit the volume 3×10×10×1 \(slices × height × width × channels\): "
            r"the slice strategy needs a model that takes one slice",
        ),
        (  # a model that raises on this volume: its Reshape fits 8×8 slices only
            lambda: keras_model((None, None, 1), "Reshape"),
            "slice",
            r"error: model\.keras \(input \(None, None, 1\)\) failed on the volume 3×10×10×1 \(slices × height × width × channels\) "
            r"\(a batch of shape \(3, 10, 10, 1\)\): Reshape: .*target_shape=\(64,\)",
        ),
    ],
)
def test_models_that_do_not_fit_name_both_shapes(tmp_path, capsys, make_model, strategy, expected):
    from app.cli import main

    make_model().save(tmp_path / "model.keras")
    np.save(tmp_path / "volume.npy", np.random.default_rng(0).random((3, 10, 10), np.float32))
    out = tmp_path / "o.csv"
    code = main(["predict", str(tmp_path / "volume.npy"), "--model", str(tmp_path / "model.keras"), "--strategy", strategy, "--out", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and re.match(expected, lines[0]), lines
    assert not out.exists()


def keras_model(input_shape: tuple, kind: str):
    import keras
    from keras import layers

    inputs = keras.Input(input_shape)
    if kind == "Conv3D":
        x = layers.GlobalAveragePooling3D()(layers.Conv3D(2, 3, padding="same")(inputs))
    else:
        x = layers.Reshape((64,))(inputs)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))


def test_predict_several_strategies_a_column_each(tmp_path, capsys):
    from app.cli import main

    np.save(tmp_path / "v.npy", np.random.default_rng(1).random((5, 20, 20), np.float32) * 300)
    out = tmp_path / "runs.csv"
    assert main(["predict", str(tmp_path / "v.npy"), "--strategy", "slice", "--strategy", "temporal", "--out", str(out)]) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["volume", "slice_index", "position_mm", "score_slice", "score_temporal"] and len(rows) == 5
    meta = json.loads(out.with_name("runs.csv.json").read_text())
    assert [(r["name"], r["strategy"], r["channels"]) for r in meta["runs"]] == [("slice", "slice", "replicate"), ("temporal", "temporal", "replicate")]
    assert [r["name"] for r in meta["volumes"][0]["runs"]] == ["slice", "temporal"]
    single = tmp_path / "one.csv"
    assert main(["predict", str(tmp_path / "v.npy"), "--out", str(single)]) == 0
    assert [float(r["score"]) for r in read_csv(single)] == [float(r["score_slice"]) for r in rows]


def test_predict_channels_output_and_classes(tmp_path, capsys):
    import keras
    from keras import layers

    from app.cli import main

    keras.utils.set_random_seed(6)
    inputs = keras.Input((12, 12, 3))
    x = layers.Flatten()(inputs)
    model = keras.Model(inputs, [layers.Dense(2, activation="softmax", name="kind")(x), layers.Dense(1, name="size")(x)])
    model.save(tmp_path / "heads.keras")
    volume = np.random.default_rng(2).random((4, 12, 12), np.float32) * 2000 - 500
    np.save(tmp_path / "ct.npy", volume)
    out = tmp_path / "o.csv"
    args = ["predict", str(tmp_path / "ct.npy"), "--model", str(tmp_path / "heads.keras"), "--out", str(out)]
    assert main([*args, "--channels", "windows:40,80;80,200;600,2800", "--classes", "clear,bleed"]) == 0
    rows = read_csv(out)
    assert list(rows[0])[3:] == ["score_clear", "score_bleed"]
    windows = np.stack([np.clip((volume - (c - w / 2)) / w, 0, 1) for c, w in ((40, 80), (80, 200), (600, 2800))], axis=-1)
    expected = model(windows, training=False)[0].numpy()
    np.testing.assert_allclose([[float(r["score_clear"]), float(r["score_bleed"])] for r in rows], expected, rtol=1e-5, atol=1e-6)
    run = json.loads(out.with_name("o.csv.json").read_text())["runs"][0]
    assert (run["channels"], run["output"], run["outputs"], run["classes"], run["output_activation"], run["normalize"]) == (
        "windows:40,80;80,200;600,2800", "kind", ["kind", "size"], ["clear", "bleed"], "softmax", "none"
    )  # fmt: skip
    assert main([*args, "--output", "size", "--channels", "neighbors"]) == 0
    assert list(read_csv(out)[0])[3:] == ["score"]
    assert json.loads(out.with_name("o.csv.json").read_text())["runs"][0]["channels"] == "neighbors:1"
    capsys.readouterr()
    assert main([*args, "--channels", "neighbours:x"]) == 2
    assert "bad channel recipe 'neighbours:x'" in capsys.readouterr().err
    assert main([*args, "--output", "nope"]) == 2
    assert "has no output 'nope'; its outputs: kind, size" in capsys.readouterr().err


def test_cohort_refuses_options_it_cannot_score(tmp_path, capsys):
    from app.cli import main

    (tmp_path / "study").mkdir()
    np.save(tmp_path / "study" / "a.npy", np.zeros((2, 8, 8), np.float32))
    code = main(["predict", str(tmp_path / "study"), "--channels", "neighbors:1", "--out", str(tmp_path / "o.csv")])
    assert code == 2 and "drop --channels" in capsys.readouterr().err
