"""What every strategy provides: a check of the model against the volume, a plan of model
calls (batches), and the mapping from model output to per-slice scores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from app.errors import ModelError
from app.strategies.adapt import SliceShape, fit_slices, flat_shape, image_shape

if TYPE_CHECKING:
    import keras

    from app.volume import Volume

Normalize = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """A model's declared shapes, without the batch axis (None = any size)."""

    input_shape: tuple
    output_shape: tuple
    slice_hint: tuple[int, int, int] | None = None  # (H, W, C) behind a flattened input

    def describe(self) -> str:
        return f"input {shape_text(self.input_shape)} → output {shape_text(self.output_shape)}"


@dataclass(frozen=True)
class Step:
    """One model call: its input batch and the slices it scores (``None``: the volume score)."""

    x: torch.Tensor
    indices: np.ndarray | None


class Plan(ABC):
    """How one model scores one volume: the calls to make and how to read their outputs.

    ``steps`` gets the volume's data, or a channel recipe's source (`app.channels`) that builds
    channels on demand: a plan only slices it along depth (``data[a:b]``, a ``(b-a, H, W, C)``
    tensor) and reads ``data.shape``.
    """

    signature: tuple  # the model input shape with a free batch axis, for a traced function
    calls: int  # number of model calls ``steps`` will yield

    @abstractmethod
    def steps(self, data: torch.Tensor, normalize: Normalize, batch_size: int) -> Iterator[Step]: ...

    @abstractmethod
    def read(self, y: np.ndarray, step: Step) -> np.ndarray:
        """Scores ``(len(step.indices), K)`` (or ``(1, K)`` for the volume score) from output ``y``."""


class Strategy(ABC):
    """A way of turning a volume into per-slice scores with a Keras model."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    default_normalize: ClassVar[str]  # what the built-in model was built for
    slice_hint: ClassVar[tuple[int, int, int] | None] = None  # built-in model's flattened slice

    @abstractmethod
    def build_model(self) -> keras.Model:
        """The built-in architecture, with weights from a fixed seed."""

    @abstractmethod
    def plan(self, volume_shape: tuple[int, int, int, int], spec: ModelSpec, batch_size: int) -> Plan:
        """Check ``spec`` against the volume and plan the calls; raise ModelError if it cannot fit."""

    def notes(self, volume: Volume) -> list[str]:
        """What a reader of this strategy's scores on ``volume`` should know (none by default)."""
        return []


class SliceBatches(Plan):
    """Slices in chunks of ``batch_size``, each fitted to the model's slice input.

    With ``pool``, a last call scores the depth-mean of the fitted slices (the volume score).
    """

    def __init__(self, depth: int, shape: SliceShape, batch_size: int, pool: bool = False):
        self.depth, self.shape, self.pool = depth, shape, pool
        self.signature = (None, shape.features) if shape.flat else (None, shape.height, shape.width, shape.channels)
        self.calls = -(-depth // batch_size) + int(pool)

    def steps(self, data: torch.Tensor, normalize: Normalize, batch_size: int) -> Iterator[Step]:
        total = None
        for start in range(0, self.depth, batch_size):
            x = fit_slices(normalize(data[start : start + batch_size]), self.shape)
            if self.pool:
                part = x.sum(dim=0, dtype=torch.float64)
                total = part if total is None else total + part
            yield Step(x, np.arange(start, start + len(x)))
        if self.pool:
            yield Step((total / self.depth).float().unsqueeze(0), None)

    def read(self, y: np.ndarray, step: Step) -> np.ndarray:
        return y


def slice_input(volume_shape: tuple, spec: ModelSpec, strategy: str) -> SliceShape:
    """The slice shape a model taking one slice, ``(H, W, C)`` or flattened ``(F,)``, expects."""
    dims = spec.input_shape
    if len(dims) == 3:
        return image_shape(dims, volume_shape)
    if len(dims) == 1 and dims[0]:
        return flat_shape(dims[0], volume_shape, spec.slice_hint)
    raise ModelError(
        f"the {strategy} strategy needs a model that takes one slice, (H, W, C) or flattened (F,); "
        f"this model takes {shape_text(dims)} (the volume's slices are {shape_text(volume_shape[1:])})"
    )


def score_vector(spec: ModelSpec, strategy: str) -> int:
    """The number K of scores a model gives per input; raise ModelError unless its output is ``(K,)``."""
    if len(spec.output_shape) == 1 and spec.output_shape[0]:
        return int(spec.output_shape[0])
    raise ModelError(f"the {strategy} strategy needs a model whose output is a score vector (K,); this one gives {shape_text(spec.output_shape)}")


def shape_text(shape: tuple) -> str:
    """``(None, 64, 64, 1)``-style text for a shape (``(5,)`` for one dimension)."""
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
