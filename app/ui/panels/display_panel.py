"""`DisplayPanel`: the volume's histogram with the window/level region, the colormap, and numeric
window / level boxes, shared by every plane view.  It draws and writes the session's levels and
colormap; the lookup table it makes from the colormap goes to every view (``sigLut``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QVBoxLayout, QWidget

from app.display import window_of

if TYPE_CHECKING:
    from app.session import Session

COLORMAPS = ("grey", "viridis", "inferno", "magma", "plasma", "turbo", "thermal")
LUT_SIZE = 256  # the views draw through a uint8 table of at most 256 entries


class DisplayPanel(QWidget):
    sigLut = Signal(object)  # (256, 3|4) uint8 lookup table for the views

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.histogram = pg.HistogramLUTWidget(background="k")
        self.histogram.setMinimumWidth(110)
        item = self.histogram.item
        item.gradient.loadPreset("grey")
        item.gradient.showTicks(False)  # the colormap is chosen by name below: one source of truth
        item.sigLevelsChanged.connect(self._on_histogram_levels)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.setToolTip("Colormap of every view")
        self.colormap.currentTextChanged.connect(session.set_colormap)
        self.level = _number_box("Level (window centre)")
        self.width = _number_box("Window width")
        self.width.setMinimum(1e-6)
        self.level.editingFinished.connect(self._on_boxes)
        self.width.editingFinished.connect(self._on_boxes)
        boxes = QFormLayout()
        boxes.setContentsMargins(0, 0, 0, 0)
        boxes.addRow("L", self.level)
        boxes.addRow("W", self.width)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.histogram, 1)
        layout.addLayout(boxes)
        layout.addWidget(self.colormap)
        self.setMaximumWidth(150)

        session.events.volume.connect(self._on_volume)
        session.events.levels.connect(self._on_levels)
        session.events.colormap.connect(self._on_colormap)

    def lut(self) -> np.ndarray:
        return self.histogram.item.gradient.getLookupTable(LUT_SIZE, alpha=False)

    def _on_volume(self, volume) -> None:
        display = self.session.display
        if volume is None or display is None:
            return
        lo, hi = display.value_range
        self.histogram.item.setHistogramRange(lo, hi, padding=0.02)
        self.histogram.item.plot.setData(*display.histogram)
        span = max(hi - lo, 1.0)
        for box in (self.level, self.width):
            box.setRange(-10 * span - abs(lo), 10 * span + abs(hi))
            box.setSingleStep(max(span / 200, 1e-3))
        self.width.setMinimum(span * 1e-4)

    def _on_levels(self, levels) -> None:
        with QSignalBlocker(self.histogram.item):
            self.histogram.item.setLevels(*levels)
        center, width = window_of(levels)
        with QSignalBlocker(self.level), QSignalBlocker(self.width):
            self.level.setValue(center)
            self.width.setValue(width)

    def _on_histogram_levels(self, item) -> None:
        self.session.set_levels(*item.getLevels())

    def _on_boxes(self) -> None:
        self.session.set_window(self.level.value(), self.width.value())

    def _on_colormap(self, name: str) -> None:
        self.histogram.item.gradient.loadPreset(name)
        with QSignalBlocker(self.colormap):
            self.colormap.setCurrentText(name)
        self.sigLut.emit(self.lut())


def _number_box(tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(1)
    box.setKeyboardTracking(False)
    box.setToolTip(tip)
    box.setMaximumWidth(110)
    return box
