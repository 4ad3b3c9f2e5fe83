"""How far a run's scores and a reader's labels agree: ROC AUC, and at a threshold the confusion
matrix, sensitivity, specificity and the slices where the two disagree.

Pure functions of the scores and labels, by scikit-learn (``roc_auc_score``,
``confusion_matrix``); a few milliseconds for thousands of slices, so they can follow a dragged
threshold line.  Only slices labelled ``1`` or ``0`` that have a score count: unsure (``?``)
and unscored (NaN) slices are left out, and counted.  A slice is called positive by the model
when its score is above the threshold (``score > threshold``), as the plot's hits are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from app.review.labels import NEGATIVE, POSITIVE, UNSURE


@dataclass(frozen=True)
class Agreement:
    """Scores against labels at one threshold.  ``confusion`` is ``[[TN, FP], [FN, TP]]``
    (rows: the reader's 0, 1; columns: the model's 0, 1)."""

    threshold: float
    positives: int  # labelled 1 and scored
    negatives: int  # labelled 0 and scored
    unsure: int  # labelled ?
    unscored: int  # labelled 1 or 0 but without a score (NaN)
    roc_auc: float | None  # None unless both classes are present
    confusion: tuple[tuple[int, int], tuple[int, int]]
    false_positives: list[int] = field(default_factory=list)  # above the threshold, labelled 0
    false_negatives: list[int] = field(default_factory=list)  # not above it, labelled 1

    @property
    def sensitivity(self) -> float | None:
        """TP / (TP + FN); None without positives."""
        (_, _), (fn, tp) = self.confusion
        return tp / (tp + fn) if tp + fn else None

    @property
    def specificity(self) -> float | None:
        """TN / (TN + FP); None without negatives."""
        (tn, fp), _ = self.confusion
        return tn / (tn + fp) if tn + fp else None

    @property
    def disagreements(self) -> list[tuple[int, str]]:
        """``(slice, "FP" | "FN")`` in slice order: what a reader may want to look at again."""
        return sorted([(i, "FP") for i in self.false_positives] + [(i, "FN") for i in self.false_negatives])

    def as_dict(self) -> dict:
        """For JSON: the fields plus sensitivity and specificity."""
        out = asdict(self)
        out["confusion"] = [list(row) for row in self.confusion]
        out["sensitivity"], out["specificity"] = self.sensitivity, self.specificity
        return out

    def summary(self) -> str:
        """Two lines for people: counts and AUC; the numbers at the threshold."""
        (tn, fp), (fn, tp) = self.confusion
        auc = "n/a (needs both 1 and 0 labels)" if self.roc_auc is None else f"{self.roc_auc:.3f}"
        left_out = f", {self.unsure} unsure" if self.unsure else ""
        left_out += f", {self.unscored} unscored" if self.unscored else ""
        return (
            f"labels: {self.positives} positive, {self.negatives} negative{left_out}; ROC AUC {auc}\n"
            f"at threshold {self.threshold:g}: sensitivity {_ratio(self.sensitivity)}, specificity {_ratio(self.specificity)}, "
            f"TP {tp} FP {fp} FN {fn} TN {tn}; disagreeing slices: {_list(self.disagreements)}"
        )


def labelled(scores: np.ndarray, labels: Mapping[int, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """``(slice indices, scores, truth 0/1, unsure count, unscored count)`` of the usable labels,
    in slice order."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    index = np.fromiter(labels.keys(), dtype=np.int64, count=len(labels))
    value = np.array(list(labels.values()), dtype=str)
    unsure = int((value == UNSURE).sum())
    keep = ((value == POSITIVE) | (value == NEGATIVE)) & (index >= 0) & (index < len(scores))
    order = np.argsort(index[keep], kind="stable")
    index, truth = index[keep][order], (value[keep][order] == POSITIVE).astype(np.int64)
    values = scores[index]
    scored = np.isfinite(values)
    return index[scored], values[scored], truth[scored], unsure, int((~scored).sum())


def roc_auc(scores: np.ndarray, labels: Mapping[int, str]) -> float | None:
    """ROC AUC of ``scores`` (per slice) against the ``1``/``0`` labels; None with one class only."""
    _, values, truth, _, _ = labelled(scores, labels)
    return _auc(values, truth)


def prepare() -> None:
    """Import scikit-learn's metrics now (about 0.75 s): the viewer's worker does it after
    TensorFlow starts, so that the GUI thread never imports it (the window would freeze)."""
    from app.startup import gc_paused

    with gc_paused():  # no garbage-collection passes over its new objects meanwhile (each holds the GIL)
        import sklearn.metrics  # noqa: F401


def agreement(scores: np.ndarray, labels: Mapping[int, str], threshold: float) -> Agreement:
    """Scores ``(depth,)`` against labels (slice → ``1``/``0``/``?``) at ``threshold``."""
    from sklearn.metrics import confusion_matrix

    index, values, truth, unsure, unscored = labelled(scores, labels)
    called = (values > threshold).astype(np.int64)
    if len(values):
        matrix = confusion_matrix(truth, called, labels=[0, 1])
    else:
        matrix = np.zeros((2, 2), np.int64)
    return Agreement(
        threshold=float(threshold),
        positives=int((truth == 1).sum()),
        negatives=int((truth == 0).sum()),
        unsure=unsure,
        unscored=unscored,
        roc_auc=_auc(values, truth),
        confusion=((int(matrix[0, 0]), int(matrix[0, 1])), (int(matrix[1, 0]), int(matrix[1, 1]))),
        false_positives=index[(called == 1) & (truth == 0)].tolist(),
        false_negatives=index[(called == 0) & (truth == 1)].tolist(),
    )


def _auc(values: np.ndarray, truth: np.ndarray) -> float | None:
    if len(truth) == 0 or truth.min() == truth.max():  # one class, or none
        return None
    return _auc_of(values.tobytes(), truth.tobytes())


@lru_cache(maxsize=16)
def _auc_of(values: bytes, truth: bytes) -> float:
    """Remembered: the AUC does not change while a threshold line is dragged."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.frombuffer(truth, np.int64), np.frombuffer(values, np.float64)))


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _list(items: list[tuple[int, str]], limit: int = 20) -> str:
    if not items:
        return "none"
    shown = ", ".join(f"{i} ({kind})" for i, kind in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
