"""The current slice: an ImageItem at the true voxel aspect, row 0 at the top, with a
window/level + colormap histogram beside it and the voxel under the mouse reported.

Mouse wheel over the image scrolls slices (``sigWheelSlices``); Ctrl+wheel zooms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QStackedWidget, QVBoxLayout, QWidget

if TYPE_CHECKING:
    from app.volume import Volume

COLORMAPS = ("grey", "viridis", "inferno", "magma", "plasma", "turbo", "thermal")
OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}


class SliceViewBox(pg.ViewBox):
    """A ViewBox whose wheel steps through slices unless Ctrl is held (then it zooms)."""

    sigWheelSlices = Signal(int)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._wheel_rest = 0

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        self._wheel_rest += ev.delta()
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.sigWheelSlices.emit(steps)
        ev.accept()


class SliceView(QWidget):
    """Image + histogram/LUT; ``show_slice`` is cheap (one setImage) so scrubbing stays smooth."""

    sigHover = Signal(int, int, float)  # row, column, value under the mouse; row -1: outside the image
    sigWheelSlices = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.volume: Volume | None = None
        self.index = 0
        self._slice: np.ndarray | None = None

        self.view = SliceViewBox(lockAspect=True, invertY=True, enableMenu=True)
        self.view.setDefaultPadding(0.02)
        self.view.sigWheelSlices.connect(self.sigWheelSlices)
        self.graphics = pg.GraphicsView(background="k")
        self.graphics.setCentralItem(self.view)
        self.graphics.setMinimumSize(160, 160)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        # inside the image edges, so they stay visible however the view is fitted
        self._edge_labels = [
            pg.TextItem(color=(255, 213, 79), anchor=anchor)
            for anchor in ((0.5, 0), (0.5, 1), (0, 0.5), (1, 0.5))
        ]
        for label in self._edge_labels:
            self.view.addItem(label)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.histogram = pg.HistogramLUTWidget(image=self.image, background="k")
        self.histogram.setMinimumWidth(110)
        lut = self.histogram.item.getLookupTable  # 256 entries (pyqtgraph's default is 512 for float images): the fast path
        self.histogram.item.getLookupTable = lambda img=None, n=None, alpha=None: lut(img, 256, alpha)
        self.histogram.item.gradient.loadPreset("grey")
        # the histogram is the whole volume's, set once per volume (set_volume): recomputing it
        # for every slice shown would add a histogram and a repaint of its plot to each step
        self.image.sigImageChanged.disconnect(self.histogram.item.imageChanged)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.colormap.setToolTip("Colormap (also: right-click the gradient bar)")
        self.colormap.currentTextChanged.connect(self.set_colormap)
        side = QVBoxLayout()
        side.setContentsMargins(0, 0, 0, 0)
        side.setSpacing(4)
        side.addWidget(self.histogram, 1)
        side.addWidget(self.colormap)

        viewer = QWidget()
        row = QHBoxLayout(viewer)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        row.addWidget(self.graphics, 1)
        row.addLayout(side)

        self.placeholder = QLabel("File › Open… or drop a volume here")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("QLabel { color: #9aa; font-size: 18pt; background: #111; border: 2px dashed #444; }")
        self.placeholder.setMinimumSize(160, 160)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(viewer)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

    # -- volume and slice ---------------------------------------------------------------------

    def set_volume(self, volume: Volume, levels: tuple[float, float], value_range: tuple[float, float], index: int,
                   histogram: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Show a new volume: aspect from its spacing, initial window, orientation letters, and
        the histogram of its values (``(bin left edges, counts)``; default: from the volume)."""
        self.volume = volume
        _, rows_mm, cols_mm = volume.spacing
        # ViewBox ratio is x-scale / y-scale (screen pixels per column over per row)
        self.view.setAspectLocked(True, ratio=(cols_mm / rows_mm) if rows_mm > 0 and cols_mm > 0 else 1.0)
        self.histogram.item.setHistogramRange(*value_range, padding=0.02)
        if histogram is None:
            from app.ui.loader import sample_voxels, volume_histogram

            histogram = volume_histogram(sample_voxels(volume), value_range)
        self.histogram.item.plot.setData(*histogram)
        self.histogram.item.setLevels(*levels)
        self.index = -1
        self.show_slice(index, levels=levels)
        self._place_edge_labels()
        self.view.autoRange(padding=0.02)
        self.stack.setCurrentIndex(1)

    def clear(self, message: str = "File › Open… or drop a volume here") -> None:
        self.volume = None
        self.placeholder.setText(message)
        self.stack.setCurrentIndex(0)

    def show_slice(self, index: int, levels: tuple[float, float] | None = None) -> None:
        if self.volume is None or index == self.index:
            return
        self.index = index
        data = self.volume.data[index, :, :, 0].numpy()  # (H, W) float32; a view for one channel
        if not np.isfinite(data).all():
            data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        self._slice = np.ascontiguousarray(data, dtype=np.float32)
        self.image.setImage(self._slice, levels=levels or tuple(self.histogram.item.getLevels()), autoLevels=False)

    def set_colormap(self, name: str) -> None:
        self.histogram.item.gradient.loadPreset(name)
        if self.colormap.currentText() != name:
            self.colormap.setCurrentText(name)

    def levels(self) -> tuple[float, float]:
        return tuple(float(v) for v in self.histogram.item.getLevels())  # type: ignore[return-value]

    # -- hover --------------------------------------------------------------------------------

    def voxel_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """(row, column) of the voxel under a scene position, or None outside the image."""
        if self.volume is None:
            return None
        point = self.view.mapSceneToView(scene_pos)
        row, col = int(np.floor(point.y())), int(np.floor(point.x()))
        _, height, width, _ = self.volume.shape
        if 0 <= row < height and 0 <= col < width:
            return row, col
        return None

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        voxel = self.voxel_at(scene_pos)
        if voxel is None or self.volume is None:
            self.sigHover.emit(-1, -1, float("nan"))
            return
        row, col = voxel
        self.sigHover.emit(row, col, float(self.volume.data[self.index, row, col, 0]))

    def _place_edge_labels(self) -> None:
        """Anatomical direction letters at the image edges: top, bottom, left, right."""
        assert self.volume is not None
        _, rows_dir, cols_dir = self.volume.orientation
        _, height, width, _ = self.volume.shape
        texts = (OPPOSITE.get(rows_dir, ""), rows_dir, OPPOSITE.get(cols_dir, ""), cols_dir)
        places = ((width / 2, 0), (width / 2, height), (0, height / 2), (width, height / 2))
        for label, text, (x, y) in zip(self._edge_labels, texts, places):
            label.setText(text)
            label.setPos(x, y)
