"""How far readers agree with each other: Cohen's κ for two, Fleiss' κ for three or more, the
share of slices on which they all agree, and the slices where they do not.

A slice counts when every reader labelled it ``1`` or ``0``; a slice someone marked unsure
(``?``) or left unlabelled is left out, and counted.  Cohen's κ is scikit-learn's
``cohen_kappa_score`` (already a dependency).  Fleiss' κ is the formula below (Fleiss 1971):
twenty lines of NumPy, against statsmodels' ``fleiss_kappa`` which would add a package of
~40 MB and about a second of import for one function; the tests check it against statsmodels
and a worked textbook example.  Qt-free.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from app.errors import SlicewiseError
from app.review.labels import NEGATIVE, POSITIVE, UNSURE


def fleiss_kappa(table: np.ndarray) -> float | None:
    """Fleiss' κ of a ``(subjects, categories)`` table of counts (every row sums to the same
    number of raters n ≥ 2); None when chance agreement is total (one category only).

    κ = (P̄ − P̄e) / (1 − P̄e), with P̄ the mean over subjects of Pᵢ = (Σⱼ nᵢⱼ² − n) / (n(n − 1))
    and P̄e = Σⱼ pⱼ², pⱼ the share of all ratings in category j."""
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or len(table) == 0:
        raise ValueError("fleiss_kappa needs a (subjects, categories) table with at least one subject")
    raters = table.sum(axis=1)
    n = raters[0]
    if n < 2 or not np.all(raters == n):
        raise ValueError("fleiss_kappa needs the same number (≥ 2) of ratings for every subject")
    p_j = table.sum(axis=0) / table.sum()
    p_i = ((table**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), float((p_j**2).sum())
    if np.isclose(p_e, 1.0):
        return None
    return float((p_bar - p_e) / (1 - p_e))


def cohen_kappa(first: np.ndarray, second: np.ndarray) -> float | None:
    """Cohen's κ of two readers' 0/1 labels of the same slices (scikit-learn); None when it is
    undefined (both readers gave one and the same label throughout, or there are no slices)."""
    if len(first) == 0 or (len(set(np.unique(first)) | set(np.unique(second))) < 2):
        return None
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(first, second, labels=[0, 1]))


@dataclass(frozen=True)
class ReaderAgreement:
    """Agreement of several readers over the items (slices, or (case, slice) pairs) all labelled."""

    readers: tuple[str, ...]
    method: str  # "cohen" (two readers) or "fleiss" (three or more)
    kappa: float | None  # None: undefined (one label throughout, or nothing to compare)
    compared: int  # items every reader labelled 1 or 0
    agreed: int  # of those, the items on which all readers gave the same label
    unsure: int  # items left out because a reader marked them ?
    incomplete: int  # items left out because a reader did not label them
    disagreements: list[tuple[Hashable, dict[str, str]]] = field(default_factory=list)  # (item, reader → label)

    @property
    def percent_agreement(self) -> float | None:
        return 100.0 * self.agreed / self.compared if self.compared else None

    def as_dict(self) -> dict:
        """For JSON: items as they are (slice numbers) or as ``[case, slice]`` lists."""
        return {
            "readers": list(self.readers),
            "method": self.method,
            "kappa": self.kappa,
            "percent_agreement": self.percent_agreement,
            "compared": self.compared,
            "agreed": self.agreed,
            "left_out": {"unsure": self.unsure, "not_labelled_by_all": self.incomplete},
            "disagreements": [{"slice": list(item) if isinstance(item, tuple) else item, "labels": labels} for item, labels in self.disagreements],
        }

    def summary(self, limit: int = 20) -> str:
        """Lines for people: κ, percent agreement, what was left out, the disagreeing slices."""
        name = "Cohen's κ" if self.method == "cohen" else "Fleiss' κ"
        kappa = "n/a (one label throughout, or nothing to compare)" if self.kappa is None else f"{self.kappa:.3f}"
        share = "n/a" if self.percent_agreement is None else f"{self.percent_agreement:.1f} %"
        left = f"; left out: {self.unsure} unsure, {self.incomplete} not labelled by every reader"
        lines = [
            f"readers: {', '.join(self.readers)}",
            f"{name} {kappa}; agreement {share} ({self.agreed} of {self.compared} slices){left}",
        ]
        shown = [f"{_item(item)} ({' '.join(f'{r}={v}' for r, v in labels.items())})" for item, labels in self.disagreements[:limit]]
        more = f" and {len(self.disagreements) - limit} more" if len(self.disagreements) > limit else ""
        lines.append("disagreeing slices: " + (", ".join(shown) + more if shown else "none"))
        return "\n".join(lines)


def _item(item: Hashable) -> str:
    return f"{item[0]} slice {item[1]}" if isinstance(item, tuple) else str(item)


def reader_agreement(readers: Mapping[str, Mapping[Hashable, str]]) -> ReaderAgreement:
    """Agreement of two or more readers (name → item → ``1``/``0``/``?``)."""
    names = tuple(readers)
    if len(names) < 2:
        raise SlicewiseError(f"agreement needs the labels of at least two readers; {len(names)} given")
    items = sorted(set().union(*(set(labels) for labels in readers.values())), key=_order)
    unsure = incomplete = 0
    rows: list[list[int]] = []
    disagreements = []
    for item in items:
        values = [readers[name].get(item) for name in names]
        if UNSURE in values:
            unsure += 1
            continue
        if any(v not in (POSITIVE, NEGATIVE) for v in values):
            incomplete += 1
            continue
        ones = [int(v == POSITIVE) for v in values]
        rows.append(ones)
        if 0 < sum(ones) < len(ones):
            disagreements.append((item, dict(zip(names, values))))
    matrix = np.array(rows, dtype=np.int64).reshape(-1, len(names))
    if len(names) == 2:
        method, kappa = "cohen", cohen_kappa(matrix[:, 0], matrix[:, 1])
    else:
        positives = matrix.sum(axis=1)
        table = np.stack([len(names) - positives, positives], axis=1)
        method, kappa = "fleiss", fleiss_kappa(table) if len(table) else None
    return ReaderAgreement(names, method, kappa, len(matrix), len(matrix) - len(disagreements), unsure, incomplete, disagreements)


def _order(item: Hashable) -> tuple:
    return (0, item) if isinstance(item, int) else (1, *item) if isinstance(item, tuple) else (2, str(item))
