"""MC dropout: a twin of a Keras model whose dropout layers alone stay on at inference.

Never ``model(x, training=True)``: that would also put BatchNormalization on batch statistics
(and update its moving averages).  `keras.models.clone_model` rebuilds the graph (Sequential,
Functional, nested models) with a ``clone_function`` that swaps each dropout-family layer for an
always-on twin; every other layer is the *same* layer object (weights shared, not copied, and
called with ``training=False`` as usual).

The dropout family: ``Dropout`` (with ``SpatialDropout1D/2D/3D``, its subclasses),
``GaussianDropout`` and ``AlphaDropout``.  ``GaussianNoise`` is not dropout (it corrupts the input
as augmentation; no Bayesian reading) and stays off, as does an RNN's internal ``dropout``.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any

from app.errors import ModelError

FAMILY_NAMES = "Dropout, SpatialDropout1D/2D/3D, GaussianDropout, AlphaDropout"
_TWINS: dict[type, type] = {}
_CLONES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Keras model → {seed: MCModel}


def dropout_family() -> tuple[type, ...]:
    import keras

    return (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)


def dropout_layers(model: Any) -> list[Any]:
    """The dropout-family layers of ``model``, nested models included, in graph order."""
    family = dropout_family()
    walk = getattr(model, "_flatten_layers", None)
    layers = list(walk(include_self=False, recursive=True)) if walk is not None else list(getattr(model, "layers", []))
    return [layer for layer in layers if isinstance(layer, family)]


def always_on(cls: type) -> type:
    """A subclass of the layer class ``cls`` whose ``call`` always runs in training mode."""
    if cls not in _TWINS:

        def call(self, *args, **kwargs):
            kwargs["training"] = True
            return cls.call(self, *args, **kwargs)

        call.__signature__ = inspect.signature(cls.call)  # Keras passes ``training`` (and ``mask``) by what call declares
        _TWINS[cls] = type(f"AlwaysOn{cls.__name__}", (cls,), {"call": call, "__doc__": f"{cls.__name__}, on at inference (MC dropout)."})
    return _TWINS[cls]


class MCModel:
    """The always-on twin of a model and its dropout layers' seeds; `reset` restarts the random
    streams, so a run with the same seed draws the same masks."""

    def __init__(self, model: Any, seed: int, switch: tuple[type, ...] | None = None):
        import keras

        family = switch or dropout_family()
        self.twins: list[Any] = []
        self.seeds: list[int] = []

        def clone(layer):
            if not isinstance(layer, family):
                return layer  # the same layer: its weights, in inference mode
            config = layer.get_config()
            if "seed" in config:
                config["seed"] = seed + len(self.twins)
            twin = always_on(type(layer)).from_config(config)
            if layer.get_weights():
                twin.build(layer.input.shape)
                twin.set_weights(layer.get_weights())
            self.seeds.append(config.get("seed"))
            self.twins.append(twin)
            return twin

        self.keras_model = keras.models.clone_model(model, clone_function=clone, recursive=True)
        self.reset()

    def reset(self) -> None:
        import numpy as np

        for twin, seed in zip(self.twins, self.seeds):
            generator = getattr(twin, "seed_generator", None)
            if generator is not None and seed is not None:
                generator.state.assign(np.array([seed, 0], dtype=generator.state.dtype))


def mc_dropout_model(model: Any, name: str, seed: int) -> MCModel:
    """``model``'s MC-dropout twin (made once per model and seed), its random streams reset;
    a `ModelError` naming dropout when the model has no dropout layer to turn on."""
    layers = dropout_layers(model)
    if not layers:
        raise ModelError(f"{name}: --mc-dropout needs a model with dropout layers ({FAMILY_NAMES}); this model has no dropout layer")
    if all(float(getattr(layer, "rate", 0) or 0) <= 0 for layer in layers):
        raise ModelError(f"{name}: --mc-dropout needs dropout with a rate above 0; every dropout layer of this model has rate 0")
    clones = _CLONES.setdefault(model, {})
    if seed not in clones:
        clones[seed] = MCModel(model, seed)
    clones[seed].reset()
    return clones[seed]
