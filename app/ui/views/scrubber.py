"""The slicing row under the image: axis and 4D volume pickers, and the depth scrubber (a slider
and a spin box that show the session's slice) with the slice's position, and a strip of marks
above the slider: the reader's labels and the slices above the threshold, along the whole depth."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRect, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QStyle,
    QStyleOptionSlider,
    QVBoxLayout,
    QWidget,
)

from app.status import position_text
from app.ui.panels.steady_label import SteadyLabel
from app.volume import AXIS_CHOICES

if TYPE_CHECKING:
    from app.session import Session

DRAG_RATE_HZ = 60  # a dragged slider repaints at most this often; the last position always lands
LABEL_COLORS = {"1": "#66bb6a", "0": "#ef5350", "?": "#bdbdbd"}
HIT_COLOR = "#ffb74d"


class MarkStrip(QWidget):
    """Ticks over the slider's groove: labels (top half) and slices above the threshold (bottom)."""

    def __init__(self, slider: QSlider, parent: QWidget | None = None):
        super().__init__(parent)
        self.slider = slider
        self.depth = 0
        self.labels: dict[int, str] = {}
        self.hits = np.zeros(0, dtype=bool)
        self.setFixedHeight(10)
        self.setToolTip("Labels (green 1, red 0, grey ?) and slices scoring above the threshold (orange)")

    def set_marks(self, depth: int, labels: dict[int, str], hits: np.ndarray) -> None:
        self.depth, self.labels, self.hits = depth, dict(labels), np.asarray(hits, dtype=bool)
        self.update()

    def _x(self, index: int, groove: QRect, handle: int) -> int:
        span = max(groove.width() - handle, 1)
        return groove.left() + handle // 2 + QStyle.sliderPositionFromValue(0, max(self.depth - 1, 1), index, span)

    def paintEvent(self, event) -> None:
        if self.depth == 0 or (not self.labels and not self.hits.any()):
            return
        option = QStyleOptionSlider()
        self.slider.initStyleOption(option)
        style = self.slider.style()
        groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, self.slider)
        handle = style.subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, self.slider).width()
        groove.translate(self.slider.x() - self.x(), 0)
        painter = QPainter(self)
        half = self.height() // 2
        for index in np.flatnonzero(self.hits):
            painter.fillRect(self._x(int(index), groove, handle) - 1, half, 2, self.height() - half, QColor(HIT_COLOR))
        for index, label in self.labels.items():
            if 0 <= index < self.depth:
                painter.fillRect(self._x(index, groove, handle) - 1, 0, 3, half, QColor(LABEL_COLORS.get(label, "#ffffff")))
        painter.end()


class Scrubber(QWidget):
    """Draws the session's slice; the slider and spin box write it.  ``sigAxisRequested`` and
    ``sigVolumeIndexRequested`` ask the window to re-slice the open file."""

    sigAxisRequested = Signal(str)
    sigVolumeIndexRequested = Signal(int)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.axis = QComboBox()
        self.axis.addItems(AXIS_CHOICES)
        self.axis.setToolTip("Depth axis of the slices: the acquisition's own, or re-slice the file")
        self.volume_index = QSpinBox()
        self.volume_index.setToolTip("Volume of a 4D file")
        self.volume_index.setKeyboardTracking(False)
        self.volume_index.setEnabled(False)
        self.volume_label = QLabel("Volume")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setTracking(True)
        self.slider.setPageStep(10)
        self.slider.setToolTip("Slice (←/→ one, PgUp/PgDn ten, Home/End, mouse wheel over the image)")
        self.marks = MarkStrip(self.slider)
        self.spin = QSpinBox()
        self.spin.setKeyboardTracking(False)
        self.spin.setAccelerated(True)
        self.spin.setToolTip("Slice index")
        self.total = QLabel("/ 0")
        self.position = SteadyLabel()
        self.position.setMinimumWidth(110)
        self.position.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        slider_column = QVBoxLayout()
        slider_column.setContentsMargins(0, 0, 0, 0)
        slider_column.setSpacing(0)
        slider_column.addWidget(self.marks)
        slider_column.addWidget(self.slider)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(QLabel("Axis"))
        layout.addWidget(self.axis)
        layout.addWidget(self.volume_label)
        layout.addWidget(self.volume_index)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.VLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        layout.addWidget(line)
        layout.addWidget(QLabel("Slice"))
        layout.addLayout(slider_column, 1)
        layout.addWidget(self.spin)
        layout.addWidget(self.total)
        layout.addWidget(self.position)

        self.slider.valueChanged.connect(self._on_slider)
        # A drag fires valueChanged per mouse move: condense the burst into a steady stream.
        self._drag = pg.SignalProxy(self.slider.sliderMoved, rateLimit=DRAG_RATE_HZ, slot=self._on_drag, threadSafe=False)
        self.slider.sliderReleased.connect(lambda: session.set_slice(self.slider.value()))
        self.spin.valueChanged.connect(session.set_slice)
        self.axis.activated.connect(lambda i: self.sigAxisRequested.emit(self.axis.itemText(i)))
        self.volume_index.valueChanged.connect(self.sigVolumeIndexRequested)
        events = session.events
        events.volume.connect(self._on_volume)
        events.slice.connect(self._on_slice)
        for event in (events.volume, events.labels, events.runs, events.threshold, events.follow):
            event.connect(self._update_marks)
        self._set_depth(0)

    def index(self) -> int:
        return self.slider.value()

    def _set_depth(self, depth: int) -> None:
        top = max(depth - 1, 0)
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setRange(0, top)
            self.spin.setRange(0, top)
        self.total.setText(f"/ {top}")
        for widget in (self.axis, self.slider, self.spin):
            widget.setEnabled(depth > 0)

    def show_axis_choice(self, axis: str, index: int, count: int) -> None:
        """Show which axis and 4D volume are open (or being opened), without emitting."""
        with QSignalBlocker(self.axis), QSignalBlocker(self.volume_index):
            self.axis.setCurrentText(axis)
            self.volume_index.setRange(0, max(count - 1, 0))
            self.volume_index.setValue(index)
        self.volume_index.setEnabled(count > 1)
        self.volume_index.setSuffix(f" of {count}" if count > 1 else "")

    def _on_volume(self, volume) -> None:
        self._set_depth(0 if volume is None else volume.depth)
        if volume is not None:
            choice = "acquired" if getattr(volume, "axis_source", "") == "acquired" else volume.axis
            self.show_axis_choice(choice, volume.volume_index, volume.n_volumes)

    def _on_slice(self, index: int) -> None:
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setValue(index)
            self.spin.setValue(index)
        volume = self.session.volume
        if volume is not None:
            self.position.setText(position_text(volume, index))

    def _update_marks(self, *_args) -> None:
        session = self.session
        if session.volume is None:
            self.marks.set_marks(0, {}, np.zeros(0, dtype=bool))
            return
        run = session.followed_run()
        with np.errstate(invalid="ignore"):
            hits = run.peak() > session.threshold if run is not None else np.zeros(session.volume.depth, dtype=bool)
        self.marks.set_marks(session.volume.depth, session.labels, hits)

    def _on_slider(self, value: int) -> None:
        with QSignalBlocker(self.spin):
            self.spin.setValue(value)
        if not self.slider.isSliderDown():  # clicks, keys, page steps: at once; drags: via the proxy
            self.session.set_slice(value)

    def _on_drag(self, args: tuple) -> None:
        self.session.set_slice(int(args[0]))
