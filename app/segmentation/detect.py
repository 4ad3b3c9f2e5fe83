"""Recognise a dense (segmentation) model from its declared shapes and last activation.

A model is dense when its output's spatial dimensions follow its input's: 2D ``(H, W, C) →
(H, W, K)``, 3D ``(D, H, W, C) → (D, H, W, K)``, or the channels-first forms ``(C, H, W) →
(K, H, W)``, ``(C, D, H, W) → (K, D, H, W)``.  The last activation says what the K maps are:
sigmoid (K independent maps), softmax (K classes, one the background), or linear (logits,
turned into probabilities by a sigmoid for K = 1, a softmax for K > 1, unless the model's JSON
says ``"activation"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.errors import ModelError

Model = Any  # app.inference.models.LoadedModel (a layer above): its spec, activation, meta, classes, keras_model
LOGITS = ("linear", None)  # a last activation that leaves the values as they are


@dataclass(frozen=True)
class DenseSpec:
    """What a dense model takes and gives, in channels-last terms (``spatial``: ``(H, W)`` or
    ``(D, H, W)``, None = any size)."""

    spatial: tuple[int | None, ...]
    channels: int | None
    count: int  # K
    kind: str  # "sigmoid" | "softmax"
    from_logits: bool
    background: int | None
    classes: tuple[str, ...]
    channels_first: bool = False
    stride: int | None = None  # from the JSON; else found by trying

    @property
    def dims(self) -> int:
        return len(self.spatial)

    @property
    def foreground(self) -> tuple[int, ...]:
        return tuple(k for k in range(self.count) if k != self.background)

    @property
    def fixed(self) -> bool:
        """True when the model's in-plane size is fixed (it then runs in tiles, or resized)."""
        return any(s is not None for s in self.spatial[-2:])

    def describe(self) -> str:
        logits = ", from logits" if self.from_logits else ""
        background = f", background {self.classes[self.background]!r}" if self.background is not None else ""
        return f"{self.dims}D dense, {self.count} {self.kind} map{'s' if self.count > 1 else ''}{logits}{background}"


def dense_layout(input_shape: tuple, output_shape: tuple, channels_first: bool | None = None) -> tuple[bool, int] | None:
    """``(channels_first, spatial dims)`` when the shapes are a dense model's, else None."""
    if len(input_shape) != len(output_shape) or len(input_shape) not in (3, 4):
        return None
    last = input_shape[:-1] == output_shape[:-1]
    first = input_shape[1:] == output_shape[1:]
    if channels_first is None:
        channels_first = first and not last
    if channels_first and first:
        return True, len(input_shape) - 1
    if not channels_first and last:
        return False, len(input_shape) - 1
    return None


def declares_channels_first(keras_model) -> bool:
    """True when a layer of the model says ``data_format="channels_first"``."""
    for layer in getattr(keras_model, "layers", ()) or ():
        if getattr(layer, "data_format", None) == "channels_first":
            return True
        if hasattr(layer, "layers") and declares_channels_first(layer):
            return True
    return False


def dense_spec(model: Model) -> DenseSpec | None:
    """The model's `DenseSpec`, or None when its output is not a map on its input's grid."""
    inp, out = tuple(model.spec.input_shape), tuple(model.spec.output_shape)
    found = dense_layout(inp, out, True if declares_channels_first(model.keras_model) else None)
    if found is None:
        return None
    channels_first, dims = found
    if channels_first:
        inp, out = (*inp[1:], inp[0]), (*out[1:], out[0])
    count = out[-1]
    if not count:
        return None
    meta = model.meta or {}
    activation = meta.get("activation") or model.activation
    from_logits = activation == "linear" and not meta.get("activation")  # None: not known, taken as probabilities
    if activation in ("sigmoid", "softmax"):
        kind = activation
    elif activation in LOGITS:
        kind = "sigmoid" if count == 1 else "softmax"
    else:
        raise ModelError(f'{model.name}: a dense model whose last activation is {activation!r}; say in its JSON "activation": "sigmoid" or "softmax"')
    classes = tuple(model.classes) if model.classes else ("mask",) if count == 1 else tuple(str(k) for k in range(count))
    background = _background(meta.get("background"), classes, model.name) if kind == "softmax" else None
    stride = meta.get("stride")
    if stride is not None and (not isinstance(stride, int) or stride < 1):
        raise ModelError(f'{model.name}: "stride" in its JSON must be a positive integer, not {stride!r}')
    return DenseSpec(inp[:-1], inp[-1], int(count), kind, bool(from_logits), background, classes, channels_first, stride)


def _background(value, classes: tuple[str, ...], name: str) -> int:
    """The softmax background class: the JSON's ``background`` (a name or an index), else 0."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(classes):
        return value
    if isinstance(value, str) and value in classes:
        return classes.index(value)
    raise ModelError(f'{name}: "background" {value!r} in its JSON is none of its classes ({", ".join(classes)}) nor an index below {len(classes)}')
