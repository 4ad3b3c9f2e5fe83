"""``embedding``: the seed article's Example 3 — slices pooled over depth, then dense layers.

Each slice's score comes from its *slab*: the ``slab`` slices centred on it (fewer at the ends
of the volume, where the slab is cut to the slices that exist), pooled, then scored.  The volume
score is the same pool taken over all slices.  Two kinds of model fit:

- a sequence model ``(None, H, W, C)`` built of three parts, found by layer name: ``encoder``
  (a ``TimeDistributed`` per-slice model, ``(H, W, C)`` → ``(E,)``), ``pool`` (a global pooling
  over depth) and ``head`` (``(E,)`` → ``(K,)``).  Every slice is embedded once (encoder batches),
  the embeddings are pooled over each slab, and the head scores the pooled vectors (head
  batches).  The built-in model is one: a small CNN encoder, mean pooling, two dense layers.
- a flat model ``(F,)`` (the article's own): the fitted slices' pixels are pooled over the slab
  and the model scores the pooled pixels.

Pooling (``pool``): ``mean`` (the default), ``max`` (element-wise), or ``attention``: a weighted
mean whose weights are the softmax of each slice's scaled dot product with the slab's mean
(``q·e_i / √E``, query = mean, keys = values = the embeddings).  Attention here has no learned
weights; it leans towards the slices that stand out in the direction the slab points to.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from app.errors import ModelError, SlicewiseError
from app.strategies.adapt import SliceShape, fit_slices, flat_shape, image_shape
from app.strategies.base import (
    ModelSpec,
    Normalize,
    Plan,
    Step,
    Strategy,
    score_vector,
    shape_text,
)
from app.strategy_catalog import CATALOG

SLICE = (64, 64, 1)  # the built-in model's slice input
EMBEDDING = 16  # the built-in encoder's embedding size
SLAB = 3  # slices per slab, by default (what the built-in model is trained on)
POOLS = ("mean", "max", "attention")
PARTS = ("encoder", "pool", "head")  # layer names of a model the strategy splits


class EmbeddingStrategy(Strategy):
    """Depth-pooled slabs: ``EmbeddingStrategy(slab=5, pool="max")`` configures a run."""

    name = "embedding"
    title, summary = CATALOG["embedding"]
    default_normalize = "window:60,200"

    def __init__(self, slab: int = SLAB, pool: str = "mean"):
        self.slab, self.pool = check_slab(slab), check_pool(pool)

    @property
    def options(self) -> dict:
        """The settings that shape this strategy's scores (recorded with a run)."""
        return {"slab": self.slab, "pool": self.pool}

    def notes(self, volume) -> list[str]:
        half = (self.slab - 1) // 2
        text = (
            f"embedding: each slice is scored from a slab of {self.slab} slices ({half} before, {self.slab - 1 - half} after; "
            f"fewer at the ends), {self.pool}-pooled; the volume score pools all slices"
        )
        return [text]

    def build_model(self) -> Any:
        import keras
        from keras import layers

        keras.utils.set_random_seed(3)
        encoder = keras.Sequential(
            [
                keras.Input(SLICE),
                layers.Conv2D(16, 3, activation="relu", padding="same"),
                layers.MaxPooling2D(2),
                layers.Conv2D(32, 3, activation="relu", padding="same"),
                layers.MaxPooling2D(2),
                layers.Conv2D(32, 3, activation="relu", padding="same"),
                layers.GlobalMaxPooling2D(),
                layers.Dense(EMBEDDING, activation="relu"),
            ],
            name="slice_encoder",
        )
        head = keras.Sequential(
            [keras.Input((EMBEDDING,)), layers.Dense(16, activation="relu"), layers.Dense(1, activation="sigmoid")],
            name="head",
        )
        slices = keras.Input((None, *SLICE), name="slices")
        embeddings = layers.TimeDistributed(encoder, name="encoder")(slices)
        pooled = layers.GlobalAveragePooling1D(name="pool")(embeddings)
        return keras.Model(slices, head(pooled), name="embedding_slab")

    def plan(self, volume_shape, spec: ModelSpec, batch_size: int) -> Plan:
        dims = spec.input_shape
        score_vector(spec, self.name)
        if len(dims) == 1 and dims[0]:
            return SlabPlan(volume_shape[0], flat_shape(dims[0], volume_shape, spec.slice_hint), self.slab, self.pool, batch_size)
        if len(dims) == 4:
            return SlabPlan(volume_shape[0], image_shape(dims[1:], volume_shape), self.slab, self.pool, batch_size, split=True)
        raise ModelError(
            "the embedding strategy needs a flattened slice model (F,) or a sequence model (None, H, W, C) "
            f"with layers named {', '.join(PARTS)}; this model takes {shape_text(dims)} (the volume's slices are {shape_text(volume_shape[1:])})"
        )


def check_slab(slab: Any) -> int:
    """``slab`` as a positive whole number of slices, or a clear error."""
    if isinstance(slab, bool) or not isinstance(slab, (int, np.integer)) or slab < 1:
        raise SlicewiseError(f"slab must be a whole number of slices, at least 1; not {slab!r}")
    return int(slab)


def check_pool(pool: Any) -> str:
    if pool not in POOLS:
        raise SlicewiseError(f"unknown pooling {pool!r}: choose one of {', '.join(POOLS)}")
    return str(pool)


def configured(strategy: Strategy, slab: int | None = None, pool: str | None = None) -> Strategy:
    """``strategy`` with the embedding slab and pooling asked for (None: the default); an error
    if they are asked of another strategy."""
    if slab is None and pool is None:
        return strategy
    if not isinstance(strategy, EmbeddingStrategy):
        raise SlicewiseError(f"slab and pooling apply to the embedding strategy, not to {strategy.name}")
    return EmbeddingStrategy(strategy.slab if slab is None else slab, strategy.pool if pool is None else pool)


# -- splitting a model into encoder and head -----------------------------------------------------


@dataclass(frozen=True)
class Parts:
    """A sequence model's per-slice encoder and its head, as callable Keras models."""

    encoder: Any  # (N, H, W, C) → (N, E)
    head: Any  # (N, E) → (N, K)
    features: int  # E


_SPLITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def split_model(model: Any) -> Parts:
    """The encoder and head of ``model`` (layers named ``encoder``, ``pool``, ``head``), found once
    per model so that their traced calls are reused."""
    if model not in _SPLITS:
        _SPLITS[model] = _split(model)
    return _SPLITS[model]


def _split(model: Any) -> Parts:
    layers = {layer.name: layer for layer in getattr(model, "layers", [])}
    inner = [name for name, layer in layers.items() if type(layer).__name__ != "InputLayer"]
    if inner != list(PARTS):
        raise ModelError(
            f"the embedding strategy splits a sequence model into layers named {', '.join(PARTS)} "
            f"(in that order, nothing else); this model's layers are {', '.join(inner) or 'none'} "
            "(use the temporal strategy for other sequence models)"
        )
    encoder, pool, head = (layers[name] for name in PARTS)
    if type(encoder).__name__ == "TimeDistributed":
        encoder = encoder.layer
    if type(pool).__name__ not in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
        raise ModelError(f"the embedding model's pool layer is a {type(pool).__name__}; expected GlobalAveragePooling1D or GlobalMaxPooling1D")
    try:
        out = tuple(encoder.outputs[0].shape)[1:]
        head_in = tuple(head.inputs[0].shape)[1:]
    except (AttributeError, IndexError, ValueError):
        raise ModelError("the embedding model's encoder and head must be Keras models (Sequential or functional)") from None
    if len(out) != 1 or out != head_in or not out[0]:
        raise ModelError(f"the embedding model's encoder gives {shape_text(out)} per slice but its head takes {shape_text(head_in)}")
    return Parts(encoder, head, int(out[0]))


# -- the plan --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartStep(Step):
    """A model call on one part of the model (``encoder``, ``head``; None: the whole model)."""

    part: str | None = None


class SlabPlan(Plan):
    """Fit (and embed) every slice once, then score the pooled slab of each slice and the pool
    over all slices.

    A split model runs as two parts (`parts`): encoder batches, whose outputs `read` keeps, then
    head batches.  A flat model is the head itself, fed pooled pixels.
    """

    def __init__(self, depth: int, shape: SliceShape, slab: int, pool: str, batch_size: int, split: bool = False):
        self.depth, self.shape, self.slab, self.pool, self.split = depth, shape, slab, pool, split
        batches = -(-depth // batch_size)
        self.calls = batches * (2 if split else 1) + 1
        image = (shape.height, shape.width, shape.channels)
        self.signature = (None, None, *image) if split else (None, shape.features)
        self._image = image
        self._embeddings: torch.Tensor | None = None
        self._head_part: str | None = None

    def parts(self, model: Any) -> dict[str, tuple[Any, tuple]]:
        """The model parts the steps name, with their input signatures (none for a flat model)."""
        if not self.split:
            return {}
        parts = split_model(model)
        self._head_part = "head"
        return {"encoder": (parts.encoder, (None, *self._image)), "head": (parts.head, (None, parts.features))}

    def steps(self, data, normalize: Normalize, batch_size: int) -> Iterator[Step]:
        if self.split and self._head_part is None:
            raise ModelError("a split embedding model needs its parts: call plan.parts(model) first")
        self._embeddings = None
        for start in range(0, self.depth, batch_size):
            fitted = fit_slices(normalize(data[start : start + batch_size]), self.shape)
            indices = np.arange(start, start + len(fitted))
            if self.split:
                yield PartStep(fitted, indices, "encoder")  # `read` stores the embeddings
            else:
                self._keep(fitted.reshape(len(fitted), -1), indices)
        embeddings = self._embeddings
        assert embeddings is not None
        for start in range(0, self.depth, batch_size):
            centres = torch.arange(start, min(start + batch_size, self.depth))
            yield PartStep(slab_pool(embeddings, centres, self.slab, self.pool), centres.numpy(), self._head_part)
        yield PartStep(volume_pool(embeddings, self.pool).unsqueeze(0), None, self._head_part)

    def read(self, y: np.ndarray, step: Step) -> np.ndarray | None:
        if getattr(step, "part", None) == "encoder":
            self._keep(torch.from_numpy(np.asarray(y, dtype=np.float32)).reshape(len(y), -1), step.indices)
            return None  # an embedding, not a score
        return y

    def _keep(self, rows: torch.Tensor, indices: np.ndarray) -> None:
        if self._embeddings is None:
            self._embeddings = torch.empty((self.depth, rows.shape[1]), dtype=torch.float32)
        self._embeddings[int(indices[0]) : int(indices[-1]) + 1] = rows


# -- pooling ----------------------------------------------------------------------------------------


def slab_bounds(centres: torch.Tensor, slab: int, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[lo, hi)`` of the slab centred on each slice: ``(slab - 1) // 2`` slices before it, the rest
    after, cut to ``[0, depth)``."""
    lo = centres - (slab - 1) // 2
    return lo.clamp(min=0), (lo + slab).clamp(max=depth)


def slab_pool(x: torch.Tensor, centres: torch.Tensor, slab: int, pool: str) -> torch.Tensor:
    """Rows ``x`` ``(D, E)`` pooled over the slab of each centre: ``(len(centres), E)``."""
    depth = x.shape[0]
    lo, hi = slab_bounds(centres, slab, depth)
    if pool == "mean":
        first, last = int(lo.min()), int(hi.max())
        part = torch.cat([torch.zeros(1, x.shape[1], dtype=torch.float64), x[first:last].double().cumsum(0)])
        return ((part[hi - first] - part[lo - first]) / (hi - lo).unsqueeze(1)).float()
    index = lo.unsqueeze(1) + torch.arange(slab)
    valid = index < hi.unsqueeze(1)
    window = x[index.clamp(max=depth - 1)]  # (n, slab, E)
    if pool == "max":
        return window.masked_fill(~valid.unsqueeze(2), -math.inf).amax(dim=1)
    return _attend(window, valid)


def volume_pool(x: torch.Tensor, pool: str) -> torch.Tensor:
    """Rows ``x`` ``(D, E)`` pooled over all of them: ``(E,)``."""
    if pool == "mean":
        return x.double().mean(dim=0).float()
    if pool == "max":
        return x.amax(dim=0)
    return _attend(x.unsqueeze(0), torch.ones(1, x.shape[0], dtype=torch.bool))[0]


def _attend(window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Softmax-weighted mean of each window's rows, the weights from ``q·e_i / √E`` with ``q`` the
    window's mean: ``window`` ``(n, k, E)``, ``valid`` ``(n, k)`` → ``(n, E)``."""
    w = window.double()
    mask = valid.unsqueeze(2)
    query = (w * mask).sum(dim=1) / mask.sum(dim=1)
    logits = (w @ query.unsqueeze(2)).squeeze(2) / math.sqrt(window.shape[2])
    weights = torch.softmax(logits.masked_fill(~valid, -math.inf), dim=1)
    return (weights.unsqueeze(2) * w).sum(dim=1).float()
