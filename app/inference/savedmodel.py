"""Legacy TensorFlow SavedModel folders, wrapped as a one-input Keras model.

Keras 3 loads a SavedModel only through ``keras.layers.TFSMLayer``, which supports call endpoints
that take one tensor (keras #20813).  Slicewise reads ``saved_model.pb`` before TensorFlow loads
anything: it picks the endpoint (``serving_default``, else ``serve``), refuses one that takes
several tensors or a non-float tensor, naming its signature, and refuses a graph whose ops read or
write files or call Python (a SavedModel is a program, though not a Python one), unless the user
trusts the folder (``--unsafe-model``).  TensorFlow's own checkpoint save/restore functions,
which every SavedModel holds for its variables, are not counted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.errors import ModelError

ENDPOINTS = ("serving_default", "serve")
GRAPH_FILE = "saved_model.pb"
# ops that touch files (checkpoints, summaries, datasets, memory-mapped constants) or call Python
RISKY_OPS = re.compile(r"File|Save|Restore|Checkpoint|Summary|Dataset|PyFunc|ImmutableConst")


def is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / GRAPH_FILE).is_file()


def read_graph(path: Path) -> Any:
    """The ``MetaGraphDef`` of a SavedModel folder (its first, the serving one)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((path / GRAPH_FILE).read_bytes())
    except (OSError, ValueError) as exc:  # DecodeError is a ValueError
        raise ModelError(f"{path.name}: cannot read {GRAPH_FILE}: {exc}") from None
    if not saved.meta_graphs:
        raise ModelError(f"{path.name}: {GRAPH_FILE} holds no graph")
    return saved.meta_graphs[0]


def signature_text(name: str, signature: Any) -> str:
    """``serving_default(a: float32 (None, 4), b: float32 (None, 4)) → out: float32 (None, 1)``."""

    def tensors(entries) -> str:
        return ", ".join(f"{key}: {_dtype(info.dtype)} {_shape_text(info.tensor_shape)}" for key, info in sorted(entries.items()))

    return f"{name}({tensors(signature.inputs)}) → {tensors(signature.outputs)}"


def choose_endpoint(path: Path, graph: Any) -> tuple[str, tuple]:
    """The endpoint to call and the shape of its one input (None for free dimensions)."""
    endpoint = next((name for name in ENDPOINTS if name in graph.signature_def), None)
    if endpoint is None:
        found = ", ".join(sorted(k for k in graph.signature_def if not k.startswith("__"))) or "none"
        raise ModelError(f"{path.name}: this SavedModel has no {' or '.join(ENDPOINTS)} endpoint to call (its endpoints: {found})")
    signature = graph.signature_def[endpoint]
    text = signature_text(endpoint, signature)
    if len(signature.inputs) != 1:
        raise ModelError(f"{path.name}: its endpoint {text} takes {len(signature.inputs)} tensors; Slicewise can call an endpoint that takes one")
    (info,) = signature.inputs.values()
    if _dtype(info.dtype) not in ("float32", "float16", "float64", "bfloat16"):
        raise ModelError(f"{path.name}: its endpoint {text} takes {_dtype(info.dtype)}; Slicewise gives models float32 slices")
    if info.tensor_shape.unknown_rank or not info.tensor_shape.dim:
        raise ModelError(f"{path.name}: its endpoint {text} takes a tensor of unknown shape; Slicewise needs its rank (a batch of slices or sequences)")
    return endpoint, tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)


def risky_ops(graph: Any) -> list[str]:
    """Ops of the graph that read or write files or run Python, outside TensorFlow's own
    checkpoint functions; ``"ReadFile in function __inference_serve_123"``-style descriptions."""
    library = {f.signature.name: f for f in graph.graph_def.library.function}
    saver_nodes = {name.split(":")[0] for name in (graph.saver_def.save_tensor_name, graph.saver_def.restore_op_name) if name}
    main = [node for node in graph.graph_def.node if node.name not in saver_nodes]
    used = _reachable((node for node in main), library)
    saver_only = _reachable((node for node in graph.graph_def.node if node.name in saver_nodes), library) - used
    found = [f"{node.op} (node {node.name})" for node in main if RISKY_OPS.search(node.op)]
    for name, function in library.items():
        if name in saver_only:
            continue
        found += [f"{node.op} in function {name}" for node in function.node_def if RISKY_OPS.search(node.op) and node.op not in library]
    return found


def _reachable(nodes, library: dict) -> set[str]:
    """Names of the library functions that ``nodes`` call, directly or through other functions."""
    seen: set[str] = set()
    pending = list(nodes)
    while pending:
        node = pending.pop()
        called = [node.op] if node.op in library else []
        for value in node.attr.values():
            if value.func.name:
                called.append(value.func.name)
            called += [f.name for f in value.list.func]
        for name in called:
            if name in library and name not in seen:
                seen.add(name)
                pending.extend(library[name].node_def)
    return seen


def load_saved_model(path: Path, unsafe: bool, opt_in: str) -> tuple[Any, str]:
    """A Keras model around the SavedModel's endpoint, and the endpoint's signature text."""
    graph = read_graph(path)
    endpoint, input_shape = choose_endpoint(path, graph)
    if not unsafe:
        found = risky_ops(graph)
        if found:
            listed = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
            raise ModelError(f"{path.name}: refused: its TensorFlow graph reads or writes files or calls Python ({listed}); {opt_in}")
    import keras

    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint)
        inputs = keras.Input(input_shape[1:], batch_size=input_shape[0])
        model = keras.Model(inputs, layer(inputs), name=path.name.replace(".", "_") or "saved_model")
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds; all mean "cannot load"
        text = " ".join(str(exc).split())
        raise ModelError(f"{path.name}: cannot load the SavedModel's {endpoint} endpoint: {text[:300]}") from None
    return model, signature_text(endpoint, graph.signature_def[endpoint])


def _dtype(enum: int) -> str:
    import tensorflow as tf

    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"dtype #{enum}"


def _shape_text(shape: Any) -> str:
    if shape.unknown_rank:
        return "(unknown rank)"
    dims = ["None" if d.size < 0 else str(d.size) for d in shape.dim]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
