"""``temporal``: depth is the sequence axis of a sequence model.

The seed article's Example 2 convolves over the flattened pixels with depth as channels; that
is no sequence along depth.  Here the sequence steps are slices, in depth order:

- a model with a fixed sequence length ``n`` scores slice ``d`` from the window of ``n`` slices
  centred on it (edge slices repeated at the ends); a per-step output is read at the centre;
- a model that maps a sequence of any length to per-step outputs scores the volume in one pass.

Each step may be an image ``(H, W, C)`` or a flattened slice ``(F,)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from app.errors import ModelError
from app.strategies.adapt import SliceShape, fit_slices, flat_shape, image_shape
from app.strategies.base import ModelSpec, Normalize, Plan, Step, Strategy, shape_text
from app.strategy_catalog import CATALOG

INPUT = (None, 64, 64, 1)


class TemporalStrategy(Strategy):
    name = "temporal"
    title, summary = CATALOG["temporal"]
    default_normalize = "window:60,200"

    def build_model(self):
        import keras
        from keras import layers

        keras.utils.set_random_seed(2)
        per_slice = (1, 3, 3)  # a 3D kernel of depth 1 is a 2D convolution applied to every slice
        return keras.Sequential(
            [
                keras.Input(INPUT),
                layers.Conv3D(16, per_slice, activation="relu", padding="same"),
                layers.MaxPooling3D((1, 2, 2)),
                layers.Conv3D(32, per_slice, activation="relu", padding="same"),
                layers.MaxPooling3D((1, 2, 2)),
                layers.Conv3D(32, per_slice, activation="relu", padding="same"),
                layers.MaxPooling3D((1, INPUT[1] // 4, INPUT[2] // 4)),
                layers.Reshape((-1, 32)),  # (depth, features): one feature vector per slice
                layers.Conv1D(32, 3, padding="same", activation="relu"),  # context along depth
                layers.Conv1D(16, 3, padding="same", activation="relu"),
                layers.Dense(1, activation="sigmoid"),
            ],
            name="temporal_conv",
        )

    def notes(self, volume) -> list[str]:
        if getattr(volume, "uniform_spacing", True):
            return []
        return ["temporal: the slices are not evenly spaced (the series has gaps), so each slice's neighbours in the sequence are not either"]

    def plan(self, volume_shape, spec: ModelSpec, batch_size: int) -> Plan:
        dims, out = spec.input_shape, spec.output_shape
        if len(dims) == 4:
            shape = image_shape(dims[1:], volume_shape)
        elif len(dims) == 2 and dims[1]:
            shape = flat_shape(dims[1], volume_shape, spec.slice_hint)
        else:
            raise ModelError(
                "the temporal strategy needs a model that takes a sequence of slices, (n, H, W, C) or "
                f"(n, F) with n fixed or None; this model takes {shape_text(dims)} (the volume is {shape_text(volume_shape)})"
            )
        length = dims[0]
        per_step = len(out) == 2 and out[1] is not None
        if not per_step and not (len(out) == 1 and out[0]):
            raise ModelError(f"the temporal strategy needs an output (K,) per sequence or (n, K) per step; this model gives {shape_text(out)}")
        if length is None and not per_step:
            raise ModelError(f"a model taking sequences of any length must give one output per step, (None, K); this one gives {shape_text(out)}")
        if length is None:
            return WholeSequence(volume_shape[0], shape)
        return CentredWindows(volume_shape[0], shape, int(length), per_step, batch_size)


class CentredWindows(Plan):
    """For each slice, the ``n`` slices centred on it, edges repeated; a batch is ``batch_size`` windows."""

    def __init__(self, depth: int, shape: SliceShape, length: int, per_step: bool, batch_size: int):
        self.depth, self.shape, self.length, self.per_step = depth, shape, length, per_step
        step_dims = (shape.features,) if shape.flat else (shape.height, shape.width, shape.channels)
        self.signature = (None, length, *step_dims)
        self.calls = -(-depth // batch_size)

    def steps(self, data: torch.Tensor, normalize: Normalize, batch_size: int) -> Iterator[Step]:
        half = self.length // 2
        for start in range(0, self.depth, batch_size):
            stop = min(start + batch_size, self.depth)
            lo, hi = max(start - half, 0), min(stop - half + self.length, self.depth)
            fitted = fit_slices(normalize(data[lo:hi]), self.shape)  # each needed slice fitted once
            centres = torch.arange(start, stop).unsqueeze(1)
            window = (centres - half + torch.arange(self.length)).clamp_(0, self.depth - 1) - lo
            yield Step(fitted[window], np.arange(start, stop))

    def read(self, y: np.ndarray, step: Step) -> np.ndarray:
        return y[:, self.length // 2] if self.per_step else y


class WholeSequence(Plan):
    """The whole depth as one sequence, for a model with per-step outputs and free length."""

    calls = 1

    def __init__(self, depth: int, shape: SliceShape, chunk: int = 64):
        self.depth, self.shape, self.chunk = depth, shape, chunk
        step_dims = (shape.features,) if shape.flat else (shape.height, shape.width, shape.channels)
        # The depth is fixed when tracing: Keras' TimeDistributed mis-shapes a free sequence length.
        self.signature = (None, depth, *step_dims)

    def steps(self, data: torch.Tensor, normalize: Normalize, batch_size: int) -> Iterator[Step]:
        parts = [fit_slices(normalize(data[a : a + self.chunk]), self.shape) for a in range(0, self.depth, self.chunk)]
        yield Step(torch.cat(parts).unsqueeze(0), np.arange(self.depth))

    def read(self, y: np.ndarray, step: Step) -> np.ndarray:
        return y[0]
