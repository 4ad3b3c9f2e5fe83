"""All-or-nothing outputs, never over an input: `app.outputs.OutputSet` alone, then ``predict``
and ``render`` on a tiny full file system (a 64 KiB tmpfs where mounting is allowed, else a write
that fails with ENOSPC), with a name too long, and with each kind of input given as ``--out``."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import app.outputs
from app.errors import SlicewiseError
from app.outputs import OutputSet
from tests.dicom_writer import IOPS, write_series


def test_staged_files_appear_together_at_commit(tmp_path):
    (tmp_path / "a.csv").write_text("earlier\n")
    with OutputSet() as outs:
        outs.add(tmp_path / "a.csv", "new\n")
        outs.folder(tmp_path / "maps")
        outs.add(tmp_path / "maps" / "m.npy", b"\x93NUMPY")
        assert (tmp_path / "a.csv").read_text() == "earlier\n"  # nothing in place before the commit
        assert not (tmp_path / "maps" / "m.npy").exists()
    assert (tmp_path / "a.csv").read_text() == "new\n" and (tmp_path / "maps" / "m.npy").read_bytes() == b"\x93NUMPY"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.csv", "m.npy", "maps"]  # no temporary files left


def test_a_failure_leaves_nothing_and_keeps_earlier_files(tmp_path):
    (tmp_path / "a.csv").write_text("earlier\n")
    with pytest.raises(RuntimeError), OutputSet() as outs:
        outs.add(tmp_path / "a.csv", "new\n")
        outs.folder(tmp_path / "maps" / "deep")
        outs.add(tmp_path / "maps" / "deep" / "m.npy", b"x")
        raise RuntimeError("the work failed after two writes")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.csv"]  # the folders it made are gone too
    assert (tmp_path / "a.csv").read_text() == "earlier\n"


def test_a_failed_rename_puts_back_what_it_replaced(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).write_text(f"old {name}")
    outs = OutputSet()
    outs.add(tmp_path / "a", "new a")
    outs.add(tmp_path / "b", "new b")
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(errno.EXDEV, "boom")) if str(src).endswith(".b") else real(src, dst))
    with pytest.raises(SlicewiseError, match=r"cannot write .*b: boom"):
        outs.commit()
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"a": "old a", "b": "old b"}


def test_claims_are_checked_before_any_work(tmp_path):
    volume = tmp_path / "v.npy"
    volume.write_bytes(b"data")
    outs = OutputSet([volume])
    with pytest.raises(SlicewiseError, match="refusing to write .*v.npy: it is an input"):
        outs.claim(volume)
    with pytest.raises(SlicewiseError, match="folder .* does not exist"):
        outs.claim(tmp_path / "nowhere" / "o.csv")
    with pytest.raises(SlicewiseError, match="it is a folder"):
        outs.claim(tmp_path)
    with pytest.raises(SlicewiseError, match="File name too long"):
        outs.claim(tmp_path / ("x" * 300))
    outs.claim(tmp_path / "o.csv")
    with pytest.raises(SlicewiseError, match="write it twice"):
        outs.claim(tmp_path / "o.csv")


# -- the commands on a full disk --------------------------------------------------------------


@pytest.fixture(params=["tmpfs", "wrapper"])
def full_disk(request, tmp_path, monkeypatch):
    """A folder where writing runs out of space after ``room`` bytes: a real 64 KiB tmpfs (root,
    where mounting is allowed), else every staged write failing with ENOSPC past that room."""
    where = tmp_path / "tiny"
    where.mkdir()
    if request.param == "tmpfs":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("cannot mount a tmpfs here; the ENOSPC wrapper covers it")

        def fill(room: int) -> None:
            filler = os.open(where / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                os.write(filler, b"\0" * (64 * 1024 - room))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(filler)

        yield where, fill
        subprocess.run(["umount", str(where)], check=True)
        return
    left = [0]

    class Full:
        def __init__(self, path, mode):
            self._f = open(path, mode)  # noqa: SIM115 - closed in __exit__

        def write(self, data):
            if len(data) > left[0]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            left[0] -= len(data)
            return self._f.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def fill(room: int) -> None:
        left[0] = room
        (where / "filler").write_bytes(b"")

    monkeypatch.setattr(app.outputs, "open", Full, raising=False)
    yield where, fill


def tiny_volume(path: Path, depth: int = 6) -> Path:
    np.save(path, np.random.default_rng(0).random((depth, 16, 16), np.float32) * 100)
    return path


def test_predict_on_a_full_disk_leaves_no_output(tmp_path, full_disk, capsys):
    from app.cli import main

    where, fill = full_disk
    volume = tiny_volume(tmp_path / "v.npy")
    fill(8 * 1024)  # room for the table, not for six maps and the sidecar too
    code = main(["predict", str(volume), "--out", str(where / "p.csv"), "--saliency-dir", str(where / "maps")])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: cannot write " + str(where))
    assert [p.name for p in where.iterdir()] == ["filler"]  # no CSV, no sidecar, no maps, no folder


def test_render_on_a_full_disk_leaves_no_png(tmp_path, full_disk, capsys):
    from app.ui.launch import main

    where, fill = full_disk
    volume = tiny_volume(tmp_path / "v.npy")
    fill(4 * 1024)
    code = main(["render", str(volume), "--out", str(where / "r.png"), "--size", "400x300"])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err, err
    assert [p.name for p in where.iterdir()] == ["filler"]


def test_a_sidecar_name_too_long_is_refused_before_the_work(tmp_path, capsys):
    from app.cli import main

    volume = tiny_volume(tmp_path / "v.npy")
    out = tmp_path / ("p" * 248 + ".csv")  # the table's name fits; its sidecar's (+ ".json") does not
    code = main(["predict", str(volume), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "p.csv.json: File name too long (257 bytes; the file system allows" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.npy"]


# -- never over an input ----------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path):
    """One file of each kind a command reads, with how to name it on the command line."""
    volume = tiny_volume(tmp_path / "v.npy")
    series = tmp_path / "series"
    write_series(series, np.arange(3 * 8 * 8, dtype=np.int16).reshape(3, 8, 8), IOPS["axial"], [0, 0, 0], prefix="s")
    labels = tmp_path / "labels.csv"
    labels.write_text("slice_index,label\n0,1\n")
    model = tmp_path / "m.keras"
    model.write_bytes(b"PK a model's bytes")  # refused before anything reads it
    meta = tmp_path / "m.json"
    meta.write_text(json.dumps({"classes": ["a"]}))
    base = ["predict", str(volume), "--labels", str(labels), "--model", str(model)]
    return {
        "volume": (volume, base),
        "series file": (series / "s1.dcm", ["predict", str(series)]),
        "labels": (labels, base),
        "model": (model, base),
        "model json": (meta, base),
    }


@pytest.mark.parametrize("kind", ["volume", "series file", "labels", "model", "model json"])
@pytest.mark.parametrize("how", ["itself", "symlink", "hard link"])
def test_an_input_given_as_out_is_refused_and_unchanged(tmp_path, inputs, capsys, kind, how):
    from app.cli import main

    target, command = inputs[kind]
    before = target.read_bytes()
    out = target
    if how == "symlink":
        out = tmp_path / "link.csv"
        out.symlink_to(target)
    elif how == "hard link":
        out = tmp_path / "hard.csv"
        os.link(target, out)
    code = main([*command, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to write" in err and "it is an input" in err and len(err.strip().splitlines()) == 1, err
    assert target.read_bytes() == before
    assert not Path(f"{out}.json").exists()


def test_a_sidecar_that_would_be_the_models_json_is_refused(tmp_path, inputs, capsys):
    from app.cli import main

    _, command = inputs["model"]
    code = main([*command, "--out", str(tmp_path / "m")])  # its sidecar is m.json, the model's JSON
    assert code == 2 and "m.json: it is an input" in capsys.readouterr().err
    assert json.loads((tmp_path / "m.json").read_text()) == {"classes": ["a"]}


def test_render_refuses_its_volume_as_out(tmp_path, capsys):
    from app.ui.launch import main

    volume = tiny_volume(tmp_path / "v.npy")
    link = tmp_path / "v.png"
    link.symlink_to(volume)
    before = volume.read_bytes()
    assert main(["render", str(volume), "--out", str(link)]) == 2
    assert "refusing to write" in capsys.readouterr().err and volume.read_bytes() == before


def test_saliency_dir_that_is_a_series_folder_is_refused(tmp_path, inputs, capsys):
    from app.cli import main

    series = inputs["series file"][0].parent
    assert main(["predict", str(series), "--saliency-dir", str(series)]) == 2
    assert "it is an input" in capsys.readouterr().err
    assert sorted(p.name for p in series.iterdir()) == ["s0.dcm", "s1.dcm", "s2.dcm"]


def test_a_cohort_refuses_one_of_its_volumes_as_out_before_any_cluster(tmp_path, capsys):
    from app.cli import main

    study = tmp_path / "study"
    study.mkdir()
    for name in ("a", "b"):
        tiny_volume(study / f"{name}.npy", depth=2)
    before = (study / "b.npy").read_bytes()
    assert main(["predict", str(study / "*.npy"), "--out", str(study / "b.npy")]) == 2
    assert "refusing to write" in capsys.readouterr().err
    assert (study / "b.npy").read_bytes() == before and sorted(p.name for p in study.iterdir()) == ["a.npy", "b.npy"]


def test_the_image_half_of_an_analyze_pair_is_an_input_too(tmp_path):
    (tmp_path / "scan.hdr").write_bytes(b"h")
    (tmp_path / "scan.img").write_bytes(b"i")
    with pytest.raises(SlicewiseError, match="scan.img: it is an input of this command, .*scan.hdr"):
        OutputSet([tmp_path / "scan.hdr"]).claim(tmp_path / "scan.img")


@pytest.mark.parametrize("option", ["--sr-out", "--seg-out"])
def test_a_dicom_result_over_a_file_of_its_series_is_refused(inputs, capsys, option):
    from app.cli import main

    target, command = inputs["series file"]
    before = target.read_bytes()
    assert main([*command, option, str(target)]) == 2
    assert "refusing to write" in capsys.readouterr().err and target.read_bytes() == before
