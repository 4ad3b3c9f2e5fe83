"""`Passes`: the model calls of one batch under an uncertainty method, and their mean and spread.

The engine hands each batch's fitted input to `call` (one list of outputs, a pass each) and the
outputs to `read`, which reads every pass through the plan (``Plan.read``) and returns the mean of
their scores; the standard deviation is kept per slice (`spread`).
A dense plan (segmentation) blends windows statefully, so each pass gets a blender of its own
(``plan.blender()``, sharing the plan's windows, holding only the slices in flight): a batch hands
back, per pass, the probability maps of the slices it finished; `read` returns their mean (what the
run stores, reduces and streams: blending is linear, so it is the blend of the mean), keeps their
per-pixel sd in `pixel_spread` and the sd of each pass's reduction (``reduce``: areas…) as the
spread.  Passes of a batch run as one call where
memory allows: MC dropout tiles the batch N times (``(N·B, …)``, one traced call), TTA stacks
the augmented copies; an ensemble calls each member.  "Where memory allows" is a budget of input
values per call: large on a GPU, about one batch on the CPU (see `CPU_CALL_VALUES`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from app.errors import ModelError
from app.strategies.base import shape_text
from app.uncertainty.augment import is_dense, parse_augmentations
from app.uncertainty.combine import RunningMeanSd, SpreadMap, mean_sd
from app.uncertainty.dropout import mc_dropout_model
from app.uncertainty.method import Uncertainty

# Input values per tiled call (at least one pass per call).  On a GPU, the more the better (128 MB
# of float32).  On the CPU a larger batch is *slower* per slice once its activations leave the
# caches: 20 passes of 32 64×64 slices took 130 ms tiled into one call against 85 ms as 20 calls
# (the slice CNN of `mc_dropout_vs_bare`), so there a call holds about one batch (1 MB of input).
GPU_CALL_VALUES = 1 << 25
CPU_CALL_VALUES = int(os.environ.get("SLICEWISE_MC_CALL_VALUES", 1 << 18))

Traced = Callable[[Any], Callable]  # a Keras model → its traced call on the plan's signature


class Passes:
    """The passes of one run (see the module's docstring)."""

    def __init__(
        self,
        uncertainty: Uncertainty,
        model: Any,
        plan: Any,
        depth: int,
        traced: Traced,
        to_tf: Callable[[torch.Tensor], Any],
        reduce: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        if hasattr(plan, "parts"):
            raise ModelError(f"{uncertainty.title()}: the embedding strategy's two-stage plan is not supported; use the slice or temporal strategy")
        self.uncertainty, self.plan, self.depth, self.to_tf = uncertainty, plan, depth, to_tf
        self.spread: np.ndarray | None = None
        self.volume_sd: np.ndarray | None = None
        self.pixel_spread: SpreadMap | None = None  # a dense plan's per-pixel sd, (D, H, W, K)
        self.reduce = reduce  # a dense plan's per-slice reduction (area…) of a block of maps (n, H, W, K)
        self.blends: list[Any] | None = None  # a dense plan's blender per pass, made on the first batch
        method = uncertainty.method
        if method == "mc-dropout":
            self.calls = [traced(mc_dropout_model(model.keras_model, model.name, uncertainty.seed).keras_model)]
        elif method == "tta":
            if len(plan.signature) < 4:
                raise ModelError(f"--tta needs a model that takes images (…, H, W, C); {model.name} takes {shape_text(plan.signature[1:])}")
            if getattr(getattr(plan, "spec", None), "channels_first", False):
                raise ModelError(f"--tta: {model.name} takes channels first; test-time augmentations flip and shift (…, H, W, C) inputs")
            self.augmentations = parse_augmentations(uncertainty.augmentations)
            self.calls = [traced(model.keras_model)]
        else:
            members = uncertainty.members or (model,)
            for member in members[1:]:
                _check_alike(model, member)
            self.calls = [traced(member.keras_model) for member in members]

    def call(self, x: torch.Tensor) -> list[np.ndarray]:
        """The outputs of every pass on the batch ``x``, dense ones mapped back to ``x``'s pixels."""
        method = self.uncertainty.method
        if method == "ensemble":
            tensor = self.to_tf(x)
            return [_array(call(tensor)) for call in self.calls]
        if method == "mc-dropout":
            return self._stacked([x] * self.uncertainty.passes)
        outputs = self._stacked([x, *(aug.apply(x) for aug in self.augmentations)])
        if not is_dense(outputs[0], x):
            return outputs
        return [outputs[0], *(aug.invert(y) for aug, y in zip(self.augmentations, outputs[1:]))]

    def _stacked(self, inputs: list[torch.Tensor]) -> list[np.ndarray]:
        """One traced call per group of inputs stacked along the batch axis; an output per input.
        The same input repeated (MC dropout) goes to TensorFlow once and is tiled there."""
        rows = len(inputs[0])
        repeated = all(x is inputs[0] for x in inputs)
        tensor = self.to_tf(inputs[0])
        budget = GPU_CALL_VALUES if "GPU" in str(getattr(tensor, "device", "")) else CPU_CALL_VALUES
        per_call = max(1, min(len(inputs), budget // max(1, inputs[0].numel())))
        outputs: list[np.ndarray] = []
        for start in range(0, len(inputs), per_call):
            group = inputs[start : start + per_call]
            if start == 0 and len(group) == 1:
                x = tensor
            elif repeated:
                x = tensor if len(group) == 1 else _tile(tensor, len(group))
            else:
                x = self.to_tf(torch.cat(group) if len(group) > 1 else group[0])
            y = _array(self.calls[0](x))
            outputs += list(y.reshape(len(group), rows, *y.shape[1:]))
        return outputs

    def read(self, outputs: list[np.ndarray], step: Any, read: Callable[[np.ndarray, Any], Any]) -> Any:
        """The mean over passes of what ``read`` makes of each output; keeps the sd per slice.
        A dense plan's passes are blended apart instead (see the module's docstring)."""
        if hasattr(self.plan, "blender"):
            return self._read_dense(outputs, step)
        blocks = [read(y, step) for y in outputs]
        if blocks[0] is None:
            return None
        mean, sd = mean_sd(blocks)
        if step.indices is None:
            self.volume_sd = sd.reshape(-1)
            return mean
        self._keep_spread(step.indices, sd)
        return mean

    def _read_dense(self, outputs: list[np.ndarray], step: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """``(indices, mean probabilities (n, H, W, K))`` of the slices this batch finished in every pass."""
        if self.blends is None:
            self.blends = [self.plan.blender() for _ in outputs]
        maps, reductions = RunningMeanSd(), RunningMeanSd()  # pass by pass: one pass's maps held at a time
        indices = None
        for blend, y in zip(self.blends, outputs):
            finished = blend.read(y, step)  # every pass's blender reads the same windows: all finish the same slices
            if finished is not None:
                indices, block = finished
                maps.add(block)
                if self.reduce is not None:  # the spread of areas is that of each pass's own areas
                    reductions.add(self.reduce(block))
        if indices is None:
            return None
        mean, sd = maps.result()
        if self.pixel_spread is None:
            self.pixel_spread = SpreadMap(self.depth, *mean.shape[1:4])
        self.pixel_spread.put(indices, sd)
        if self.reduce is not None:
            self._keep_spread(indices, reductions.result()[1])
        return indices, mean

    def spread_of(self, indices: np.ndarray) -> np.ndarray | None:
        """The per-slice sd of slices ``indices`` as far as it is known (NaN rows where a dense
        run's reductions are still running), or None before any is."""
        return None if self.spread is None else self.spread[np.asarray(indices, dtype=np.intp)].copy()

    def _keep_spread(self, indices: np.ndarray, sd: np.ndarray) -> None:
        """Store the per-slice sd ``sd`` (one row per slice of ``indices``) in `spread`."""
        rows = sd.reshape(len(indices), -1)
        if self.spread is None or self.spread.shape[1] != rows.shape[1]:
            self.spread = np.full((self.depth, rows.shape[1]), np.nan, dtype=np.float32)
        self.spread[indices] = rows

    def finish(self, prediction: Any) -> Any:
        """``prediction`` with the spread (NaN where scores are) and the method's record."""
        spread = self.spread
        if spread is not None:
            spread[prediction.nonfinite_slices] = np.nan  # as their scores
        record = self.uncertainty.record()
        if self.volume_sd is not None:
            record["volume_score_sd"] = [float(v) for v in self.volume_sd]
        note = f"{self.uncertainty.title()}: scores are the mean of {self.uncertainty.count} passes; score_sd their standard deviation"
        if self.pixel_spread is not None:
            note += " (of each pass's per-slice score); the map is the mean of the passes' probabilities, dense_sd their sd per pixel"
        return dataclasses.replace(prediction, spread=spread, dense_sd=self.pixel_spread, uncertainty=record, notes=[*prediction.notes, note])


def _array(y: Any) -> np.ndarray:
    """A call's output as NumPy: a TensorFlow tensor's (a Keras model), or the array an ONNX runner gives."""
    return y.numpy() if hasattr(y, "numpy") else np.asarray(y)


def _tile(tensor: Any, times: int) -> Any:
    """``tensor`` repeated ``times`` along the batch axis, in TensorFlow (no copy through the host)."""
    import tensorflow as tf

    return tf.tile(tensor, [times] + [1] * (len(tensor.shape) - 1))


def _check_alike(first: Any, member: Any) -> None:
    """Ensemble members must be fitted the same way: one input, output, channel recipe, normalisation and classes."""
    for what, a, b in (
        ("kind", first.backend, member.backend),
        ("input", shape_text(first.spec.input_shape), shape_text(member.spec.input_shape)),
        ("output", shape_text(first.spec.output_shape), shape_text(member.spec.output_shape)),
        ("channels", first.channels, member.channels),
        ("normalisation", first.normalize, member.normalize),
        ("classes", first.classes, member.classes),
    ):
        if a != b:
            raise ModelError(f"--ensemble: {member.name} is not fitted like {first.name}: {what} {b} against {a}; members must take the same input the same way")
