"""What a cohort run knows about its volumes while it runs: one ``Outcome`` per volume and the
``CohortRun`` that holds them, shared by the scoring loop, the progress bar, the test hooks and
the final report (which is why they live apart from both)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.cohort.inputs import Item


@dataclass
class Outcome:
    """One volume's result: ``ok`` with the key of its saved part (``reused`` if an earlier run
    saved it), or ``failed`` with the reason."""

    status: str  # "ok" or "failed"
    key: str | None = None
    reason: str | None = None
    reused: bool = False


@dataclass
class CohortRun:
    """The state of one cohort run: an outcome per item (None while it is pending)."""

    items: list[Item]
    outcomes: list[Outcome | None]
    scored: int = 0  # scored by workers in this run (not reused)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None  # when the last result arrived

    @property
    def done(self) -> int:
        return sum(1 for o in self.outcomes if o is not None and o.status == "ok")

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o is not None and o.status == "failed")

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def rate(self) -> float:
        """Volumes scored per second since the tasks were submitted."""
        elapsed = self.elapsed
        return self.scored / elapsed if elapsed > 0 else 0.0
