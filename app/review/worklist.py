"""A cohort under review by one reader: per case who labelled it, how the model and the readers
disagree, the decisions, per-case and cohort κ, and where readers disagree (adjudication).

`CohortReview` wraps parsed `Results` (app.review.results) for one reader.  What it says of a
case is computed when first asked (a worklist of 10 000 cases asks only for the rows on screen)
and kept until `refresh`.  Each folder of volumes is listed once.  In blinded mode a case's other
readers — their labels, decisions and the κ between them — stay hidden until this reader has
decided the case.  Qt-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.review.decisions import CaseDecisions, Decision, decisions_of
from app.review.kappa import ReaderAgreement, reader_agreement
from app.review.labels import NEGATIVE, POSITIVE, VolumeKey
from app.review.readers import reader_name, readers_of
from app.review.results import Case, Results


@dataclass
class CaseStatus:
    """What the worklist shows of one case for this reader."""

    own: dict[int, str]  # this reader's labels
    others: dict[str, dict[int, str]]  # the other readers' labels (empty while hidden)
    decision: Decision | None  # this reader's latest
    other_decisions: dict[str, Decision]  # the others' latest (empty while hidden)
    hidden: int  # other readers hidden by blinding
    model_disagreements: list[int] = field(default_factory=list)  # slices where the model and a shown reader differ
    agreement: ReaderAgreement | None = None  # between the shown readers (two or more)

    @property
    def readers(self) -> list[str]:
        return (["you"] if self.own else []) + sorted(r for r, labels in self.others.items() if labels)


class CohortReview:
    """One reader's review of a cohort's results."""

    def __init__(self, results: Results, reader: str | None = None, blinded: bool = False, threshold: float = 0.5):
        self.results = results
        self.reader = reader_name(reader)
        self.blinded = blinded
        self.threshold = float(threshold)
        self._status: dict[int, CaseStatus] = {}
        self._folders: dict[str, dict[str, list[str]]] = {}
        self._short: list[str] | None = None  # `short_name` of every case, made when first asked

    def __len__(self) -> int:
        return len(self.results.cases)

    def case(self, row: int) -> Case:
        return self.results.cases[row]

    def short_name(self, row: int) -> str:
        """Case ``row``'s name as the worklist shows it: the file name, with as many folders above
        it as tell it from every other case's (``a/phantom.nii.gz`` beside ``b/phantom.nii.gz``)."""
        if self._short is None:
            self._short = short_names([case.name for case in self.results.cases])
        return self._short[row]

    def key(self, case: Case) -> VolumeKey:
        return VolumeKey(case.sha256, case.axis, case.volume_index, case.depth)

    # -- per case -------------------------------------------------------------------------------

    def status(self, row: int) -> CaseStatus:
        found = self._status.get(row)
        if found is None:
            found = self._status[row] = self._compute(row)
        return found

    def refresh(self, row: int | None = None) -> None:
        """Forget what was read (of one case, or all): after a label or decision is saved."""
        if row is None:
            self._status.clear()
            self._folders.clear()
        else:
            self._status.pop(row, None)
            self._folders.pop(_split(self.case(row))[0], None)

    def decisions(self, row: int) -> CaseDecisions:
        case = self.case(row)
        return CaseDecisions(case.path, case.sha256, self.reader)

    def decide(self, row: int, decision: str, note: str = "") -> Decision:
        record = self.decisions(row).decide(decision, note)
        self.refresh(row)
        return record

    def _names(self, case: Case) -> list[str]:
        """The labels and decisions files beside the case's volume (string work: no Path)."""
        folder, name = _split(case)
        index = self._folders.get(folder)
        if index is None:
            index = self._folders[folder] = _index(Path(folder))
        return index.get(name, [])

    def _compute(self, row: int) -> CaseStatus:
        case = self.case(row)
        names = self._names(case)
        if not names or not case.sha256:  # nobody has labelled or decided it: nothing to read
            return CaseStatus({}, {}, None, {}, 0)
        labels = readers_of(case.path, self.key(case), names)
        decisions = decisions_of(case.path, case.sha256, names)
        own = labels.pop(self.reader, {})
        mine = decisions.pop(self.reader, [])
        decision = mine[-1] if mine else None
        hidden = 0
        if self.blinded and decision is None:
            hidden = len(set(labels) | set(decisions))
            labels, decisions = {}, {}
        status = CaseStatus(own, labels, decision, {r: h[-1] for r, h in decisions.items()}, hidden)
        shown = {"you": own, **labels} if own else dict(labels)
        shown = {r: v for r, v in shown.items() if v}
        peak = self.results.peak(case)
        called = np.asarray(peak) > self.threshold
        status.model_disagreements = sorted({i for v in shown.values() for i, label in v.items()
                                             if label in (POSITIVE, NEGATIVE) and 0 <= i < len(called)
                                             and np.isfinite(peak[i]) and called[i] != (label == POSITIVE)})  # fmt: skip
        if len(shown) >= 2:
            status.agreement = reader_agreement(shown)
        return status

    # -- the cohort -----------------------------------------------------------------------------

    def cohort_agreement(self) -> ReaderAgreement | None:
        """κ of the readers over every shown case's slices pooled ((case, slice) items); None
        with fewer than two readers."""
        pooled: dict[str, dict[tuple[str, int], str]] = {}
        for row, case in enumerate(self.results.cases):
            status = self.status(row)
            for reader, labels in ({"you": status.own} | status.others).items():
                for index, label in labels.items():
                    pooled.setdefault(reader, {})[(case.name, index)] = label
        pooled = {r: v for r, v in pooled.items() if v}
        return reader_agreement(pooled) if len(pooled) >= 2 else None

    def disagreements(self) -> list[tuple[int, int | None, str]]:
        """Where shown readers disagree: ``(row, slice, what)`` for each disagreeing slice, and
        ``(row, None, what)`` for a case whose readers decided differently; in case order."""
        found = []
        for row in range(len(self.results.cases)):
            status = self.status(row)
            verdicts = ({"you": status.decision} if status.decision else {}) | status.other_decisions
            if len({d.decision for d in verdicts.values()}) > 1:
                found.append((row, None, "decisions: " + ", ".join(f"{r} {d.decision}" for r, d in verdicts.items())))
            if status.agreement is not None:
                for index, labels in status.agreement.disagreements:
                    found.append((row, index, "labels: " + ", ".join(f"{r} {v}" for r, v in labels.items())))
        return found


def short_names(names: list[str]) -> list[str]:
    """Each name's shortest tail of path parts that no other name ends with (the whole name at
    most): a few passes over the names, each lengthening only the tails still shared."""
    parts = [name.replace("\\", "/").rstrip("/").split("/") for name in names]
    depth = [1] * len(parts)
    while True:
        tails = [tuple(p[-d:]) for p, d in zip(parts, depth)]
        counts: dict[tuple, int] = {}
        for tail in tails:
            counts[tail] = counts.get(tail, 0) + 1
        longer = [i for i, tail in enumerate(tails) if counts[tail] > 1 and depth[i] < len(parts[i])]
        if not longer:
            return ["/".join(tail) for tail in tails]
        for i in longer:
            depth[i] += 1


def _split(case: Case) -> tuple[str, str]:
    """The case's folder and file name."""
    return os.path.split(case.name if os.path.isabs(case.name) else str(case.path))


def _index(folder: Path) -> dict[str, list[str]]:
    """The labels and decisions files of a folder, under every dotted prefix of their names
    before ``.labels`` / ``.decisions.`` (so a volume's name finds them in one look-up)."""
    index: dict[str, list[str]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return index
    for name in names:
        end = max(name.find(".labels"), name.find(".decisions."))
        if end <= 0:
            continue
        start = 0
        while (dot := name.find(".", start, end + 1)) != -1:
            index.setdefault(name[:dot], []).append(name)
            start = dot + 1
    return index
