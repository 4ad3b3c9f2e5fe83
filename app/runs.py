"""`Run`: one strategy + model's scores on the open volume, streaming or finished, and the
regions of a run above a threshold (what N / P step through)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from app.prediction import Prediction


@dataclass(frozen=True)
class RunKey:
    """What makes two runs the same run: re-running it replaces the earlier one once it finishes."""

    strategy: str
    model: str | None = None  # a model file, None: the strategy's built-in model
    normalize: str | None = None
    channels: str | None = None
    options: tuple = ()  # other settings that change the scores (output, slab), as (name, value) pairs


@dataclass(eq=False)
class Run:
    """Scores ``(depth, K)`` with NaN where not scored yet; ``prediction`` once finished."""

    key: RunKey
    title: str
    depth: int
    job: int = 0
    scores: np.ndarray | None = None
    prediction: Prediction | None = None
    visible: bool = True
    names: tuple[str, ...] = field(default_factory=tuple)  # one per output column, when named
    spread: np.ndarray | None = None  # per-slice sd of the scores, like ``scores``, once a run with an uncertainty method finishes

    @property
    def strategy(self) -> str:
        return self.key.strategy

    @property
    def finished(self) -> bool:
        return self.prediction is not None

    def add(self, indices: np.ndarray, scores: np.ndarray) -> None:
        """Scores of some slices, as a batch arrives."""
        if len(indices) == 0:
            return  # the embedding's volume score arrives with the prediction
        scores = np.asarray(scores, dtype=np.float32).reshape(len(indices), -1)
        if self.scores is None or self.scores.shape[1] != scores.shape[1]:
            self.scores = np.full((self.depth, scores.shape[1]), np.nan, dtype=np.float32)
        self.scores[indices] = scores

    def finish(self, prediction: Prediction) -> None:
        self.scores = np.asarray(prediction.scores, dtype=np.float32)
        self.spread = None if prediction.spread is None else np.asarray(prediction.spread, dtype=np.float32)
        self.prediction = prediction

    def most_uncertain(self) -> tuple[int, float] | None:
        """The slice whose score spreads most (the largest sd over the outputs) and that sd; None
        without a spread (or when every slice's is NaN)."""
        if self.spread is None or not np.isfinite(self.spread).any():
            return None
        per_slice = np.nanmax(np.where(np.isfinite(self.spread), self.spread, -np.inf), axis=1)
        index = int(np.argmax(per_slice))
        return index, float(per_slice[index])

    def mean_spread(self) -> float | None:
        """The sd averaged over the scored slices and outputs (None without a spread)."""
        if self.spread is None or not np.isfinite(self.spread).any():
            return None
        return float(np.nanmean(self.spread))

    def peak(self) -> np.ndarray:
        """Per-slice score over the outputs (the highest), NaN where unscored."""
        if self.scores is None:
            return np.full(self.depth, np.nan, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(self.scores).all(axis=1), np.nan, np.nanmax(np.nan_to_num(self.scores, nan=-np.inf), axis=1))


def regions_above(values: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Runs of consecutive slices whose value is above ``threshold``, as (first, last) pairs."""
    with np.errstate(invalid="ignore"):
        above = np.asarray(values) > threshold
    if not above.any():
        return []
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def next_region(values: np.ndarray, threshold: float, index: int, step: int) -> tuple[int, int] | None:
    """The region after the one holding ``index`` (``step`` > 0) or before it (< 0).

    Going back from inside a region lands on that region's first slice first, as a reader
    expects ("back to where this finding starts").
    """
    regions = regions_above(values, threshold)
    if step > 0:
        return next(((a, b) for a, b in regions if a > index), None)
    for a, b in reversed(regions):
        if a < index:
            return a, b
    return None
