"""The slicing row under the image: axis and 4D volume pickers, and the depth scrubber (a
slider and a spin box that always agree) with the slice's position."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QSlider, QSpinBox, QWidget

DRAG_RATE_HZ = 60  # a dragged slider repaints at most this often; the last position always lands

AXES = ("axial", "coronal", "sagittal")  # app.volume.AXES, literal so the window opens without torch


class Scrubber(QWidget):
    """``sigIndexChanged`` fires on user changes only; ``set_index`` is silent (no feedback loops)."""

    sigIndexChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.axis = QComboBox()
        self.axis.addItems(AXES)
        self.axis.setToolTip("Depth axis of the slices (re-slices the open file)")
        self.volume_index = QSpinBox()
        self.volume_index.setToolTip("Volume of a 4D file")
        self.volume_index.setKeyboardTracking(False)
        self.volume_index.setEnabled(False)
        self.volume_label = QLabel("Volume")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setTracking(True)
        self.slider.setPageStep(10)
        self.slider.setToolTip("Slice (←/→ one, PgUp/PgDn ten, Home/End, mouse wheel over the image)")
        self.spin = QSpinBox()
        self.spin.setKeyboardTracking(False)
        self.spin.setAccelerated(True)
        self.spin.setToolTip("Slice index")
        self.total = QLabel("/ 0")
        self.position = QLabel("")
        self.position.setMinimumWidth(110)
        self.position.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
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
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        layout.addWidget(self.total)
        layout.addWidget(self.position)
        self.slider.valueChanged.connect(self._on_slider)
        # A drag fires valueChanged per mouse move: condense the burst into a steady stream.
        self._drag = pg.SignalProxy(self.slider.sliderMoved, rateLimit=DRAG_RATE_HZ, slot=self._on_drag, threadSafe=False)
        self.slider.sliderReleased.connect(lambda: self.sigIndexChanged.emit(self.slider.value()))
        self.spin.valueChanged.connect(self._on_spin)
        self.set_depth(0)

    def set_depth(self, depth: int) -> None:
        top = max(depth - 1, 0)
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setRange(0, top)
            self.spin.setRange(0, top)
        self.total.setText(f"/ {top}")
        for widget in (self.axis, self.slider, self.spin):
            widget.setEnabled(depth > 0)

    def set_volume_choice(self, axis: str, index: int, count: int) -> None:
        """Show the open volume's axis and 4D index without emitting."""
        with QSignalBlocker(self.axis), QSignalBlocker(self.volume_index):
            self.axis.setCurrentText(axis)
            self.volume_index.setRange(0, max(count - 1, 0))
            self.volume_index.setValue(index)
        self.volume_index.setEnabled(count > 1)
        self.volume_index.setSuffix(f" of {count}" if count > 1 else "")

    def index(self) -> int:
        return self.slider.value()

    def maximum(self) -> int:
        return self.slider.maximum()

    def set_index(self, index: int) -> int:
        """Move both controls without emitting; returns the clamped index."""
        index = max(0, min(index, self.slider.maximum()))
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setValue(index)
            self.spin.setValue(index)
        return index

    def set_position_text(self, text: str) -> None:
        self.position.setText(text)

    def _on_slider(self, value: int) -> None:
        with QSignalBlocker(self.spin):
            self.spin.setValue(value)
        if not self.slider.isSliderDown():  # clicks, keys, page steps: at once; drags: via the proxy
            self.sigIndexChanged.emit(value)

    def _on_drag(self, args: tuple) -> None:
        self.sigIndexChanged.emit(int(args[0]))

    def _on_spin(self, value: int) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(value)
        self.sigIndexChanged.emit(value)
