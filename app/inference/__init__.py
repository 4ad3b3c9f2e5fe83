"""Inference: the TensorFlow runtime, model loading, and the batch engine (no Qt here)."""

from app.inference.engine import Engine
from app.inference.models import LoadedModel

__all__ = ["Engine", "LoadedModel"]
