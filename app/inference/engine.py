"""The inference engine: runs a strategy's plan through a model, batch by batch.

Qt-free.  The thread that calls ``Engine`` owns TensorFlow (Keras is not thread-safe): the
CLI calls it on the main thread, the GUI on its one worker thread.  Each model call is a traced
``model(x, training=False)`` with a fixed input signature; progress is reported after every
batch and cancellation is checked before every batch.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from app import channels as channel_recipes
from app import preprocessing
from app.display import looks_like_ct
from app.errors import Cancelled, ModelError, SlicewiseError
from app.inference import onnx_model
from app.inference.models import (
    BUILTIN_PREFIX,
    LoadedModel,
    builtin_model,
    load_model_file,
    misfit,
    model_failed,
    model_file,
)
from app.inference.runtime import Runtime, bootstrap, to_tensorflow
from app.prediction import Prediction
from app.segmentation.run import OnMap, dense_run
from app.strategies import Strategy
from app.volume import Volume

if TYPE_CHECKING:
    from app.channels import ChannelRecipe
    from app.uncertainty import Uncertainty

OnBatch = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray | None], None]  # done, total, slice indices, scores, their sd (an uncertainty method's) or None


class Engine:
    """Loads models and scores volumes on the calling thread."""

    def __init__(self, threads: int | None = None, use_gpu: bool = True):
        self._threads, self._use_gpu = threads, use_gpu
        self._runtime: Runtime | None = None
        self._builtins: dict[str, LoadedModel] = {}
        self._traced: dict[tuple[int, tuple], Callable] = {}

    @property
    def runtime(self) -> Runtime:
        """TensorFlow, started on first use (see `start`)."""
        return self.start()

    def start(self) -> Runtime:
        """Import and configure TensorFlow now, on this thread (the one that will own the models)."""
        if self._runtime is None:
            self._runtime = bootstrap(self._threads, self._use_gpu)
        return self._runtime

    def builtin(self, strategy: Strategy) -> LoadedModel:
        """The strategy's built-in model, loaded once."""
        if strategy.name not in self._builtins:
            self.start()
            self._builtins[strategy.name] = builtin_model(strategy)
        return self._builtins[strategy.name]

    def load(
        self, path: str | Path, normalize: str | None = None, unsafe: bool = False, *, output: str | None = None, classes: Sequence[str] | str | None = None
    ) -> LoadedModel:
        """A user's model file (or SavedModel folder), loaded with Keras safe mode on unless
        ``unsafe``; ``normalize`` overrides the preprocessing its JSON records (none without one),
        ``output`` picks one of several outputs, ``classes`` names its scores.  An ``.onnx`` file
        is served by ONNX Runtime, with this engine's threads (no TensorFlow)."""
        normalize = None if normalize is None else preprocessing.parse_spec(normalize)
        if onnx_model.is_onnx(path):
            return onnx_model.load_onnx(path, normalize, unsafe, output=output, classes=classes, threads=self._threads, use_gpu=self._use_gpu)
        self.start()
        model = load_model_file(model_file(path), normalize, unsafe, output=output, classes=classes)
        if str(path).startswith(BUILTIN_PREFIX):  # a shipped model, e.g. builtin:lesion (segmentation)
            model = replace(model, source=f"built-in:{model_file(path).stem}")
        return model

    def warm_up(self, strategy: Strategy, model: LoadedModel) -> None:
        """Trace the model's call once on a small blank volume, so the first real batch is fast."""
        dims = [d for d in model.spec.input_shape if d is not None]
        shape = (3, *(model.spec.slice_hint or (dims[-3:] if len(dims) >= 3 else (32, 32, 1))))
        try:
            self.run(Volume.from_tensor(torch.zeros(shape)), strategy, model, normalize="none", batch_size=3)
        except ModelError:
            pass  # a model that does not fit says so when it is run on a real volume

    def run(
        self,
        volume: Volume,
        strategy: Strategy,
        model: LoadedModel | None = None,
        *,
        normalize: str | None = None,
        channels: str | ChannelRecipe | None = None,
        output: str | None = None,
        classes: Sequence[str] | str | None = None,
        batch_size: int = 32,
        on_batch: OnBatch | None = None,
        cancelled: Callable[[], bool] | None = None,
        uncertainty: Uncertainty | None = None,
        on_map: OnMap | None = None,
        reduce: str = "area",
        mask_threshold: float = 0.5,
        overlap: float = 0.25,
        fit: str = "tile",
    ) -> Prediction:
        """Score ``volume``; ``normalize`` and ``channels`` (the channel recipe, `app.channels`)
        default to what the model expects; ``output`` and ``classes`` choose the model's output and
        name its scores (as `LoadedModel.with_output` / `with_classes`; default: the model's own);
        ``uncertainty`` makes several passes per batch, scores their mean (`app.uncertainty`).

        A segmentation model (`app.segmentation`) gives a map per slice: ``on_map(indices, dense)``
        gets each batch's finished slices and the run's `DenseMap` that holds them; ``reduce``
        (area, max, mean) turns them into scores; ``mask_threshold``, ``overlap`` and ``fit``
        (tile, resize) say how the map is made."""
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, not {batch_size}")
        started = time.perf_counter()
        model = model or self.builtin(strategy)
        if output is not None and output != model.output:
            model = model.with_output(output)
        if classes is not None:
            model = model.with_classes(classes)
        recipe = channel_recipes.parse_recipe(channels or model.channels)
        spec = _normalization(recipe, normalize, model.normalize)
        try:
            dense = dense_run(model, volume, strategy.name, reduce=reduce, threshold=mask_threshold, overlap=overlap, fit=fit, on_map=on_map)
            wanted = dense.channels if dense else channel_recipes.model_channels(model.spec.input_shape, model.spec.slice_hint)
            made = recipe.channels(volume.channels, wanted)
            plan = dense.make_plan((*volume.shape[:3], made), batch_size) if dense else strategy.plan((*volume.shape[:3], made), model.spec, batch_size)
            # a plan that runs the model in parts (the embedding slab: encoder, then head) names them
            parts = {name: self._traced_keras(part, sig) for name, (part, sig) in plan.parts(model.keras_model).items()} if hasattr(plan, "parts") else {}
        except ModelError as exc:
            raise misfit(model, volume.shape, str(exc)) from None
        source = recipe.source(volume.data, wanted)
        nonfinite = preprocessing.nonfinite_slices(volume.data)
        norm = preprocessing.fit(spec, volume.data, zero_nonfinite=len(nonfinite) > 0)
        call = self._traced_call(model, plan.signature)
        passes = self._passes(uncertainty, model, plan, volume.depth, dense.reduce_block if dense else None) if uncertainty else None
        scores: np.ndarray | None = None
        volume_score = None
        prepare = model_time = 0.0
        steps = plan.steps(source, norm, batch_size)
        done = 0
        with self._device(model):
            while True:
                if cancelled is not None and cancelled():
                    raise Cancelled("cancelled")
                t0 = time.perf_counter()
                try:
                    step = next(steps, None)
                except ModelError as exc:  # the adapter cannot fit the volume to the model's input
                    raise misfit(model, volume.shape, str(exc)) from None
                if step is None:
                    break
                t1 = time.perf_counter()
                try:
                    if passes is not None:  # a list of outputs, a pass each
                        y = passes.call(step.x)
                    else:
                        y = (parts[step.part] if getattr(step, "part", None) else call)(step.x)
                except Exception as exc:  # noqa: BLE001 - a model that raises is reported, not fatal
                    raise model_failed(model, volume.shape, tuple(step.x.shape), exc) from None
                t2 = time.perf_counter()
                prepare, model_time = prepare + t1 - t0, model_time + t2 - t1
                out = plan.read(y, step) if passes is None else passes.read(y, step, plan.read)
                if out is None:  # an intermediate call (the embedding slab's encoder): no scores yet
                    done += 1
                    if on_batch is not None:
                        on_batch(done, plan.calls, np.empty(0, int), np.empty((0, 0), np.float32), None)
                    continue
                indices = step.indices
                if dense is not None:  # the maps of the slices this batch finished, stored and reduced to scores
                    indices, out = dense.take(*out)
                block = np.asarray(out, dtype=np.float32).reshape(1 if indices is None else len(indices), -1)
                if indices is None:
                    volume_score = block[0]
                else:
                    if scores is None:
                        scores = np.full((volume.depth, block.shape[1]), np.nan, dtype=np.float32)
                    scores[indices] = block
                done += 1
                if on_batch is not None:
                    shown = indices if indices is not None else np.empty(0, int)
                    on_batch(done, plan.calls, shown, block, passes.spread_of(shown) if passes is not None else None)
        assert scores is not None
        if dense is None and model.classes and len(model.classes) != scores.shape[1]:
            raise ModelError(f"{model.name}: {len(model.classes)} class names ({', '.join(model.classes)}) for {scores.shape[1]} scores per slice")
        scores[nonfinite] = np.nan  # a score computed from NaN/Inf voxels would mean nothing
        total = time.perf_counter() - started
        prediction = Prediction(
            scores=scores,
            volume_score=volume_score,
            strategy=strategy.name,
            model_source=model.source,
            model_sha256=model.sha256,
            normalize=spec,
            device=model.keras_model.device_label if model.backend == "onnx" else self.runtime.label,
            batch_size=batch_size,
            timings={"prepare_s": prepare, "model_s": model_time, "total_s": total},
            nonfinite_slices=nonfinite.tolist(),
            channels=recipe.resolved(wanted).spec,
            output=model.output,
            output_names=model.outputs,
            classes=dense.score_classes if dense else model.classes,
            activation=model.activation,
            model_about=model.about,
            notes=[*strategy.notes(volume), *recipe.notes(volume), *builtin_caveat(model, volume)],
            **(dense.prediction_fields() if dense else {}),
        )
        return prediction if passes is None else passes.finish(prediction)

    def _traced_call(self, model: LoadedModel, signature: tuple) -> Callable:
        """``model(x, training=False)`` traced once per model and input signature (an ONNX
        model's runner as it is): a torch batch in, a NumPy array out."""
        if model.backend == "onnx":
            return model.keras_model
        return self._traced_keras(model.keras_model, signature)

    def _passes(self, uncertainty: Uncertainty, model: LoadedModel, plan, depth: int, reduce: Callable | None):
        """The passes of an uncertainty method (imported only when one is asked for); ``reduce``: a
        dense run's per-slice reduction of each pass's maps.  A Keras model's passes are traced
        calls on TensorFlow tensors; an ONNX model's, its runner on the torch batch (no TensorFlow)."""
        from app.uncertainty.passes import Passes

        if model.backend == "onnx":
            if uncertainty.method == "mc-dropout":
                raise ModelError(f"{model.name}: --mc-dropout needs a Keras model with dropout layers; an ONNX export runs in inference mode, its dropout gone")
            return Passes(uncertainty, model, plan, depth, lambda runner: runner, lambda x: x, reduce)
        runtime = self.runtime
        return Passes(uncertainty, model, plan, depth, lambda m: self._traced_keras(m, plan.signature).on_tensorflow, lambda x: to_tensorflow(runtime, x), reduce)

    def _device(self, model: LoadedModel):
        """TensorFlow's device scope for a Keras model; ONNX Runtime places its own calls."""
        return contextlib.nullcontext() if model.backend == "onnx" else self.runtime.tf.device(self.runtime.device)

    def _traced_keras(self, keras_model, signature: tuple) -> Callable:
        """``keras_model(x, training=False)`` traced once per Keras model and input signature."""
        key = (id(keras_model), signature)
        if key not in self._traced:
            tf = self.runtime.tf
            self._traced[key] = _Traced(
                self.runtime,
                tf.function(
                    lambda x: keras_model(x, training=False),
                    input_signature=[tf.TensorSpec(signature, tf.float32)],
                    autograph=False,
                ),
            )
        return self._traced[key]


def input_settings(model: LoadedModel, normalize: str | None = None, channels: str | ChannelRecipe | None = None) -> tuple[ChannelRecipe, str]:
    """The channel recipe and normalisation spec that `Engine.run` applies for these arguments
    (saliency builds its inputs with the same)."""
    recipe = channel_recipes.parse_recipe(channels or model.channels)
    return recipe, _normalization(recipe, normalize, model.normalize)


def _normalization(recipe: ChannelRecipe, normalize: str | None, model_default: str) -> str:
    """The normalisation spec to apply: none after a recipe that maps intensities itself."""
    if not recipe.maps_intensity:
        return preprocessing.parse_spec(normalize or model_default)
    if normalize is not None and preprocessing.parse_spec(normalize) != "none":
        raise SlicewiseError(f"the {recipe.spec} channel recipe maps intensities itself: leave the normalisation out (or none), not {normalize!r}")
    return "none"


class _Traced:
    """A ``tf.function`` with a fixed input signature, called through its one concrete function.

    That skips the function's per-call dispatch (binding the arguments, looking the trace up):
    about 0.15 ms a call here, a tenth of a 32-slice batch of the built-in model.  It is traced
    on the first call, so a model that cannot take the input fails on its first batch.
    """

    def __init__(self, runtime: Runtime, function):
        self.runtime, self.function = runtime, function
        self.concrete = None

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return self.on_tensorflow(to_tensorflow(self.runtime, x)).numpy()

    def on_tensorflow(self, x):
        """The call on a TensorFlow tensor, a TensorFlow tensor back (for batches built in TensorFlow)."""
        if self.concrete is None:
            self.concrete = self.function.get_concrete_function()
        return self.concrete(x)


BUILTIN_ON_NON_CT = "built-in demo model: trained on CT phantoms; scores on this volume are not meaningful"


_CT_LIKE: weakref.WeakKeyDictionary[Volume, bool] = weakref.WeakKeyDictionary()  # a percentile of a sample: 4-5 ms


def builtin_caveat(model: LoadedModel, volume: Volume) -> list[str]:
    """A note when a built-in model (trained on CT phantoms) scores a volume that is not CT-like
    (decided once per volume: the viewer scores the same one again and again)."""
    if not model.source.startswith("built-in"):
        return []
    if volume not in _CT_LIKE:
        _CT_LIKE[volume] = looks_like_ct(volume)
    return [] if _CT_LIKE[volume] else [BUILTIN_ON_NON_CT]
