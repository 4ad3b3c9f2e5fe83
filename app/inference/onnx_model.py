"""ONNX models (what ``torch.onnx.export``, tf2onnx, nnU-Net's and MONAI's exporters write),
served by ONNX Runtime on the thread that scores, through the same strategies and plans as a
Keras model.

The file is checked first (`app.inference.onnx_safety`), then ONNX Runtime loads it with its
intra-op threads set to the engine's thread count (inter-op 1), on CUDA when ONNX Runtime has it.
The model is described to the rest of Slicewise exactly as a Keras model is: a `ModelSpec` in
NHWC terms without the batch axis.  The layout of a channels-first graph (NCHW, or NCDHW) is read
from its input shape (the channel axis is the one fixed dimension smaller than all the others),
else from ``"layout"`` in the JSON beside the file; the runner transposes each NHWC batch to the
graph's layout, and a dense channels-first output ``(N, K, H, W)`` back to ``(N, H, W, K)``.
No TensorFlow is imported on this path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app import channels as channel_recipes
from app.errors import ModelError
from app.inference.models import LoadedModel, check_score_dtype, file_sha256, meta_classes, preprocessing_of, read_metadata
from app.inference.onnx_safety import external_files, read_checked
from app.io.formats import ONNX_SUFFIX
from app.io.hashing import sha256_of_files
from app.strategies import ModelSpec
from app.strategies.base import shape_text

LAYOUTS = ("NCHW", "NHWC")
FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
ACTIVATIONS = {
    "Sigmoid": "sigmoid",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "Relu": "relu",
    **dict.fromkeys(("Gemm", "MatMul", "Add", "Conv", "ConvTranspose"), "linear"),
}


def is_onnx(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ONNX_SUFFIX


@dataclass(frozen=True)
class Tensor:
    """One graph input or output: its name, full shape (batch axis first, None = free) and type."""

    name: str
    shape: tuple
    type: str


@dataclass(eq=False)
class OnnxGraph:
    """A loaded ONNX Runtime session with what Slicewise read of its graph."""

    session: Any
    input: Tensor
    outputs: dict[str, Tensor]
    layout: str | None  # "NCHW" (channel axis 1), "NHWC", or None for a flat or sequence input
    activations: dict[str, str | None]
    device_label: str
    runners: dict[str, OnnxRunner] = field(default_factory=dict)

    @property
    def channels_first(self) -> bool:
        return self.layout == "NCHW" and len(self.input.shape) >= 4

    def runner(self, output: str) -> OnnxRunner:
        if output not in self.runners:
            self.runners[output] = OnnxRunner(self, output)
        return self.runners[output]


class OnnxRunner:
    """One output of the graph, called as the engine calls a traced Keras model: an NHWC float32
    batch (a torch tensor or an array) in, a NumPy array out (NHWC for a dense output)."""

    def __init__(self, graph: OnnxGraph, output: str):
        self.graph, self.output = graph, output
        self.device_label = graph.device_label
        rank = len(graph.input.shape)
        self._to_graph = (0, rank - 1, *range(1, rank - 1)) if graph.channels_first else None
        out_rank = len(graph.outputs[output].shape)
        self._from_graph = (0, *range(2, out_rank), 1) if graph.channels_first and out_rank >= 4 else None
        self._dtype = FLOAT_TYPES.get(graph.input.type, np.float32)
        batch = graph.input.shape[0] if graph.input.shape else None
        self._batch = batch if isinstance(batch, int) and batch > 0 else None

    def __call__(self, x: Any) -> np.ndarray:
        array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        array = array.astype(self._dtype, copy=False)
        if self._to_graph is not None:
            array = array.transpose(self._to_graph)
        array = np.ascontiguousarray(array)
        if self._batch is None or len(array) == self._batch:
            y = self._run(array)
        else:  # a graph exported with a fixed batch: call it in chunks of that size, padded
            chunks = []
            for start in range(0, len(array), self._batch):
                part = array[start : start + self._batch]
                rows = len(part)
                if rows < self._batch:
                    part = np.concatenate([part, np.zeros((self._batch - rows, *part.shape[1:]), part.dtype)])
                chunks.append(self._run(part)[:rows])
            y = np.concatenate(chunks)
        return y.transpose(self._from_graph) if self._from_graph is not None else y

    def _run(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(self.graph.session.run([self.output], {self.graph.input.name: array})[0])


# -- loading --------------------------------------------------------------------------------------


def session_options(threads: int | None) -> Any:
    """ONNX Runtime session options: ``threads`` intra-op threads (default: every core), one
    inter-op thread, no spinning between calls (the GUI thread needs the cores then)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads or os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def providers(use_gpu: bool) -> list:
    """CUDA first when ONNX Runtime has it (the ``onnxruntime-gpu`` wheel) and it is wanted, in
    full float32: TF32 (its default on Ampere and later) would move scores off the CPU's, as
    `app.inference.runtime.bootstrap` says."""
    import onnxruntime as ort

    if use_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_onnx(
    path: str | Path,
    normalize: str | None = None,
    unsafe: bool = False,
    *,
    output: str | None = None,
    classes: Any = None,
    threads: int | None = None,
    use_gpu: bool = True,
) -> LoadedModel:
    """Check and load an ONNX file; ``output`` and ``classes`` as for a Keras model file."""
    import onnxruntime as ort

    path = Path(path)
    proto = read_checked(path, unsafe)
    meta = read_metadata(path)
    if threads:
        torch.set_num_threads(threads)  # the fitting of slices runs in torch on this thread
    options = session_options(threads)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers(use_gpu))
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own kinds; all mean "cannot load"
        reason = " ".join(str(exc).split())
        raise ModelError(f"{path.name}: ONNX Runtime cannot load it: {reason[:300]}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelError(f"{path.name}: model has {len(inputs)} inputs ({names}); Slicewise needs a model with one (a slice, or a sequence of slices)")
    graph_input = _tensor(inputs[0])
    if graph_input.type not in FLOAT_TYPES:
        raise ModelError(f"{path.name}: its input {graph_input.name!r} takes {graph_input.type}; Slicewise gives models float32 slices")
    layout, read_from = layout_of(path, graph_input.shape, meta.get("layout"))
    used = session.get_providers()[0]
    label = (
        "GPU (ONNX Runtime, CUDA)"
        if used == "CUDAExecutionProvider"
        else f"CPU (ONNX Runtime, {options.intra_op_num_threads} thread{'s' if options.intra_op_num_threads > 1 else ''})"
    )
    graph = OnnxGraph(session, graph_input, {o.name: _tensor(o) for o in session.get_outputs()}, layout, _activations(proto), label)
    shape = nhwc(graph_input.shape, graph.channels_first)
    hint = meta.get("slice_shape")
    spec = ModelSpec(shape[1:], (), tuple(hint) if hint else None)  # with_output resolves the output
    extra = external_files(path, proto)
    about = {"format": "onnx", "layout": layout, "layout_from": read_from, "input": graph_input.name, "input_shape": list(graph_input.shape), "provider": used}
    if extra:  # the model's sha256 is its .onnx file's, as everywhere (a cohort compares them); its weights' here
        about["external_data_sha256"] = sha256_of_files(extra)
    loaded = LoadedModel(
        graph.runner(next(iter(graph.outputs))),
        str(path),
        file_sha256(path),
        preprocessing_of(meta) if normalize is None else normalize,
        spec,
        channels=channel_recipes.parse_recipe(meta.get("channels")).spec,
        meta=meta,
        whole=graph,
        backend="onnx",
        about=about,
    )
    loaded = choose_output(loaded, output or meta.get("output"))
    return loaded.with_classes(classes) if classes is not None else loaded


def choose_output(model: LoadedModel, name: str | None) -> LoadedModel:
    """`LoadedModel.with_output` for an ONNX model: the runner of output ``name`` (None: the first)."""
    graph: OnnxGraph = model.whole
    names = tuple(graph.outputs)
    name = names[0] if name is None else name
    if name not in graph.outputs:
        raise ModelError(f"{model.name} has no output {name!r}; its outputs: {', '.join(names)}")
    tensor = graph.outputs[name]
    out = nhwc(tensor.shape, graph.channels_first and len(tensor.shape) >= 4)[1:]
    try:
        check_score_dtype(tensor.type.removeprefix("tensor(").rstrip(")"), model.spec.input_shape, out)
    except ModelError as exc:
        raise ModelError(f"{model.name}: {exc}") from None
    spec = ModelSpec(model.spec.input_shape, out, model.spec.slice_hint)
    chosen = replace(model, keras_model=graph.runner(name), spec=spec, output=name, outputs=names, activation=graph.activations.get(name), classes=None)
    classes = meta_classes(model.meta, name, names)
    return chosen.with_classes(classes) if classes else chosen


# -- shapes and layout ----------------------------------------------------------------------------


def _tensor(arg: Any) -> Tensor:
    """A session input/output: symbolic dims ("batch", "N") and unknown ones become None."""
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
    return Tensor(arg.name, shape, arg.type)


def nhwc(shape: tuple, channels_first: bool) -> tuple:
    """A full shape in Slicewise's terms: channel axis 1 moved last when ``channels_first``."""
    return (shape[0], *shape[2:], shape[1]) if channels_first and len(shape) >= 3 else tuple(shape)


def layout_of(path: Path, shape: tuple, declared: Any = None) -> tuple[str | None, str]:
    """The input's layout and where it was read from: the JSON's ``"layout"`` if given, else the
    input shape (the channel axis is a fixed dimension smaller than every other, except the
    batch); a clear error when neither tells for an image input."""
    if declared is not None:
        if declared not in LAYOUTS:
            raise ModelError(f"{path.with_suffix('.json').name}: layout {declared!r} is not one of {', '.join(LAYOUTS)}")
        return declared, "the model's JSON"
    if len(shape) < 4:
        return None, f"input shape {shape_text(shape)} (no image axes)"
    first, last, rest = shape[1], shape[-1], shape[1:]

    def channel_axis(value: Any, others: tuple) -> bool:
        return value is not None and all(d is None or d > value for d in others)

    first_fits = channel_axis(first, shape[2:])
    last_fits = channel_axis(last, rest[:-1])
    if first_fits != last_fits:
        return ("NCHW" if first_fits else "NHWC"), f"input shape {shape_text(shape)}"
    raise ModelError(
        f"{path.name}: cannot tell the layout of its input {shape_text(shape)} (channels first or last); "
        f'say it in {path.with_suffix(".json").name}: {{"layout": "NCHW"}} or {{"layout": "NHWC"}}'
    )


LAYOUT_OPS = ("Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten")  # move values, change none


def _activations(proto: Any) -> dict[str, str | None]:
    """The activation that makes each graph output, where its last node says (Sigmoid, Softmax),
    looking through nodes that only lay values out (an NHWC export's closing Transpose)."""
    producers = {out: node for node in proto.graph.node for out in node.output}

    def activation(name: str) -> str | None:
        node = producers.get(name)
        while node is not None and node.op_type in LAYOUT_OPS and node.input:
            node = producers.get(node.input[0])
        return ACTIVATIONS.get(node.op_type) if node is not None else None

    return {o.name: activation(o.name) for o in proto.graph.output}
