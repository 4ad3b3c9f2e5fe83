"""Text out and in: no CSV cell a spreadsheet would run (OWASP "CSV injection"), and labels files
read strictly (UTF-8, or UTF-16 with a BOM), streamed and bounded, with errors that never quote
a file that is not what it claims to be."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app import export
from app.csv_cells import read_cell, text_cell
from app.errors import SlicewiseError
from app.prediction import Prediction
from app.review.labels import SliceLabels, VolumeKey, read_labels_csv, read_sidecar
from app.volume import Volume
from tests.dicom_writer import IOPS, write_series

INJECTED = ['=HYPERLINK("x","y").npy', "+cmd|' -C calc'!A0.npy", "@SUM(1).npy", "-2+3.npy"]


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@given(st.text())
def test_the_escape_is_reversible_and_never_starts_a_formula(text):
    cell = text_cell(text)
    assert read_cell(cell) == text
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_text_cells_are_neutralised_and_numbers_stay_numbers():
    volumes = [Volume.from_tensor(torch.zeros(2, 4, 4), source=name) for name in INJECTED]
    scores = np.array([[-0.5], [-3e-9]], np.float32)
    results = [(v, Prediction(scores, None, "slice", "m", "ab" * 32, "none", "CPU", 2, {})) for v in volumes]
    table = rows(export.csv_text(results))
    assert [r["volume"] for r in table[::2]] == ["'" + name for name in INJECTED]
    assert [r["score"] for r in table[:2]] == ["-0.5", "-3e-09"]  # negative numbers are not escaped
    assert float(table[1]["position_mm"]) == 1.0
    sidecar = export.sidecar(results)
    assert [v["path"] for v in sidecar["volumes"]] == INJECTED  # the sidecar keeps the true names


def test_predict_writes_injected_names_escaped(tmp_path, monkeypatch, capsys):
    """Single files and a DICOM series folder named like formulas, given as relative paths."""
    from app.cli import main

    monkeypatch.chdir(tmp_path)
    for name in INJECTED:
        np.save(name, np.random.default_rng(0).random((2, 16, 16), np.float32))
    write_series(tmp_path / "=cmd|x", np.zeros((2, 16, 16), np.int16), IOPS["axial"], [0, 0, 0])
    assert main(["predict", "--out", "o.csv", "--", *INJECTED, "=cmd|x"]) == 0, capsys.readouterr().err
    table = rows((tmp_path / "o.csv").read_text())
    assert sorted({r["volume"] for r in table}) == sorted("'" + name for name in [*INJECTED, "=cmd|x"])
    assert all(float(r["score"]) >= 0 for r in table)
    meta = json.loads((tmp_path / "o.csv.json").read_text())
    assert [v["path"] for v in meta["volumes"]] == [*INJECTED, "=cmd|x"]


def test_cohort_table_escapes_the_names_of_its_glob(tmp_path):
    """The cohort's table is assembled from its parts under the names the glob gave (serial: the
    parts are written here as the client writes them, no cluster)."""
    from app.cohort.store import Parts, assemble

    parts = Parts(tmp_path / "o.csv")
    parts.create()
    done = []
    for k, name in enumerate(INJECTED):
        volume = Volume.from_tensor(torch.zeros(2, 4, 4), source=f"scored/as/{name}")
        prediction = Prediction(np.full((2, 1), -k, np.float32), None, "slice", "m", "ab" * 32, "none", "CPU", 2, {})
        parts.write(f"key{k}", export.csv_text([(volume, prediction)]), {})
        done.append((name, f"key{k}"))
    table = rows(assemble(parts, done))
    assert [r["volume"] for r in table[::2]] == ["'" + name for name in INJECTED]
    assert [r["score"] for r in table[::2]] == ["0", "-1", "-2", "-3"]


def test_a_labels_file_keeps_a_user_named_like_a_formula(tmp_path):
    volume = Volume.from_tensor(torch.zeros(3, 4, 4), source=tmp_path / "v.npy")
    labels = SliceLabels(VolumeKey("ab" * 32, depth=3), "v.npy", tmp_path)
    labels.update({1: "1"}, user="=2+2", time="-1")
    line = labels.path.read_text().splitlines()[-1]
    assert line == "1,1,'=2+2,'-1"
    _, entries = read_sidecar(labels.path)
    assert (entries[1].user, entries[1].time) == ("=2+2", "-1")
    del volume


# -- labels in ----------------------------------------------------------------------------------

TEXT = "slice_index,label\n0,1\n2,0\n"


@pytest.mark.parametrize(
    "encoded",
    [TEXT.encode(), codecs.BOM_UTF8 + TEXT.encode(), codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be")],
    ids=["utf-8", "utf-8 with BOM", "utf-16 le", "utf-16 be"],
)
def test_labels_in_utf8_and_utf16_with_a_bom(tmp_path, encoded):
    path = tmp_path / "labels.csv"
    path.write_bytes(encoded.replace(b"\n", b"\r\n") if b"\0" not in encoded else encoded)
    assert read_labels_csv(path, depth=3) == {0: "1", 2: "0"}


def test_latin1_labels_are_refused_naming_the_line(tmp_path, capsys):
    from app.cli import main

    path = tmp_path / "labels.csv"
    path.write_bytes("slice_index,label,note\n0,1,ok\n1,0,Jürgen\n".encode("latin-1"))
    with pytest.raises(SlicewiseError, match=r"labels.csv, line 3: not UTF-8 text \(invalid .*\); save the labels file as UTF-8"):
        read_labels_csv(path)
    np.save(tmp_path / "v.npy", np.zeros((3, 8, 8), np.float32))
    assert main(["predict", str(tmp_path / "v.npy"), "--labels", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 3: not UTF-8" in err and "Traceback" not in err


def test_a_slice_labelled_both_ways_is_an_error(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("slice_index,label\n4,1\n5,0\n4,0\n")
    with pytest.raises(SlicewiseError, match="line 4: slice 4 is labelled both 1 and 0"):
        read_labels_csv(path, depth=10)


def test_a_labels_path_to_another_file_is_never_quoted(tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n")
    for target in (secret, Path("/etc/passwd")):
        link = tmp_path / f"labels{len(str(target))}.csv"
        link.symlink_to(target)
        with pytest.raises(SlicewiseError) as caught:
            read_labels_csv(link, depth=10)
        first = target.read_text().splitlines()[0] if target.is_file() else "root:"
        message = str(caught.value).replace(str(link), "FILE")
        assert message.startswith("FILE, line 1: not a labels CSV") and first not in message and "root" not in message and "\n" not in message


def test_dev_zero_is_refused_before_a_byte_is_read(tmp_path):
    link = tmp_path / "labels.csv"
    link.symlink_to("/dev/zero")
    with pytest.raises(SlicewiseError, match="not a regular file"):
        read_labels_csv(link)


def peak_bytes(action) -> tuple[int, object]:
    tracemalloc.start()
    try:
        try:
            result = action()
        except SlicewiseError as exc:
            result = exc
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def test_a_200_mb_labels_file_stays_small_in_memory(tmp_path):
    path = tmp_path / "labels.csv"
    with open(path, "wb") as f:  # sparse: 200 MB that take no disk
        f.write(TEXT.encode())
        f.truncate(200 << 20)
    peak, result = peak_bytes(lambda: read_labels_csv(path, depth=3))
    assert isinstance(result, SlicewiseError) and "may hold at most 16 MB" in str(result)
    assert peak < 1 << 20


def test_labels_are_streamed_and_rows_past_the_volume_stop_the_reading(tmp_path):
    many = tmp_path / "many.csv"
    many.write_text("slice_index,label,note\n" + f"1,1,{'n' * 1000}\n" * 8000)  # 8 MB of one valid row, repeated
    peak, result = peak_bytes(lambda: read_labels_csv(many, depth=3))
    assert result == {1: "1"} and peak < 1 << 20  # never the whole file in memory
    beyond = tmp_path / "beyond.csv"
    beyond.write_text("slice_index,label\n0,1\n7,1\n" + "1,1\n" * 1_000_000)
    with pytest.raises(SlicewiseError, match="line 3: slice 7 does not exist"):
        read_labels_csv(beyond, depth=3)


def test_a_file_without_an_end_of_line_is_refused(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"slice_index,label\n" + b"x" * (1 << 20))
    with pytest.raises(SlicewiseError, match="line 2: longer than 64 KiB"):
        read_labels_csv(path)
    assert os.path.getsize(path) > 1 << 20


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzzed_labels_files_read_or_fail_in_one_line(data):
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".csv") as f:
        f.write(data)
        f.flush()
        try:
            read_labels_csv(f.name, depth=50)
        except SlicewiseError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 300


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    with pytest.raises(SlicewiseError, match="not a regular file"):
        read_labels_csv(fifo)


def test_reading_stops_at_the_limit_whatever_the_size_says():
    from app.text_input import text_lines

    with pytest.raises(SlicewiseError, match="more than 100 bytes"):
        list(text_lines("/proc/self/maps", "labels", limit=100))  # /proc says 0 bytes
