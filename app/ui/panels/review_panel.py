"""`ReviewPanel`: how the runs and the reader's labels agree, beside the score plot.

For each finished run: ROC AUC, and at the threshold sensitivity, specificity and the confusion
matrix, updated as the threshold line is dragged; the slices where model and reader disagree, a
click away.  Also the threshold as a number, the run that N / P follow, the followed run's mean
spread (a run with an uncertainty method), and the saliency and mask opacities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QVBoxLayout,
    QWidget,
)

# imported with the window, not lazily: an extension module (``_csv``) imported on the GUI thread
# while the loader thread maps torch's libraries waits for the dynamic loader (a 0.2 s freeze)
from app.review.agreement import agreement

if TYPE_CHECKING:
    from app.session import Session

UPDATE_MS = 30  # a dragged threshold recomputes the figures at most this often


class ReviewPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.threshold = QDoubleSpinBox()
        self.threshold.setDecimals(3)
        self.threshold.setSingleStep(0.05)
        self.threshold.setRange(-1e6, 1e6)
        self.threshold.setKeyboardTracking(False)
        self.threshold.setToolTip("Threshold: slices scoring above it are hits (also: drag the red line)")
        self.threshold.valueChanged.connect(session.set_threshold)
        self.follow = QComboBox()
        self.follow.setToolTip("The run that N / P step through, region by region")
        self.follow.activated.connect(self._on_follow_chosen)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of the saliency map (View › Show saliency, S)")
        self.opacity.valueChanged.connect(lambda v: session.set_saliency(opacity=v / 100))
        self.spread = QLabel("–")
        self.spread.setWordWrap(True)
        self.spread.setToolTip("The followed run's mean standard deviation over its passes (Model › Uncertainty); U goes to the slice that spreads most")
        self.dice = QLabel("–")
        self.dice.setWordWrap(True)
        self.dice.setToolTip("Dice of the followed segmentation run against the reference mask, per class (File › Load reference mask…)")
        self.mask_opacity = QSlider(Qt.Orientation.Horizontal)
        self.mask_opacity.setRange(0, 100)
        self.mask_opacity.setToolTip("Opacity of a segmentation model's mask (View › Show mask, M)")
        self.mask_opacity.valueChanged.connect(lambda v: session.set_mask(opacity=v / 100))
        self.figures = QLabel("Label slices with 1 / 0 / ? to see how a run agrees")
        self.figures.setWordWrap(True)
        self.figures.setTextFormat(Qt.TextFormat.RichText)
        self.figures.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.disagree = QListWidget()
        self.disagree.setToolTip("Slices where the followed run and the labels disagree: click to go there")
        self.disagree.itemClicked.connect(lambda item: session.set_slice(item.data(Qt.ItemDataRole.UserRole)))
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Threshold", self.threshold)
        form.addRow("N / P follow", self.follow)
        form.addRow("Spread", self.spread)
        form.addRow("Saliency", self.opacity)
        form.addRow("Mask", self.mask_opacity)
        form.addRow("Dice", self.dice)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.figures)
        layout.addWidget(QLabel("Disagreements"))
        layout.addWidget(self.disagree, 1)
        self.setMinimumWidth(220)
        self.setMaximumWidth(340)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(UPDATE_MS)
        self._timer.timeout.connect(self.update_figures)
        events = session.events
        events.threshold.connect(self._on_threshold)
        events.runs.connect(self._on_runs)
        events.follow.connect(self._on_runs)
        events.labels.connect(self._schedule)
        events.volume.connect(self._on_runs)
        events.reference.connect(self._on_runs)
        events.saliency.connect(self._on_saliency)
        events.mask.connect(self._on_mask)
        self._on_threshold(session.threshold)
        self._on_saliency()
        self._on_mask(session.mask)
        self._on_runs()

    def _schedule(self, *_args) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def _on_threshold(self, value: float) -> None:
        with QSignalBlocker(self.threshold):
            self.threshold.setValue(value)
        self._schedule()

    def _on_saliency(self, *_args) -> None:
        with QSignalBlocker(self.opacity):
            self.opacity.setValue(round(self.session.saliency_opacity * 100))

    def _on_mask(self, mask) -> None:
        with QSignalBlocker(self.mask_opacity):
            self.mask_opacity.setValue(round(mask.opacity * 100))

    def _on_runs(self, *_args) -> None:
        runs = self.session.finished_runs()
        followed = self.session.followed_run()
        with QSignalBlocker(self.follow):
            self.follow.clear()
            self.follow.addItem("newest run", None)
            for run in runs:
                self.follow.addItem(run.title, run)
            if self.session.follow is not None and self.session.follow in runs:
                self.follow.setCurrentIndex(runs.index(self.session.follow) + 1)
        self.follow.setToolTip(f"N / P step through: {followed.title if followed else 'no run yet'}")
        self.spread.setText(_spread_text(followed))
        self.dice.setText(_dice_text(self.session.dice(self.session.finished_dense_run())))
        self._schedule()

    def _on_follow_chosen(self, index: int) -> None:
        self.session.set_follow(self.follow.itemData(index))

    def update_figures(self) -> None:
        """Agreement of every finished run with the labels at the current threshold."""
        session = self.session
        labels = {i: v for i, v in session.labels.items() if v in ("0", "1")}
        runs = session.finished_runs()
        self.disagree.clear()
        if not labels or not runs:
            count = len(session.labels)
            self.figures.setText(f"{count} labels; run a strategy to compare" if count else "Label slices with 1 / 0 / ? to see how a run agrees")
            return
        rows = []
        followed = session.followed_run()
        for run in runs:
            found = agreement(run.peak(), session.labels, session.threshold)
            (tn, fp), (fn, tp) = found.confusion
            auc = "–" if found.roc_auc is None else f"{found.roc_auc:.3f}"
            rows.append(
                f"<b>{run.title}</b><br>AUC {auc} · sens {_ratio(found.sensitivity)} · spec {_ratio(found.specificity)}"
                f"<br><span style='color:#aaa'>TP {tp} · FP {fp} · FN {fn} · TN {tn}</span>"
            )
            if run is followed:
                for index, kind in found.disagreements:
                    item = QListWidgetItem(f"{index}  {kind}: {'model 1, reader 0' if kind == 'FP' else 'model 0, reader 1'}")
                    item.setData(Qt.ItemDataRole.UserRole, index)
                    self.disagree.addItem(item)
        self.figures.setText(f"{len(labels)} labels (1 / 0) at threshold {session.threshold:.2f}<br>" + "<br>".join(rows))


def _spread_text(run) -> str:
    """``mean sd 0.031 · most at slice 17 (U)`` for a run with a spread, else a dash."""
    mean = run.mean_spread() if run is not None else None
    if mean is None:
        return "–"
    index, _ = run.most_uncertain()
    return f"mean sd {mean:.3f} · most at slice {index} (U)"


def _dice_text(scores: dict[str, dict] | None) -> str:
    """``lesion 0.873`` per class (n/a where both masks are empty), or a dash without a reference."""
    if scores is None:
        return "–"
    return " · ".join(f"{name} {'n/a' if e['dice'] is None else format(e['dice'], '.3f')}" for name, e in scores.items())


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
