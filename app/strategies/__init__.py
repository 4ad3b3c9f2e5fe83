"""The three strategies of scoring a volume with a Keras model, by name."""

from __future__ import annotations

from app.errors import SlicewiseError
from app.strategies.base import ModelSpec, Plan, Step, Strategy
from app.strategies.embedding import EmbeddingStrategy
from app.strategies.slice2d import SliceStrategy
from app.strategies.temporal import TemporalStrategy

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (SliceStrategy(), TemporalStrategy(), EmbeddingStrategy())}


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; a clear error if there is none."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise SlicewiseError(f"unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}") from None


__all__ = ["STRATEGIES", "ModelSpec", "Plan", "Step", "Strategy", "get_strategy"]
