"""Saliency maps: where in a slice the model looked when it scored it.

Grad-CAM (Selvaraju et al.; the recipe of keras-io ``examples/vision/grad_cam.py``) for a model
with a spatial convolution: the gradient of the chosen score with respect to the last spatial
convolution's activations, averaged per channel into channel weights, the weighted sum of the
activations, ReLU.  A sequence model's activations have a step axis; the map is read at the
slice's own step (the centre of a window, or the slice's step of a whole-depth sequence).  An
embedding model split into encoder and head (the ``embedding`` strategy's slabs) is followed
through the strategy's own slab pooling, back to the slice's own encoder activations.  A model
without a spatial convolution (dense layers on flattened pixels) gets gradient × input.

The score is taken before a final sigmoid or softmax, so a saturated output still has gradients.
The model input is built as scoring builds it (`input_settings`, the channel recipe's source and
the strategy's plan), from the asked-for slices and the few slices of context the plan needs
around them; each map is resized back onto the slice's own pixel grid ``(H, W)`` and scaled to
[0, 1] (its maximum is 1 unless it is all 0).

Qt-free; TensorFlow comes from the engine's runtime.  Call it on the thread that owns
TensorFlow (the CLI's main thread, the GUI's inference worker).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from app import channels as channel_recipes
from app import preprocessing
from app.errors import Cancelled, ModelError
from app.inference.engine import input_settings
from app.inference.models import LoadedModel, misfit, model_failed
from app.inference.runtime import to_tensorflow
from app.strategies import Plan, Strategy
from app.strategies.adapt import flat_shape
from app.volume import Volume

if TYPE_CHECKING:
    from app.channels import ChannelRecipe
    from app.inference.engine import Engine

#: Slices of context either side of an asked-for slice beyond what its plan reads (a window, a
#: slab, a channel recipe's neighbours), from which its input is built.
CONTEXT = 0

OnProgress = Callable[[int, int], None]  # maps done, maps asked for


@dataclass(frozen=True)
class _Setup:
    """How one volume is fed to the model: recipe, channels, normalisation and plan signature."""

    recipe: ChannelRecipe
    model_channels: int | None
    made: int  # channels per slice the recipe makes
    norm: Any
    margin: int  # slices of context either side of an asked-for slice
    split: bool  # the plan runs the model as encoder and head


class SaliencyComputer:
    """Saliency maps of one model under one strategy; build once, call `maps` for any volume.

    ``output`` picks the model's output as `Engine.run` does (default: the model's own), and
    ``score_index`` the score (class) of that output the maps explain.
    """

    def __init__(
        self,
        engine: Engine,
        strategy: Strategy,
        model: LoadedModel | None = None,
        *,
        output: str | None = None,
        score_index: int = 0,
        batch_size: int = 16,
    ):
        if batch_size < 1:
            raise ModelError(f"batch size must be at least 1, not {batch_size}")
        self.runtime = engine.runtime
        self._use_model(engine, strategy, model, output, score_index, batch_size)
        if self._parts is None:
            self._graph = _Graph(self.model.keras_model, expected_rank=5 if self.sequence else 4)
            self._head = None
        else:
            encoder, head = self._parts
            self._graph = _Graph(encoder, expected_rank=4, logits=False)
            self._head = _Graph(head, expected_rank=0)
        self._traced: dict[tuple, Any] = {}
        self._norm: tuple[Volume, str, Any] | None = None
        self._whole: tuple[Volume, tuple, list] | None = None

    def _use_model(self, engine: Engine, strategy: Strategy, model: LoadedModel | None, output: str | None, score_index: int, batch_size: int) -> None:
        """The model explained (``model``, or the strategy's built-in, at ``output``) and its
        score ``score_index`` (checked); whether it takes sequences; its encoder/head split."""
        model = model or engine.builtin(strategy)
        if output is not None and output != model.output:
            model = model.with_output(output)
        self.strategy, self.model = strategy, model
        self.score_index, self.batch_size = score_index, batch_size
        count = self.model.spec.output_shape[-1] if self.model.spec.output_shape else None
        if count is not None and not 0 <= score_index < count:
            raise ModelError(f"score {score_index} does not exist: the model gives {count} score(s) per slice")
        self.sequence = len(self.model.spec.input_shape) in (2, 4)  # (n, F) or (n, H, W, C) per sample
        self._parts = self._split_parts()

    @property
    def method(self) -> str:
        """What the maps show, for users: ``Grad-CAM (layer conv2d_2)`` or ``gradient × input``."""
        if self._parts is not None and self._graph.layer is not None:
            return f"Grad-CAM (layer {self._graph.layer.name}, through the slab pooling)"
        return self._graph.method

    def maps(
        self,
        volume: Volume,
        indices: Iterable[int],
        normalize: str | None = None,
        *,
        channels: str | ChannelRecipe | None = None,
        cancelled: Callable[[], bool] | None = None,
        on_progress: OnProgress | None = None,
    ) -> dict[int, np.ndarray]:
        """Maps ``(H, W)`` float32 in [0, 1] for the slices ``indices`` of ``volume``.

        ``normalize`` and ``channels`` are those of the run being explained (default: what the
        model expects), as for `Engine.run`.  ``cancelled`` is checked before every batch.
        """
        wanted = sorted({int(i) for i in indices})
        if not wanted:
            return {}
        if wanted[0] < 0 or wanted[-1] >= volume.depth:
            bad = wanted[0] if wanted[0] < 0 else wanted[-1]
            raise ModelError(f"slice {bad} does not exist: the volume has slices 0 … {volume.depth - 1}")
        setup = self._setup(volume, normalize, channels)
        _, height, width, _ = volume.shape
        batches = self._slab_batches(volume, setup, wanted) if setup.split else self._batches(volume, setup, wanted)
        result: dict[int, np.ndarray] = {}
        with self._device():
            while True:
                if cancelled is not None and cancelled():
                    raise Cancelled("cancelled")
                batch = next(batches, None)
                if batch is None:
                    break
                slices, x, steps, direction = batch
                try:
                    cams = self._call(x, steps, direction, volume.shape)
                except Exception as exc:  # noqa: BLE001 - a model that raises is reported, not fatal
                    raise model_failed(self.model, volume.shape, tuple(x.shape), exc) from None
                for index, cam in zip(slices, _on_grid(cams, height, width)):
                    result[index] = cam
                if on_progress is not None:
                    on_progress(len(result), len(wanted))
        return result

    def _device(self):
        """The device scope the model's calls run in (TensorFlow's, for Grad-CAM)."""
        return self.runtime.tf.device(self.runtime.device)

    # -- inputs --------------------------------------------------------------------------------

    def _split_parts(self) -> tuple[Any, Any] | None:
        """``(encoder, head)`` when the strategy runs this model in parts, else None."""
        dims = self.model.spec.input_shape
        image = [d or 32 for d in dims[-3:]] if len(dims) >= 3 else None
        if image is None:
            return None
        try:
            plan = self.strategy.plan((4, *image), self.model.spec, self.batch_size)
            parts = plan.parts(self.model.keras_model) if hasattr(plan, "parts") else {}
        except ModelError:
            return None
        return (parts["encoder"][0], parts["head"][0]) if parts else None

    def _setup(self, volume: Volume, normalize: str | None, channels) -> _Setup:
        recipe, spec = input_settings(self.model, normalize, channels)
        wanted = channel_recipes.model_channels(self.model.spec.input_shape, self.model.spec.slice_hint)
        try:
            made = recipe.channels(volume.channels, wanted)
            reach = (recipe.resolved(wanted).half_width or 0) if recipe.kind == "neighbors" else 0
        except ModelError as exc:
            raise misfit(self.model, volume.shape, str(exc)) from None
        plan = self._plan((*volume.shape[:3], made), volume)
        if hasattr(plan, "slab"):  # each slice's score pools a slab of slices around it
            extent = int(plan.slab)
        elif self.sequence:  # a window of n slices, or (n fixed to the depth) the whole volume
            extent = int(plan.signature[1] or volume.depth)
        else:
            extent = 0
        margin = CONTEXT + reach + extent
        if self._norm is None or self._norm[0] is not volume or self._norm[1] != spec:
            nonfinite = preprocessing.nonfinite_slices(volume.data)
            self._norm = (volume, spec, preprocessing.fit(spec, volume.data, zero_nonfinite=len(nonfinite) > 0))
        return _Setup(recipe, wanted, made, self._norm[2], margin, self._parts is not None)

    def _plan(self, shape: tuple, volume: Volume) -> Plan:
        try:
            return self.strategy.plan(shape, self.model.spec, self.batch_size)
        except ModelError as exc:
            raise misfit(self.model, volume.shape, str(exc)) from None

    def _span_plan(self, volume: Volume, setup: _Setup, lo: int, hi: int) -> tuple[Plan, Any]:
        """The plan and channel source for slices ``[lo, hi)``, as scoring makes them."""
        part = volume.data[lo:hi]
        plan = self._plan((hi - lo, *volume.shape[1:3], setup.made), volume)
        return plan, setup.recipe.source(part, setup.model_channels)

    def _direction(self, rows: int) -> np.ndarray:
        count = self.model.spec.output_shape[-1] or self.score_index + 1
        direction = np.zeros((rows, count), np.float32)
        direction[:, self.score_index] = 1.0
        return direction

    def _batches(self, volume: Volume, setup: _Setup, wanted: list[int]) -> Iterator[tuple[list[int], torch.Tensor, np.ndarray, np.ndarray]]:
        """Batches ``(slices, model inputs, own steps, score direction)``, one input per slice."""
        per_input = 1
        chosen, inputs, steps = [], [], []
        for index, x, step in self._inputs(volume, setup, wanted):
            per_input = int(x.shape[0]) if self.sequence else 1
            chosen.append(index)
            inputs.append(x)
            steps.append(step)
            if len(chosen) >= max(1, self.batch_size // per_input):
                yield chosen, torch.stack(inputs), np.array(steps, np.int32), self._direction(len(chosen))
                chosen, inputs, steps = [], [], []
        if chosen:
            yield chosen, torch.stack(inputs), np.array(steps, np.int32), self._direction(len(chosen))

    def _inputs(self, volume: Volume, setup: _Setup, wanted: list[int]) -> Iterator[tuple[int, torch.Tensor, int]]:
        """``(slice, its model input, the output step its score is read at or -1)`` per slice."""
        wanted_set = set(wanted)
        for lo, hi in _spans(wanted, setup.margin, volume.depth):
            if setup.margin >= volume.depth:  # one input holds the whole volume: made once, kept
                rows = self._whole_volume_rows(volume, setup)
            else:
                rows = self._span_rows(volume, setup, lo, hi)
            for index, x, at in rows:
                if index in wanted_set:
                    yield index, x, at

    def _span_rows(self, volume: Volume, setup: _Setup, lo: int, hi: int) -> Iterator[tuple[int, torch.Tensor, int]]:
        """Every slice of ``[lo, hi)`` with its model input, from the plan over that span."""
        per_step = len(self.model.spec.output_shape) == 2
        plan, source = self._span_plan(volume, setup, lo, hi)
        try:
            for step in plan.steps(source, setup.norm, self.batch_size):
                if step.indices is None:  # a volume-level input (a pool over all slices)
                    continue
                for local, (sample, at) in zip(step.indices, _rows(plan, step, per_step)):
                    yield lo + int(local), step.x[sample], int(at)
        except ModelError as exc:
            raise misfit(self.model, volume.shape, str(exc)) from None

    def _whole_volume_rows(self, volume: Volume, setup: _Setup) -> list[tuple[int, torch.Tensor, int]]:
        """The rows of a plan whose input is the whole volume (a sequence over all of depth),
        kept for the last volume and settings: a scrubbing viewer asks for one slice at a time."""
        key = (setup.recipe.spec, setup.norm)
        if self._whole is None or self._whole[0] is not volume or self._whole[1] != key:
            self._whole = (volume, key, list(self._span_rows(volume, setup, 0, volume.depth)))
        return self._whole[2]

    def _slab_batches(self, volume: Volume, setup: _Setup, wanted: list[int]) -> Iterator[tuple[list[int], torch.Tensor, np.ndarray, np.ndarray]]:
        """For an encoder + head plan: each slice's fitted input and the direction, in its
        embedding, in which its slab's score grows (through the strategy's own slab pooling)."""
        from app.strategies.embedding import slab_pool

        wanted_set = set(wanted)
        for lo, hi in _spans(wanted, setup.margin, volume.depth):
            plan, source = self._span_plan(volume, setup, lo, hi)
            parts = plan.parts(self.model.keras_model)
            encode = self._plain_call(parts["encoder"][0], parts["encoder"][1])
            embeddings, fitted = None, {}
            try:
                for step in plan.steps(source, setup.norm, self.batch_size):
                    if getattr(step, "part", None) != "encoder":
                        break
                    y = encode(to_tensorflow(self.runtime, step.x)).numpy()
                    plan.read(y, step)
                    if embeddings is None:
                        embeddings = torch.empty((hi - lo, y.shape[1]), dtype=torch.float32)
                    embeddings[step.indices] = torch.from_numpy(y.reshape(len(y), -1))
                    for row, local in enumerate(step.indices):
                        if lo + int(local) in wanted_set:
                            fitted[lo + int(local)] = step.x[row]
            except ModelError as exc:
                raise misfit(self.model, volume.shape, str(exc)) from None
            assert embeddings is not None
            chosen = sorted(fitted)
            for start in range(0, len(chosen), self.batch_size):
                batch = chosen[start : start + self.batch_size]
                leaves, pooled = [], []
                for index in batch:
                    local = index - lo
                    leaf = embeddings[local].clone().requires_grad_(True)
                    rows = torch.cat([embeddings[:local], leaf.unsqueeze(0), embeddings[local + 1 :]])
                    leaves.append(leaf)
                    pooled.append(slab_pool(rows, torch.tensor([local]), plan.slab, plan.pool)[0])
                grads = torch.from_numpy(self._head_gradient(torch.stack([p.detach() for p in pooled])))
                direction = [torch.autograd.grad((p * g).sum(), leaf)[0] for p, g, leaf in zip(pooled, grads, leaves)]
                yield batch, torch.stack([fitted[i] for i in batch]), np.full(len(batch), -1, np.int32), torch.stack(direction).numpy()

    # -- the model -----------------------------------------------------------------------------

    def _call(self, x: torch.Tensor, steps: np.ndarray, direction: np.ndarray, volume_shape: tuple) -> np.ndarray:
        tf = self.runtime.tf
        grid = self._slice_shape(x, volume_shape)
        key = ("maps", tuple(x.shape[1:]), grid, direction.shape[1])
        if key not in self._traced:
            signature = [
                tf.TensorSpec((None, *key[1]), tf.float32),
                tf.TensorSpec((None,), tf.int32),
                tf.TensorSpec((None, direction.shape[1]), tf.float32),
            ]
            function = tf.function(self._graph.compute_fn(tf, grid), input_signature=signature, autograph=False)
            self._traced[key] = function.get_concrete_function()
        return self._traced[key](to_tensorflow(self.runtime, x), tf.constant(steps), tf.constant(direction)).numpy()

    def _head_gradient(self, pooled: torch.Tensor) -> np.ndarray:
        """d(score) / d(pooled embedding) of the head, per row."""
        tf = self.runtime.tf
        key = ("head", tuple(pooled.shape[1:]))
        if key not in self._traced:
            forward, index = self._head._forward, self.score_index  # type: ignore[union-attr]

            def gradient(p):
                with tf.GradientTape() as tape:
                    tape.watch(p)
                    _, y = forward(p)
                    target = tf.reduce_sum(tf.convert_to_tensor(y)[:, index])
                return tape.gradient(target, p)

            function = tf.function(gradient, input_signature=[tf.TensorSpec((None, *key[1]), tf.float32)], autograph=False)
            self._traced[key] = function.get_concrete_function()
        with tf.device(self.runtime.device):
            return self._traced[key](to_tensorflow(self.runtime, pooled)).numpy()

    def _plain_call(self, keras_model: Any, signature: tuple) -> Callable:
        tf = self.runtime.tf
        key = ("call", id(keras_model), signature)
        if key not in self._traced:
            function = tf.function(lambda x: keras_model(x, training=False), input_signature=[tf.TensorSpec(signature, tf.float32)], autograph=False)
            self._traced[key] = function.get_concrete_function()
        return self._traced[key]

    def _slice_shape(self, x: torch.Tensor, volume_shape: tuple) -> tuple[int, int, int] | None:
        """``(h, w, c)`` behind a flattened input, resolved as the strategy resolves it; else None."""
        dims = tuple(x.shape[2:] if self.sequence and self._parts is None else x.shape[1:])
        if len(dims) != 1:
            return None
        shape = flat_shape(dims[0], volume_shape, self.model.spec.slice_hint)
        return shape.height, shape.width, shape.channels


def _spans(wanted: list[int], margin: int, depth: int) -> Iterator[tuple[int, int]]:
    """Ranges ``[lo, hi)`` that hold the asked-for slices with ``margin`` slices either side."""
    start = prev = wanted[0]
    for index in wanted[1:]:
        if index - prev > 2 * margin:
            yield max(0, start - margin), min(depth, prev + margin + 1)
            start = index
        prev = index
    yield max(0, start - margin), min(depth, prev + margin + 1)


def _rows(plan: Plan, step, per_step: bool) -> np.ndarray:
    """For each row the plan reads from a model output: ``(input sample, step or -1)``.

    Found by letting the plan read an output that holds its own coordinates, so any plan's way
    of reading (a window's centre, a sequence's steps) is followed without knowing it.
    """
    samples = step.x.shape[0]
    if per_step:
        n = step.x.shape[1]
        probe = np.stack(np.meshgrid(np.arange(samples), np.arange(n), indexing="ij"), axis=-1)
    else:
        probe = np.stack([np.arange(samples), np.full(samples, -1)], axis=-1)
    return np.asarray(plan.read(probe, step)).reshape(-1, 2).astype(np.int64)


def _on_grid(cams: np.ndarray, height: int, width: int) -> Iterator[np.ndarray]:
    """Maps ``(B, h, w)`` resized (bilinear, pixel centres aligned, as ``F.interpolate`` with
    ``align_corners=False``) onto the slice grid ``(H, W)`` and scaled to [0, 1].

    In single-threaded NumPy gathers: torch's ops, and BLAS products, right after a TensorFlow
    call wait for their thread pools (see `app.preprocessing`), tens of milliseconds a map here.
    """
    r0, r1, fr = _linear(height, cams.shape[1])
    c0, c1, fc = _linear(width, cams.shape[2])
    for cam in np.asarray(cams, dtype=np.float32):
        cam = np.nan_to_num(np.maximum(cam, 0.0), nan=0.0)
        wide = cam[:, c0] * (1.0 - fc) + cam[:, c1] * fc  # (h, W)
        grid = wide[r0] * (1.0 - fr)[:, None] + wide[r1] * fr[:, None]
        peak = float(grid.max(initial=0.0))
        yield np.ascontiguousarray(grid / peak if peak > 0 else grid, dtype=np.float32)


@lru_cache(maxsize=32)
def _linear(size: int, source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear resampling of ``source`` samples to ``size``, pixel centres aligned: for each
    output sample its two source samples and the weight of the second."""
    position = np.clip((np.arange(size) + 0.5) * source / size - 0.5, 0.0, source - 1)
    lower = np.floor(position).astype(np.int64)
    return lower, np.minimum(lower + 1, source - 1), (position - lower).astype(np.float32)


class _Graph:
    """A model split at its last spatial convolution: a forward pass that also returns those
    activations, and (``logits``) the score before a final sigmoid or softmax."""

    def __init__(self, keras_model: Any, expected_rank: int, logits: bool = True):
        import keras

        self.keras = keras
        chain = _chain(keras_model)
        layers = chain if chain is not None else list(keras_model.layers)
        position = next((i for i in range(len(layers) - 1, -1, -1) if _spatial_rank(layers[i]) == expected_rank), None)
        self.layer = None if position is None else layers[position]
        self.method = "gradient × input" if self.layer is None else f"Grad-CAM (layer {self.layer.name})"
        last = layers[-1] if chain is not None else _output_layer(keras_model)
        self._logits = _logit_head(last) if logits and last is not None else None
        if chain is not None:
            self._forward = self._chain_forward(chain, position)
        else:
            self._forward = self._functional_forward(keras_model, self.layer, last)

    def _chain_forward(self, layers: list, position: int | None) -> Callable:
        head = self._logits

        def forward(x):
            acts = None
            for i, layer in enumerate(layers):
                x = head(x) if head is not None and i == len(layers) - 1 else layer(x, training=False)
                if i == position:
                    acts = x
            return acts, x

        return forward

    def _functional_forward(self, model: Any, layer: Any, last: Any) -> Callable:
        score = model.outputs[0]
        if self._logits is not None:
            try:
                score = last.input
            except (AttributeError, ValueError):  # a layer used more than once has no one input
                self._logits = None
        outputs = [score] if layer is None else [_output_of(layer), score]
        split = self.keras.Model(model.inputs, outputs)
        head, has_acts = self._logits, layer is not None

        def forward(x):
            out = split(x, training=False)
            acts, y = (out[0], out[1]) if has_acts else (None, out[0] if isinstance(out, (list, tuple)) else out)
            return acts, (head(y) if head is not None else y)

        return forward

    def compute_fn(self, tf: Any, slice_shape: tuple | None) -> Callable:
        """``(x (B, …), steps (B,), direction (B, K)) → maps (B, h, w)``: the maps of the score
        ``y · direction`` (a one-hot direction picks one score)."""
        forward, gradcam = self._forward, self.layer is not None

        def own(t, steps):
            """A sequence tensor ``(B, n, …)`` at each sample's own step (the centre when -1)."""
            n = tf.shape(t)[1]
            at = tf.where(steps >= 0, tf.minimum(steps, n - 1), n // 2)
            return tf.gather(t, at, axis=1, batch_dims=1)

        def compute(x, steps, direction):
            with tf.GradientTape() as tape:
                tape.watch(x)
                acts, y = forward(x)
                y = tf.convert_to_tensor(y)
                if y.shape.rank == 3:  # per-step scores (B, n, K): each sample's own step
                    y = tf.gather(y, tf.maximum(steps, 0), axis=1, batch_dims=1)
                target = tf.reduce_sum(tf.reshape(y, (tf.shape(y)[0], -1)) * direction)
            if gradcam:
                grads = tape.gradient(target, acts)
                if acts.shape.rank == 5:
                    acts, grads = own(acts, steps), own(grads, steps)
                weights = tf.reduce_mean(grads, axis=(1, 2))
                return tf.nn.relu(tf.einsum("bhwc,bc->bhw", acts, weights))
            attribution = tape.gradient(target, x) * x
            if x.shape.rank in (3, 5):  # a sequence: the slice's own step
                attribution = own(attribution, steps)
            if slice_shape is not None:
                attribution = tf.reshape(attribution, (-1, *slice_shape))
            return tf.abs(tf.reduce_sum(attribution, axis=-1))

        return compute


def _chain(model: Any) -> list | None:
    """The layers of a Sequential model, nested Sequential models flattened; None otherwise."""
    import keras

    if not isinstance(model, keras.Sequential):
        return None
    layers: list = []
    for layer in model.layers:
        if isinstance(layer, keras.Sequential):
            layers.extend(_chain(layer) or [])
        elif not isinstance(layer, keras.layers.InputLayer):
            layers.append(layer)
    return layers


def _spatial_rank(layer: Any) -> int | None:
    """Rank of the activations of a spatial convolution (4: ``(B, h, w, c)``; 5: with a step
    axis), or of a nested model whose output is such a map; None for anything else."""
    import keras

    spatial2d = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D, keras.layers.Conv2DTranspose)
    if isinstance(layer, spatial2d):
        return 4 if layer.data_format == "channels_last" else None
    if isinstance(layer, (keras.layers.Conv3D, keras.layers.Conv3DTranspose)):
        return 5 if layer.data_format == "channels_last" else None
    if isinstance(layer, keras.layers.TimeDistributed) and _spatial_rank(layer.layer) == 4:
        return 5
    if isinstance(layer, keras.Model) and any(_spatial_rank(inner) for inner in layer.layers):
        try:
            return len(_output_of(layer).shape)
        except (AttributeError, ValueError):
            return None
    return None


def _output_of(layer: Any) -> Any:
    outputs = getattr(layer, "outputs", None) if not hasattr(layer, "kernel") else None
    return outputs[0] if outputs else layer.output


def _output_layer(model: Any) -> Any:
    """The layer that makes a functional model's (first) output."""
    out = model.outputs[0]
    for layer in reversed(model.layers):
        try:
            if layer.output is out:
                return layer
        except (AttributeError, ValueError):
            continue
    return None


def _logit_head(layer: Any) -> Callable | None:
    """The last layer without its sigmoid/softmax (a Dense, or an Activation layer), or None."""
    import keras

    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if activation not in ("sigmoid", "softmax"):
        return None
    if isinstance(layer, keras.layers.Activation):
        return lambda x: x
    if type(layer) is keras.layers.Dense and not getattr(layer, "quantization_mode", None):

        def logits(x):
            z = keras.ops.matmul(x, layer.kernel)
            return z + layer.bias if layer.use_bias else z

        return logits
    return None
