"""Checks of an ONNX file before ONNX Runtime sees it.

An ONNX file runs no Python, but it names files and operators.  Slicewise reads the graph alone
(``onnx.load(path, load_external_data=False)``: no other file is opened) and refuses:

- a file that is not ONNX at all, or is cut short (it does not parse, or holds no graph);
- external-data locations outside the model's folder: absolute paths, ``..``, a symlink that leads
  out (path traversal in external data: CVE-2024-27318, CVE-2024-27319), or a range past the end
  of its file;
- operators from domains other than the standard ones (``""``/``ai.onnx``, ``ai.onnx.ml``, and the
  model's own local functions).  ``com.microsoft`` (ONNX Runtime's contrib operators) is not
  standard: those kernels are not part of the ONNX specification, are written for ONNX Runtime's
  own optimiser output, and have had memory-safety bugs of their own; a user who trusts the file
  opts in with ``--unsafe-model``.  Other domains name custom-operator libraries, which Slicewise
  never loads, so ONNX Runtime could not run them anyway;
- declared tensor sizes beyond the memory available (initializers' dims and external-data lengths).

``--unsafe-model`` lifts the operator-domain check only: an escaping path, a broken file and a
model that cannot fit in memory are refused regardless (they cannot be trusted into working).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.errors import ModelError
from app.io.memory import available_memory

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
MEMORY_HEADROOM = 0.8  # the share of available memory a model's tensors may take
MAX_LISTED = 3
OPT_IN = "use --unsafe-model only for a file you trust"


def read_checked(path: Path, unsafe: bool = False) -> Any:
    """The ``onnx.ModelProto`` of ``path`` (external data not loaded), after the checks above;
    a `ModelError` naming the file and why otherwise."""
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if path.stat().st_size == 0:
        raise ModelError(f"{path.name}: not an ONNX model: the file is empty")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ModelError(f"{path.name}: not an ONNX model, or cut short: it does not parse ({reason})") from None
    if not model.graph.node or not model.graph.output or not (model.opset_import or model.ir_version):
        raise ModelError(f"{path.name}: not an ONNX model, or cut short: it holds no complete graph (nodes, outputs and opset)")
    _check_external_data(path, model)
    if not unsafe:
        _check_domains(path, model)
    _check_memory(path, model)
    return model


def external_files(path: Path, model: Any) -> list[Path]:
    """The external-data files the model names (checked to lie in its folder), in order."""
    folder = path.absolute().parent
    return list(dict.fromkeys(folder / _entries(t)["location"] for t in tensors(model) if _external(t)))


# -- what the graph holds ------------------------------------------------------------------------


def graphs(model: Any) -> Iterator[Any]:
    """The main graph and every subgraph (If/Loop/Scan bodies), depth first."""
    pending = [model.graph]
    while pending:
        graph = pending.pop()
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    pending.append(attr.g)
                pending.extend(attr.graphs)


def nodes(model: Any) -> Iterator[Any]:
    """Every node: of the graphs, and of the model's local functions."""
    for graph in graphs(model):
        yield from graph.node
    for function in model.functions:
        yield from function.node


def tensors(model: Any) -> Iterator[Any]:
    """Every stored tensor: initializers, sparse initializers' parts, tensor attributes."""
    for graph in graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
    for node in nodes(model):
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def _external(tensor: Any) -> bool:
    import onnx

    return tensor.data_location == onnx.TensorProto.EXTERNAL


def _entries(tensor: Any) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


# -- the checks ----------------------------------------------------------------------------------


def _check_external_data(path: Path, model: Any) -> None:
    folder = path.absolute().parent
    real_folder = folder.resolve()
    bad: list[str] = []
    for tensor in tensors(model):
        if not _external(tensor):
            continue
        entries = _entries(tensor)
        location = entries.get("location", "")
        where = f"tensor {tensor.name!r} → {location!r}"
        if not location:
            bad.append(f"{where} (no location)")
        elif os.path.isabs(location) or Path(location).is_absolute() or location.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", location):
            bad.append(f"{where} (an absolute path)")
        elif ".." in Path(location.replace("\\", "/")).parts:
            bad.append(f"{where} (leads out with '..')")
        elif not _inside(folder / location, real_folder):
            bad.append(f"{where} (a link that leads out of the folder)")
        elif (folder / location).is_file():
            size = (folder / location).stat().st_size
            offset, length = _int(entries.get("offset", "0")), _int(entries.get("length", "0"))
            if offset is None or length is None or offset < 0 or length < 0 or offset + length > size:
                bad.append(f"{where} (bytes {entries.get('offset', '0')}+{entries.get('length', '?')} past the end of its {size}-byte file)")
    if bad:
        listed = "; ".join(bad[:MAX_LISTED]) + (f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else "")
        raise ModelError(f"{path.name}: refused: its external data must lie in the model's folder ({folder}): {listed}")


def _inside(candidate: Path, real_folder: Path) -> bool:
    try:
        return candidate.resolve().is_relative_to(real_folder)
    except (OSError, RuntimeError):  # a link loop
        return False


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _check_domains(path: Path, model: Any) -> None:
    local = {(f.domain, f.name) for f in model.functions}
    found: dict[str, None] = {}
    for node in nodes(model):
        if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in local:
            found[f"{node.op_type} (domain {node.domain})"] = None
    if found:
        names = list(found)
        listed = ", ".join(names[:MAX_LISTED]) + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")
        raise ModelError(
            f"{path.name}: refused: it uses operators outside the standard ONNX domains ({listed}); "
            f"Slicewise serves standard ONNX operators only (ai.onnx, ai.onnx.ml); {OPT_IN}"
        )


def _check_memory(path: Path, model: Any) -> None:
    import onnx

    total = 0
    for tensor in tensors(model):
        try:
            size = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        except (KeyError, ValueError, TypeError):  # an undefined or unknown element type
            size = 8
        count = 1
        for dim in tensor.dims:
            count *= max(int(dim), 0)
        declared = count * size
        if _external(tensor):
            declared = max(declared, _int(_entries(tensor).get("length", "0")) or 0)
        total += declared
    available = available_memory()
    if total > MEMORY_HEADROOM * available:
        gib = 1024**3
        raise ModelError(f"{path.name}: refused: its tensors declare {total / gib:.1f} GiB, but only {available / gib:.1f} GiB of memory is available")
