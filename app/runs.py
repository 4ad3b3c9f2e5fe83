"""`Run`: one strategy + model's scores on the open volume, streaming or finished (with a
segmentation model's map, when it has one), and the regions of a run above a threshold (what
N / P step through)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from app.segmentation.dense_map import DenseMap

if TYPE_CHECKING:
    from app.prediction import Prediction

COUNT_CHUNK = 16  # slices counted at a time (a bounded boolean temporary, not one of the whole map)


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
    dense: DenseMap | None = None  # a segmentation model's map: filling while it streams, the prediction's once finished
    _counts: np.ndarray | None = field(default=None, repr=False)  # (depth, K) voxels in each map's mask, per slice
    _counted: np.ndarray | None = field(default=None, repr=False)  # (depth,) slices whose counts are current

    @property
    def strategy(self) -> str:
        return self.key.strategy

    @property
    def finished(self) -> bool:
        return self.prediction is not None

    def add(self, indices: np.ndarray, scores: np.ndarray, spread: np.ndarray | None = None) -> None:
        """Scores of some slices as a batch arrives, with their sd under an uncertainty method
        (NaN rows where it is not known yet: the finished run's replaces them all)."""
        if len(indices) == 0:
            return  # the embedding's volume score arrives with the prediction
        scores = np.asarray(scores, dtype=np.float32).reshape(len(indices), -1)
        if self.scores is None or self.scores.shape[1] != scores.shape[1]:
            self.scores = np.full((self.depth, scores.shape[1]), np.nan, dtype=np.float32)
        self.scores[indices] = scores
        if spread is not None:
            if self.spread is None or self.spread.shape != self.scores.shape:
                self.spread = np.full(self.scores.shape, np.nan, dtype=np.float32)
            self.spread[indices] = np.asarray(spread, dtype=np.float32).reshape(scores.shape)

    def put_map(self, indices: np.ndarray, dense: DenseMap) -> None:
        """Slices ``indices`` of a streaming dense run are now filled in ``dense``, the map the
        engine fills on the worker (adopted, not copied)."""
        if len(indices) == 0:
            return
        if dense is not self.dense:
            self._adopt(dense)
        self._counted[np.asarray(indices)] = False

    def _adopt(self, dense: DenseMap) -> None:
        self.dense = dense
        self._counts = np.zeros((dense.depth, dense.count), dtype=np.int64)
        self._counted = np.zeros(dense.depth, dtype=bool)

    def finish(self, prediction: Prediction) -> None:
        self.scores = np.asarray(prediction.scores, dtype=np.float32)
        self.spread = None if prediction.spread is None else np.asarray(prediction.spread, dtype=np.float32)
        self.prediction = prediction
        dense = getattr(prediction, "dense", None)
        if dense is not None:
            self._adopt(dense)

    @property
    def unit(self) -> str:
        """The scores' unit: the prediction's ("mm²" for a dense run's areas); while the run
        streams, "mm²" once its map streams in (the viewer's segmentation runs score areas)."""
        if self.prediction is not None:
            return getattr(self.prediction, "unit", "") or ""
        return "mm²" if self.dense is not None else ""

    def uncounted(self) -> np.ndarray:
        """The slices `voxels` would count now: filled since its last call (a streaming map),
        or all of them once (a finished run's)."""
        if self.dense is None:
            return np.empty(0, dtype=np.intp)
        return np.flatnonzero(~self._counted if self.finished else self.dense.filled & ~self._counted)

    def voxels(self) -> np.ndarray:
        """(depth, K) voxels in each map's mask per slice, counting the `uncounted` slices.
        (A helper thread may call it for a finished run's map, which no longer changes.)"""
        dense, counts, counted = self.dense, self._counts, self._counted  # one map's, should the run adopt another meanwhile
        if dense is None:
            return np.zeros((self.depth, 0), dtype=np.int64)
        todo = np.flatnonzero(~counted if self.finished else dense.filled & ~counted)
        if len(todo):
            counts[todo] = mask_voxels(dense, todo)
            counted[todo] = True
        return counts

    def volumes_ml(self, voxel_mm3: float) -> list[tuple[str, float]]:
        """(class name, volume in mL) of each foreground class of the map: its mask's voxels ×
        the voxel's volume / 1000.  Empty without a map."""
        if self.dense is None:
            return []
        totals = self.voxels().sum(axis=0)
        return [(self.dense.classes[k], float(totals[k]) * voxel_mm3 / 1000.0) for k in self.dense.foreground]

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


def mask_voxels(dense: DenseMap, indices: np.ndarray) -> np.ndarray:
    """Voxels in each map's mask on slices ``indices``: ``(n, K)`` int64, the masks as
    `DenseMap.masks` defines them (sigmoid: at or above the threshold; softmax: the argmax, ties
    to the lower index), read a run of consecutive slices at a time, a class at a time (an
    argmax along the last axis of a whole map took seconds)."""
    indices = np.asarray(indices)
    counts = np.empty((len(indices), dense.count), dtype=np.int64)
    for start in range(0, len(indices), COUNT_CHUNK):
        chunk = indices[start : start + COUNT_CHUNK]
        consecutive = len(chunk) and chunk[-1] - chunk[0] == len(chunk) - 1 and (np.diff(chunk) == 1).all()
        block = dense.probabilities[chunk[0] : chunk[-1] + 1] if consecutive else dense.probabilities[chunk]
        counts[start : start + len(chunk)] = _count_block(dense, block)
    return counts


def _count_block(dense: DenseMap, block: np.ndarray) -> np.ndarray:
    if dense.kind != "softmax":
        return (block >= dense.threshold_level).sum(axis=(1, 2))
    best = block[..., 0].copy()
    winner = np.zeros(best.shape, dtype=np.uint8)
    hit = np.empty(best.shape, dtype=bool)
    for k in range(1, dense.count):
        np.greater(block[..., k], best, out=hit)
        np.copyto(winner, k, where=hit)
        np.maximum(best, block[..., k], out=best)
    return np.stack([(winner == k).sum(axis=(1, 2)) for k in range(dense.count)], axis=1)


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
