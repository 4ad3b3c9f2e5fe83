"""Small inputs stay small: the JSON beside a model (size, depth, a schema per key), channel
recipes and normalisations (finite, capped, short messages), numbers on the command line, and
arrays whose declared size is checked before a byte of them is read."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.channels import parse_recipe
from app.errors import LoadError, ModelError, SlicewiseError
from app.inference.metadata import MAX_DEPTH, parse_metadata
from app.preprocessing import parse_spec

# -- the model's JSON ---------------------------------------------------------------------------


def parse(value) -> dict:
    return parse_metadata(json.dumps(value).encode(), "m.json")


def test_deep_nesting_is_a_clear_error_not_a_recursion_error():
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    with pytest.raises(ModelError, match=f"m.json: the model's metadata is nested more than {MAX_DEPTH} levels deep"):
        parse_metadata(b'{"notes": ' + deep + b"}", "m.json")
    assert parse({"notes": {"a": [[["fine"]]]}}) == {"notes": {"a": [[["fine"]]]}}  # '[' inside strings do not count either
    assert parse({"notes": "[" * 100})["notes"] == "[" * 100


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"classes": 3}, '"classes" must be a list of 1 to 4096 class names, not a number'),
        ({"classes": ["a", ""]}, '"classes" must be a list of non-empty text names, not a list'),
        ({"classes": ["a", "a"]}, '"classes" must be a list of different names'),
        ({"classes": {"out": "a,b"}}, '"classes" must be an object mapping output names to lists of class names, not an object'),
        ({"classes": True}, '"classes" must be .*, not a boolean'),
        ({"channels": 3}, '"channels" must be a channel recipe as text .*, not a number'),
        ({"channels": {"windows": 1}}, '"channels" must be a channel recipe as text .*, not an object'),
        ({"channels": "windows:40,nan"}, '"channels" must be a valid channel recipe'),
        ({"slice_shape": 64}, r'"slice_shape" must be a list of 3 whole numbers 1…65536 \(\[height, width, channels\]\), not a number'),
        ({"slice_shape": [64, 64]}, '"slice_shape" must be a list of 3 whole numbers'),
        ({"slice_shape": [64, -1, 1]}, '"slice_shape" must be a list of 3 whole numbers'),
        ({"slice_shape": [64, 64.5, 1]}, '"slice_shape" must be a list of 3 whole numbers'),
        ({"slice_shape": [64, True, 1]}, '"slice_shape" must be a list of 3 whole numbers'),
        ({"slice_shape": ["64", 64, 1]}, '"slice_shape" must be a list of 3 whole numbers'),
        ({"normalize": ["window", 40, 400]}, '"normalize" must be a normalisation as text .*, not a list'),
        ({"normalize": "window:nan,400"}, '"normalize" must be a valid normalisation .*finite'),
        ({"output": 0}, '"output" must be non-empty text, not a number'),
        ({"background": -1}, '"background" must be a class index'),
        ({"stride": 0}, '"stride" must be a whole number 1…1024, not a number'),
        ({"stride": "8"}, '"stride" must be a whole number 1…1024, not text'),
        ({"activation": ["sigmoid"]}, '"activation" must be non-empty text, not a list'),
        ({"layout": "nchw"}, '"layout" must be "NCHW" or "NHWC", not text'),
        ([1, 2], "the model's metadata must be a JSON object, not a list"),
    ],
)
def test_each_known_key_is_checked_by_type_and_range(meta, message):
    with pytest.raises(ModelError, match=message):
        parse(meta)


def test_good_metadata_and_unknown_keys_pass():
    meta = {
        "classes": {"kind": ["none", "bleed"], "size": ["mm"]},
        "channels": "windows:40,80;80,200",
        "slice_shape": [64, 64, 1],
        "normalize": "window:60,200",
        "output": "kind",
        "background": "none",
        "stride": 16,
        "activation": "softmax",
        "layout": "NHWC",
        "held_out_auc": 0.99,
        "anything": {"nested": [1, None]},
        "slice_hint": None,
    }
    assert parse(meta) == meta


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"stride": NaN}', "NaN is not a JSON number"),
        (b'{"a": Infinity}', "Infinity is not a JSON number"),
        (b"{not json", "cannot read the model's metadata: Expecting property name"),
        (b'{"a": "\xff"}', "not UTF-8 text"),
        (b" " * (2 << 20), "more than 1024 KiB"),
    ],
)
def test_bad_json_is_a_one_line_error(data, message):
    with pytest.raises(ModelError, match=message) as caught:
        parse_metadata(data, "m.json")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
known = st.sampled_from(["classes", "channels", "slice_shape", "normalize", "output", "background", "stride", "activation", "layout"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(known | st.text(max_size=6), json_values, max_size=5))
def test_fuzzed_metadata_parses_or_is_a_model_error(meta):
    try:
        parse(meta)
    except ModelError as exc:
        assert "\n" not in str(exc) and len(str(exc)) <= 300


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_bytes_parse_or_are_a_model_error(data):
    try:
        parse_metadata(data, "m.json")
    except ModelError:
        pass


def test_a_model_json_that_is_wrong_fails_the_load(tmp_path, engine):
    import keras

    inputs = keras.Input((8, 8, 1))
    keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs))).save(tmp_path / "m.keras")
    (tmp_path / "m.json").write_text(json.dumps({"slice_shape": 8}))
    with pytest.raises(ModelError, match='m.json: "slice_shape" must be a list of 3 whole numbers'):
        engine.load(tmp_path / "m.keras")


# -- channel recipes and normalisations -----------------------------------------------------------


def test_thousands_of_windows_are_a_short_error():
    recipe = "windows:" + ";".join(f"{k},{k + 10}" for k in range(50_000))
    with pytest.raises(SlicewiseError, match="at most 16 windows") as caught:
        parse_recipe(recipe)
    assert len(str(caught.value)) < 200
    assert len(parse_recipe("windows:" + ";".join(["40,80"] * 16)).windows) == 16
    with pytest.raises(SlicewiseError, match="at most 16 windows"):
        parse_recipe("windows:" + ";".join(["40,80"] * 17))


@pytest.mark.parametrize(
    "spec",
    ["windows:nan,80", "windows:40,inf", "windows:1e400,80", "windows:40,0", "windows:40,1e-30", "windows:1e20,80", "neighbors:100000"],
)
def test_bad_recipes_are_refused(spec):
    with pytest.raises(SlicewiseError, match="bad channel recipe") as caught:
        parse_recipe(spec)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    "spec", ["window:nan,400", "window:40,nan", "window:1e400,400", "window:40,1e999", "window:40,-1", "window:1e300,1", "window:40,1e-40"]
)
def test_bad_windows_are_refused(spec):
    with pytest.raises(SlicewiseError, match="bad window"):
        parse_spec(spec)


# -- numbers on the command line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--normalize", "window:nan,400"),
        ("--normalize", "window:1e999,1"),
        ("--threshold", "nan"),
        ("--threshold", "inf"),
        ("--threshold", "1e999"),
        ("--batch-size", "0"),
        ("--batch-size", "-1"),
        ("--batch-size", "99999999999999999999"),
        ("--slab", "0"),
        ("--volume-index", "-1"),
        ("--workers", "0"),
    ],
)
def test_command_line_numbers_must_be_finite_and_in_range(tmp_path, capsys, option, value):
    from app.cli import main

    np.save(tmp_path / "v.npy", np.zeros((2, 8, 8), np.float32))
    with pytest.raises(SystemExit) as done:
        main(["predict", str(tmp_path / "v.npy"), f"{option}={value}", "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and f"error: argument {option}" in err and "Traceback" not in err, err
    assert not (tmp_path / "o.csv").exists()


# -- arrays: declared sizes checked before reading ------------------------------------------------


def npz_declaring(shape: tuple, dtype: str = "<f4") -> bytes:
    """An .npz whose one member's .npy header declares ``shape`` and holds almost no data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("volume.npy", header.getvalue() + b"\0" * 64)
    return buffer.getvalue()


def test_an_npz_declaring_10_gb_is_refused_without_inflating(tmp_path, monkeypatch):
    import app.io.arrays
    from app.io import load_volume

    monkeypatch.setattr(app.io.arrays, "available_memory", lambda: 8 << 30)  # the budget the issue measured against
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(npz_declaring((2500, 1024, 1024)))  # 10 GB of float32
    assert bomb.stat().st_size < 1024
    tracemalloc.start()
    try:
        with pytest.raises(LoadError, match=r"bomb.npz: too large to open: array 'volume' of shape \(2500, 1024, 1024\) declares 19.5 GiB, but only 8.0 GiB"):
            load_volume(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_an_npz_member_shorter_than_its_header_says_is_damaged(tmp_path):
    from app.io import load_volume

    short = tmp_path / "short.npz"
    short.write_bytes(npz_declaring((4, 64, 64)))
    with pytest.raises(LoadError, match="short.npz: array 'volume': damaged: its header declares 65536 bytes, the archive holds"):
        load_volume(short)


def test_a_torch_archive_declaring_more_than_memory_is_refused(tmp_path, monkeypatch):
    import torch

    import app.io.arrays
    from app.io import load_volume

    path = tmp_path / "v.pt"
    torch.save(torch.zeros(4, 64, 64), path)
    monkeypatch.setattr(app.io.arrays, "available_memory", lambda: 64 << 10)  # a 64 KiB budget: its 64 KiB of data do not fit
    with pytest.raises(LoadError, match="v.pt: too large to open: its tensor data declares"):
        load_volume(path)
    monkeypatch.undo()
    assert load_volume(path).data.numel() == 4 * 64 * 64  # within memory, it loads
