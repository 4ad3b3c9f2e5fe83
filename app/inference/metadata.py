"""The JSON beside a model, read with limits and checked key by key before anything uses it.

The file is small by nature: it is refused past `MAX_BYTES` or `MAX_DEPTH` levels of nesting
(checked before parsing, so deep nesting is a clear error, not a RecursionError), and NaN or
Infinity are not JSON.  Every key Slicewise (or a helper of it) reads has a check here, with a
message naming the key and the type expected; keys it does not know are kept unchecked (training
notes, AUCs).  The known keys:

``classes``       list of distinct non-empty names, or ``{output: [names]}``
``channels``      a channel recipe (`app.channels`): ``replicate``, ``neighbors:K``, ``windows:…``
``slice_shape``   ``[H, W, C]``, positive whole numbers (for a model taking flat vectors)
``normalize``     a normalisation spec (`app.preprocessing.parse_spec`)
``output``        the name of the output to score
``background``    a softmax segmentation's background class: its index or its name
``stride``        a segmentation model's total downsampling, a positive whole number
``activation``    what the output is: ``sigmoid``, ``softmax``, ``linear``…
``layout``        an ONNX model's input layout: ``NCHW`` or ``NHWC``
``strategy``      the strategy a built-in model was trained for

To check a new key, add it to `CHECKS` with a function returning None (fine) or what was expected.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from app.errors import ModelError, SlicewiseError

MAX_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_NAMES = 4096  # class names per output
MAX_SIDE = 1 << 16


def _type(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _names(value: object) -> str | None:
    if not isinstance(value, list) or not value or len(value) > MAX_NAMES:
        return f"a list of 1 to {MAX_NAMES} class names"
    if not all(isinstance(n, str) and n.strip() for n in value):
        return "a list of non-empty text names"
    if len(set(value)) != len(value):
        return "a list of different names"
    return None


def _classes(value: object) -> str | None:
    if isinstance(value, dict):
        wrong = next((_names(v) for v in value.values() if _names(v)), None)
        return None if wrong is None and all(value) else "an object mapping output names to lists of class names"
    return _names(value)


def _recipe(value: object) -> str | None:
    from app.channels import parse_recipe

    if not isinstance(value, str):
        return "a channel recipe as text (replicate, neighbors:K or windows:C,W;…)"
    try:
        parse_recipe(value)
    except SlicewiseError as exc:
        return f"a valid channel recipe ({exc})"
    return None


def _normalize(value: object) -> str | None:
    from app.preprocessing import parse_spec

    if not isinstance(value, str):
        return "a normalisation as text (none, minmax, zscore or window:C,W)"
    try:
        parse_spec(value)
    except SlicewiseError as exc:
        return f"a valid normalisation ({exc})"
    return None


def _shape(value: object) -> str | None:
    if isinstance(value, list) and len(value) == 3 and all(_whole(v, 1, MAX_SIDE) for v in value):
        return None
    return f"a list of 3 whole numbers 1…{MAX_SIDE} ([height, width, channels])"


def _text(value: object) -> str | None:
    return None if isinstance(value, str) and value.strip() and len(value) <= 256 else "non-empty text"


def _background(value: object) -> str | None:
    return None if _whole(value, 0, MAX_NAMES) or _text(value) is None else "a class index (a whole number ≥ 0) or a class name"


def _stride(value: object) -> str | None:
    return None if _whole(value, 1, 1024) else "a whole number 1…1024"


def _layout(value: object) -> str | None:
    return None if value in ("NCHW", "NHWC") else '"NCHW" or "NHWC"'


CHECKS: dict[str, Callable[[object], str | None]] = {
    "classes": _classes,
    "channels": _recipe,
    "slice_shape": _shape,
    "normalize": _normalize,
    "output": _text,
    "background": _background,
    "stride": _stride,
    "activation": _text,
    "layout": _layout,
    "strategy": _text,
}


def check_metadata(meta: object, name: str) -> dict:
    """``meta`` if it is a JSON object whose known keys hold what they should (null: not given);
    else a `ModelError` naming ``name`` (the file), the key and what it expects."""
    if not isinstance(meta, dict):
        raise ModelError(f"{name}: the model's metadata must be a JSON object, not {_type(meta)}")
    for key, check in CHECKS.items():
        value = meta.get(key)
        if value is None:
            continue
        expected = check(value)
        if expected is not None:
            raise ModelError(f'{name}: "{key}" must be {expected}, not {_type(value)}'[:300])
    return meta


def _depth(text: str) -> int:
    """The deepest nesting of lists and objects in JSON ``text`` (strings skipped)."""
    depth = deepest = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def _constant(word: str):
    raise ValueError(f"{word} is not a JSON number")


def parse_metadata(data: bytes, name: str) -> dict:
    """The checked metadata in ``data`` (the file's bytes; ``name`` for messages)."""
    if len(data) > MAX_BYTES:
        raise ModelError(f"{name}: the model's metadata holds more than {MAX_BYTES >> 10} KiB; it is a small JSON object")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ModelError(f"{name}: the model's metadata is not UTF-8 text") from None
    if _depth(text) > MAX_DEPTH:
        raise ModelError(f"{name}: the model's metadata is nested more than {MAX_DEPTH} levels deep")
    try:
        meta = json.loads(text, parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        reason = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(exc)[:80]
        raise ModelError(f"{name}: cannot read the model's metadata: {reason}") from None
    return check_metadata(meta, name)


def read_metadata_file(path: Path) -> dict:
    """The checked JSON at ``path`` (a regular file, read up to the size limit)."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ModelError(f"{path.name}: the model's metadata is not a regular file")
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ModelError(f"{path.name}: cannot read the model's metadata: {exc.strerror or exc}") from None
    return parse_metadata(data, path.name)
