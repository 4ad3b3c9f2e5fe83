"""Small ONNX graphs built in tests: a torch export (NCHW, free batch), graphs written with
``onnx.helper`` (NHWC classifier, 1×1-conv sigmoid segmenter) and hostile variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class TinyNet(torch.nn.Module):
    """A conv → pool → linear → softmax classifier of ``(N, 1, H, W)`` slices, 3 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return torch.softmax(self.fc(h.mean(dim=(2, 3))), dim=1)


def export_torch(path: Path, net: torch.nn.Module | None = None, size: int = 16) -> torch.nn.Module:
    """``net`` (default `TinyNet`) exported to ``path``, NCHW with a free batch axis."""
    net = (net or TinyNet()).eval()
    torch.onnx.export(
        net, (torch.zeros(2, 1, size, size),), str(path), input_names=["image"], output_names=["probs"],
        dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}}, opset_version=OPSET, dynamo=False,
    )  # fmt: skip
    return net


def _model(nodes, inputs, outputs, initializers, opsets=(("", OPSET),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return model


def nhwc_dense_graph(kernel: np.ndarray, bias: np.ndarray, size: int, steps: int | None = None) -> onnx.ModelProto:
    """``(N, size, size, C)`` (or a sequence ``(N, steps, size, size, C)``) → flatten →
    ``x @ kernel + bias`` → sigmoid: a Keras ``Flatten, Dense(K, sigmoid)`` model's twin (same
    row-major flattening)."""
    c, k = kernel.shape[0] // (size * size * (steps or 1)), kernel.shape[1]
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "B"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["score"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *([steps] if steps else []), size, size, c])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", k])],
        [numpy_helper.from_array(kernel.astype(np.float32), "W"), numpy_helper.from_array(bias.astype(np.float32), "B")],
    )


def flat_dense_graph(kernel: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """``(N, F)`` → ``x @ kernel + bias`` → sigmoid: a flattened-slice model (Keras ``Dense``'s twin)."""
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["z"]), helper.make_node("Sigmoid", ["z"], ["score"])]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", kernel.shape[0]])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", kernel.shape[1]])],
        [numpy_helper.from_array(kernel.astype(np.float32), "W"), numpy_helper.from_array(bias.astype(np.float32), "B")],
    )


def segmentation_graph(weight: np.ndarray, bias: np.ndarray, layout: str = "NCHW") -> onnx.ModelProto:
    """A 1×1-conv sigmoid segmenter, ``weight`` ``(K, C)``: NCHW ``(N, C, H, W) → (N, K, H, W)``,
    or NHWC (transposes around the conv).  The Keras twin is ``Conv2D(K, 1, activation="sigmoid")``
    with kernel ``weight.T[None, None]``."""
    k, c = weight.shape
    w = numpy_helper.from_array(weight.reshape(k, c, 1, 1).astype(np.float32), "W")
    b = numpy_helper.from_array(bias.astype(np.float32), "B")
    if layout == "NCHW":
        nodes = [helper.make_node("Conv", ["x", "W", "B"], ["z"]), helper.make_node("Sigmoid", ["z"], ["mask"])]
        shape_in, shape_out = ["N", c, "H", "W"], ["N", k, "H", "W"]
    else:
        nodes = [
            helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 3, 1, 2]),
            helper.make_node("Conv", ["xc", "W", "B"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["zc"]),
            helper.make_node("Transpose", ["zc"], ["mask"], perm=[0, 2, 3, 1]),
        ]
        shape_in, shape_out = ["N", "H", "W", c], ["N", "H", "W", k]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, shape_out)],
        [w, b],
    )


def external_data_graph(location: str, folder: Path, size: int = 8) -> Path:
    """A valid NHWC graph whose weights are said to lie in ``location`` (relative to ``folder``,
    where the model is written): the file is written with the data inside, then its tensor
    entries are rewritten to point at ``location``."""
    kernel = np.ones((size * size, 1), np.float32) / (size * size)
    model = nhwc_dense_graph(kernel, np.zeros(1, np.float32), size)
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(kernel.nbytes))):
        weight.external_data.add(key=key, value=value)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def custom_domain_graph(domain: str = "evil.ops") -> onnx.ModelProto:
    """An NHWC graph with one operator from ``domain``."""
    nodes = [
        helper.make_node("Flatten", ["x"], ["flat"], axis=1),
        helper.make_node("ReduceMeanCustom", ["flat"], ["score"], domain=domain),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        [],
        opsets=(("", OPSET), (domain, 1)),
    )
