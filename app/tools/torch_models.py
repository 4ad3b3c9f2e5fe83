"""A PyTorch model of the size users bring, exported to ONNX as users export theirs, for the
benchmark (``onnx_vs_bare_run``) and the viewer's ONNX figures.  No Keras here."""

from __future__ import annotations

from pathlib import Path

import torch


class UserCnn(torch.nn.Module):
    """`app.tools.seed_models.user_cnn` in PyTorch: three strided convolutions, global average
    pooling, a sigmoid score; ``(N, 1, H, W)`` slices."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(14)
        self.convs = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 3, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(32, 64, 3, stride=2), torch.nn.ReLU(),
        )  # fmt: skip
        self.head = torch.nn.Linear(64, 1)

    def forward(self, x):
        return torch.sigmoid(self.head(self.convs(x).mean(dim=(2, 3))))


def export_user_cnn(path: Path, height: int = 256, width: int = 256) -> Path:
    """`UserCnn` exported with ``torch.onnx.export`` (NCHW, a free batch axis) to ``path``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter (dynamo=False) is deprecated, not gone
        torch.onnx.export(
            UserCnn().eval(), (torch.zeros(2, 1, height, width),), str(path), input_names=["image"], output_names=["score"],
            dynamic_axes={"image": {0: "batch"}, "score": {0: "batch"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
    return path
