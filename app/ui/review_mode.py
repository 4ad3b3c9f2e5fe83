"""``slicewise review RESULTS``: the viewer with a cohort's worklist and adjudication view docked
beside it, one reader's labels and decisions, and each case's runs restored from the results.

Opening a case loads its volume as File › Open does; once it shows, its runs are rebuilt from the
stored scores (app.review.results) and added as finished runs: the model is never called.
Ctrl+→ / Ctrl+← open the next / previous case in the worklist's order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDockWidget, QTabWidget

from app.errors import SlicewiseError
from app.inference.models import BUILTIN_PREFIX
from app.review.readers import ReaderLabels
from app.review.worklist import CohortReview
from app.session import ScoringSettings
from app.ui.panels.adjudication import AdjudicationPanel
from app.ui.panels.worklist import DECISION_KEYS, WorklistPanel


class ReviewMode:
    """Docks the worklist and adjudication view on a `MainWindow` and wires them to it."""

    def __init__(self, window, review: CohortReview):
        self.window, self.review = window, review
        self.worklist = WorklistPanel(review)
        self.adjudication = AdjudicationPanel(review)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.worklist, "Worklist")
        self.tabs.addTab(self.adjudication, "Adjudication")
        self.tabs.currentChanged.connect(lambda i: self.adjudication.refresh() if self.tabs.widget(i) is self.adjudication else None)
        blind = ", blinded" if review.blinded else ""
        self.dock = QDockWidget(f"Cohort: {review.results.source.name} — reader {review.reader}{blind}", window)
        self.dock.setObjectName("cohort-dock")
        self.dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.dock.setWidget(self.tabs)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        window.resizeDocks([self.dock], [660], Qt.Orientation.Horizontal)
        window.labels.open_store = lambda volume: ReaderLabels.for_reader(volume, review.reader)
        self.pending: tuple[int, int | None] | None = None  # (row, slice) being opened
        self.shortcuts = []
        for key, slot in ((QKeySequence("Ctrl+Right"), lambda: self.step(+1)), (QKeySequence("Ctrl+Left"), lambda: self.step(-1)),
                          *((QKeySequence(k), lambda d=d: self.worklist.decide(d)) for d, k in DECISION_KEYS)):  # fmt: skip
            shortcut = QShortcut(key, window)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts.append(shortcut)
        self.worklist.sigOpen.connect(self.open_case)
        self.worklist.sigDecided.connect(self._on_decided)
        self.adjudication.sigJump.connect(self.open_case)
        window.sigVolumeShown.connect(self._on_shown)
        window.session.events.labels.connect(self._on_labels)
        QTimer.singleShot(0, self._after_first_paint)

    def _after_first_paint(self) -> None:
        self.worklist.read_cohort()
        self.worklist.table.setFocus()
        if self.worklist.proxy.rowCount():
            self.worklist.table.selectRow(0)

    def step(self, step: int) -> None:
        """Open the next (``+1``) or previous (``-1``) case in the table's order."""
        row = self.worklist.neighbour(step)
        if row is not None:
            self.open_case(row)

    def open_case(self, row: int, index: int | None = None) -> None:
        """Load case ``row``'s volume (at slice ``index``); its runs come back when it shows."""
        case = self.review.case(row)
        self.pending = (row, index)
        self.worklist.set_current(row)
        if not case.path.exists():
            self.window._error("Cannot open case", f"{case.name}: {case.path} does not exist on this machine")
            return
        self.window.open_path(case.path, case.axis, case.volume_index)

    def _on_shown(self, volume) -> None:
        if self.pending is None:
            return
        row, index = self.pending
        self.pending = None
        case = self.review.case(row)
        session = self.window.session
        if Path(volume.source).resolve() != case.path.resolve():
            return
        if (case.sha256 and volume.sha256 and volume.sha256 != case.sha256) or volume.depth != case.depth:
            self.window._error("Scores not shown", f"{case.name} changed since it was scored (content or slices differ): its stored scores do not fit it")
            return
        restored = self.review.results.predictions(case)
        note = ""
        try:
            mask = self.review.results.mask(case, volume)
        except SlicewiseError as exc:
            mask, note = None, f" · no mask: {exc}"
        for prediction in restored:
            if mask is not None and prediction.unit == "mm²":
                prediction = dataclasses.replace(prediction, dense=mask)
                mask = None  # one map: the first segmentation run's
            model = _model_path(prediction)
            settings = ScoringSettings(strategy=prediction.strategy, model_path=model, normalize=prediction.normalize, channels=prediction.channels)
            run = session.begin_run(-1 - row, settings)
            session.finish_run(run, prediction)
        if index is not None:
            session.set_slice(index)
        position = self.worklist.table_row(row) + 1 or "–"
        session.say(f"case {position} of {self.worklist.proxy.rowCount()}: {case.name}, {len(restored)} run{'s' if len(restored) != 1 else ''} restored from {self.review.results.source.name}{note}")

    def _on_labels(self, _labels) -> None:
        if self.worklist.current is not None:
            self.worklist.model.refresh_row(self.worklist.current)

    def _on_decided(self, row: int) -> None:
        self.worklist.show_cohort()
        self.adjudication.refresh()


def _model_path(prediction) -> str | None:
    """The model a restored run names, as the viewer's settings spell it: None for a strategy's
    built-in model, ``builtin:lesion`` for another shipped one, else the file."""
    source = prediction.model_source
    if not source.startswith("built-in:"):
        return source or None
    name = source.removeprefix("built-in:").split(" ")[0]  # "built-in:slice (untrained)"
    return None if name == prediction.strategy else BUILTIN_PREFIX + name


def run_review(results: str, reader: str | None = None, blinded: bool = False, threshold: float = 0.5) -> int:
    """Open the viewer on a cohort's results as a worklist; returns the exit code."""
    from app.review.results import load_results

    review = CohortReview(load_results(results), reader, blinded, threshold)  # bad results: `error:` before any window
    from app.ui.main import ensure_app

    qapp = ensure_app()
    from app.ui.window import MainWindow

    window = MainWindow()
    window.review_mode = ReviewMode(window, review)
    window.session.set_threshold(threshold)
    window.show()
    return qapp.exec()
