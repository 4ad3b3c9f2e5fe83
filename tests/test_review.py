"""``slicewise predict`` as a reviewer uses it headless: ``--saliency-dir`` with
``--saliency-slices``, and ``--labels`` with the agreement printed and put in the sidecar."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from app.cli import main
from app.errors import SlicewiseError
from app.phantom import write_demo
from app.review.agreement import agreement
from app.review.headless import parse_slice_selection


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small phantom and its ground-truth labels."""
    return write_demo(tmp_path_factory.mktemp("demo"), seed=20_001, depth=24, size=64)


def read_table(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_saliency_maps_of_the_top_slices(demo, tmp_path, engine, capsys):
    image, _ = demo
    out, maps = tmp_path / "s.csv", tmp_path / "maps"
    assert main(["predict", str(image), "--out", str(out), "--saliency-dir", str(maps), "--saliency-slices", "top:3"]) == 0
    scores = np.array([float(row["score"]) for row in read_table(out)])
    top = sorted(np.argsort(-scores)[:3].tolist())
    assert sorted(p.name for p in maps.glob("*.npy")) == [f"slice_{i:04d}.npy" for i in top]
    for i in top:
        m = np.load(maps / f"slice_{i:04d}.npy", allow_pickle=False)
        assert m.dtype == np.float32 and m.shape == (64, 64) and 0 <= m.min() and m.max() == pytest.approx(1)
    about = json.loads((maps / "saliency.json").read_text())
    assert about["slices"] == top and about["method"] == "Grad-CAM (layer conv2d_2)" and about["strategy"] == "slice"
    assert "wrote 3 saliency maps (Grad-CAM (layer conv2d_2))" in capsys.readouterr().err


def test_saliency_of_listed_slices_per_run(demo, tmp_path, engine):
    image, _ = demo
    maps = tmp_path / "maps"
    args = ["predict", str(image), "--strategy", "slice", "--strategy", "temporal", "--saliency-dir", str(maps), "--saliency-slices", "3,7"]
    assert main([*args, "--out", str(tmp_path / "s.csv")]) == 0
    for run in ("slice", "temporal"):
        assert sorted(p.name for p in (maps / run).glob("*.npy")) == ["slice_0003.npy", "slice_0007.npy"]


def test_labels_give_a_label_column_and_the_agreement(demo, tmp_path, engine, capsys):
    image, labels_csv = demo
    out = tmp_path / "s.csv"
    assert main(["predict", str(image), "--labels", str(labels_csv), "--threshold", "0.4", "--out", str(out)]) == 0
    rows = read_table(out)
    truth = {int(r["slice_index"]): r["label"] for r in read_table(labels_csv)}
    assert [r["label"] for r in rows] == [truth[i] for i in range(len(rows))]
    expected = agreement(np.array([float(r["score"]) for r in rows]), truth, 0.4)
    err = capsys.readouterr().err
    assert f"agreement of score with {labels_csv}:" in err and expected.summary().splitlines()[1] in err
    section = json.loads(out.with_name("s.csv.json").read_text())["labels"]
    assert section["agreement"]["score"] == json.loads(json.dumps(expected.as_dict()))
    assert section["positive"] == sum(v == "1" for v in truth.values()) and section["threshold"] == 0.4
    assert section["users"] and section["labelled_from"] and section["source"] == str(labels_csv)


def test_labels_on_stdout_table(demo, engine, capsys):
    image, labels_csv = demo
    assert main(["predict", str(image), "--labels", str(labels_csv)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(",score,label")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--saliency-slices", "top:0"], "top:N needs a whole number"),
        (["--saliency-slices", "a,b"], "use all, top:N or slice indices"),
        (["--saliency-slices", "99", "--saliency-dir", "{tmp}/m"], "slice 99 does not exist"),
        (["--labels", "{tmp}/missing.csv"], "cannot read labels"),
        (["{image}", "--labels", "{labels}"], "--labels holds the labels of one volume; 2 volumes"),
    ],
)
def test_bad_review_options_are_one_error_line(demo, tmp_path, engine, capsys, extra, message):
    image, labels_csv = demo
    extra = [e.format(tmp=tmp_path, labels=labels_csv, image=image) for e in extra]
    assert main(["predict", str(image), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]


def test_slice_selection():
    scores = np.array([0.1, 0.9, np.nan, 0.5, 0.7])
    assert parse_slice_selection("all").choose(scores) == [0, 1, 2, 3, 4]
    assert parse_slice_selection("top:2").choose(scores) == [1, 4]
    assert parse_slice_selection("top:9").choose(scores) == [0, 1, 3, 4], "unscored slices are never the top"
    assert parse_slice_selection(" 4, 0 ,4").choose(scores) == [0, 4]
    with pytest.raises(SlicewiseError):
        parse_slice_selection("-1")
