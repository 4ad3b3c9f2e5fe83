"""Keras models: a user's file loaded safely, or a strategy's built-in model, with what
Slicewise needs to know about it (shapes, preprocessing, a content hash)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import ModelError
from app.strategies import ModelSpec, Strategy

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "models"
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class LoadedModel:
    """A Keras model and its provenance."""

    keras_model: Any
    source: str  # a file path, or "built-in:<strategy>"
    sha256: str
    normalize: str  # the preprocessing it expects by default
    spec: ModelSpec

    @property
    def name(self) -> str:
        return Path(self.source).name if not self.source.startswith("built-in") else self.source


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spec_of(model: Any, slice_hint: tuple | None = None) -> ModelSpec:
    """The declared input and output shapes of a single-input, single-output Keras model."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; Slicewise needs one of each")
    inp = tuple(model.inputs[0].shape)[1:]
    out = tuple(model.outputs[0].shape)[1:]
    if not str(model.outputs[0].dtype).startswith(("float", "bfloat")):
        raise ModelError(f"model output has dtype {model.outputs[0].dtype}; scores must be floating point")
    return ModelSpec(inp, out, tuple(slice_hint) if slice_hint else None)


def load_model_file(path: str | Path, normalize: str = "none", unsafe: bool = False) -> LoadedModel:
    """Load a ``.keras`` (or legacy ``.h5``) model with Keras ``safe_mode`` on.

    ``unsafe=True`` turns safe mode off, for a file the user trusts; it may run code in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f"{path.name}: not a Keras model file (expected {', '.join(MODEL_SUFFIXES)})")
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; all mean "cannot load"
        text = " ".join(str(exc).split())
        if "safe_mode" in text:
            reason = "refused by Keras safe mode: it holds code (e.g. a Lambda layer) that loading would run; use --unsafe-model only for a file you trust"
        else:
            reason = (text[:300] + "…" if len(text) > 300 else text) or type(exc).__name__
        raise ModelError(f"{path.name}: cannot load Keras model: {reason}") from None
    return LoadedModel(model, str(path), file_sha256(path), normalize, spec_of(model))


def builtin_model(strategy: Strategy) -> LoadedModel:
    """The strategy's default model: trained weights from ``resources/models`` if shipped, else
    its architecture with weights from a fixed seed."""
    trained = RESOURCES / f"{strategy.name}.keras"
    if trained.is_file():
        meta_path = trained.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        loaded = load_model_file(trained, meta.get("normalize", strategy.default_normalize))
        hint = meta.get("slice_shape", strategy.slice_hint)
        return LoadedModel(loaded.keras_model, f"built-in:{strategy.name}", loaded.sha256, loaded.normalize, spec_of(loaded.keras_model, hint))
    model = strategy.build_model()
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(weights.tobytes())
    return LoadedModel(model, f"built-in:{strategy.name} (untrained)", digest.hexdigest(), strategy.default_normalize, spec_of(model, strategy.slice_hint))
