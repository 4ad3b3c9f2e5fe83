"""`PlaneView`: one plane of the session's volume through the crosshair, drawn from the session.

The depth view (``fixed=0``) shows the slice the scrubber moves; the side views (``fixed`` 1
and 2) show the two other planes through the crosshair point.  Each view is at its true aspect,
with the anatomical letters pinned to the view's edges (they stay when zoomed).

Mouse: left click or drag moves the crosshair (in a side view that moves the depth slice);
right drag sets window/level (horizontal: width, vertical: level); middle drag pans; Ctrl+wheel
zooms; double-click resets the zoom; the wheel steps through this view's slices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QGraphicsView, QLabel, QVBoxLayout, QWidget

from app.planes import Plane, plane
from app.ui.views.crosshair import Crosshair
from app.ui.views.plane_canvas import MARGIN, PlaneCanvas
from app.ui.views.slice_image import SliceImage

if TYPE_CHECKING:
    from app.session import Session

CROSSHAIR = "#4dd0e1"
WL_DRAG_RATE = 0.004  # window widths per screen pixel of a right drag


class PlaneViewBox(pg.ViewBox):
    """A ViewBox with a reader's mouse: left = point, right drag = window/level, middle = pan."""

    sigPoint = Signal(float, float)  # (row, col) in image coordinates
    sigWindowDrag = Signal(float, float, bool)  # dx, dy screen pixels since the press; True at the start
    sigWheelSteps = Signal(int)
    sigDoubleClick = Signal()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._wheel_rest = 0

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.double():
                self.sigDoubleClick.emit()
                return
            point = self.mapSceneToView(ev.scenePos())
            self.sigPoint.emit(point.y(), point.x())
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        button = ev.button()
        if button == Qt.MouseButton.LeftButton and axis is None:
            ev.accept()
            point = self.mapSceneToView(ev.scenePos())
            self.sigPoint.emit(point.y(), point.x())
            return
        if button == Qt.MouseButton.RightButton and axis is None:
            ev.accept()
            delta = ev.screenPos() - ev.buttonDownScreenPos()
            self.sigWindowDrag.emit(delta.x(), delta.y(), ev.isStart())
            return
        super().mouseDragEvent(ev, axis)  # middle button: pan

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        self._wheel_rest += ev.delta()
        steps = int(self._wheel_rest / 120)
        if steps:
            self._wheel_rest -= steps * 120
            self.sigWheelSteps.emit(steps)
        ev.accept()


class PlaneView(QWidget):
    """One plane of the session's volume; ``refresh`` redraws only what a change needs."""

    sigRepainted = Signal()  # after an image was set (benchmarks and tests wait for it)

    def __init__(self, session: Session, fixed: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.session, self.fixed = session, fixed
        self.plane: Plane | None = None
        self._shown_at: int | None = None  # the fixed coordinate of the image shown
        self._drag_start: tuple[float, float] | None = None

        self.view = PlaneViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setDefaultPadding(0.02)
        self.graphics = PlaneCanvas()
        # Pixels and axis-aligned lines gain nothing from antialiasing; without it QPainter takes
        # its fast paths for the scaled image (about 2 ms less per crosshair move, three views).
        self.graphics.setAntialiasing(False)
        # a move repaints the image (most of the view) and the lines across it: one rectangle
        self.graphics.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.graphics.setCentralItem(self.view)
        self.graphics.setMinimumSize(120, 120)
        self.image = SliceImage()
        self.view.addItem(self.image)
        self.crosshair = Crosshair(CROSSHAIR)
        self.crosshair.setZValue(20)
        self.view.addItem(self.crosshair, ignoreBounds=True)
        self.captions: list[QLabel] = []  # labels kept in the view's bottom-right corner (the saliency method)
        self.corner: list[QWidget] = []  # widgets kept in the view's top-right corner (the mask legend)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

        self.view.sigPoint.connect(self._on_point)
        self.view.sigWindowDrag.connect(self._on_window_drag)
        self.view.sigWheelSteps.connect(self._on_wheel)
        self.view.sigDoubleClick.connect(self.reset_zoom)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        events = session.events
        events.volume.connect(self._on_volume)
        events.radiological.connect(self._on_volume)
        events.crosshair.connect(self._on_position)
        events.levels.connect(self._on_levels)
        events.layout.connect(self._on_layout)

    # -- drawing ------------------------------------------------------------------------------

    def voxel(self) -> tuple[int, int, int]:
        return (self.session.index, *self.session.point)

    def _on_volume(self, *_args) -> None:
        volume = self.session.volume
        if volume is None:
            self.plane = None
            self.image.clear()  # it was a view of the volume's tensor: let the tensor go
            return
        self.plane = plane(volume, self.fixed, self.session.radiological)
        row_mm, col_mm = self.plane.pixel_mm(volume)
        # ViewBox ratio is x-scale / y-scale (screen pixels per column over per row)
        self.view.setAspectLocked(True, ratio=(col_mm / row_mm) if row_mm > 0 and col_mm > 0 else 1.0)
        self.graphics.set_texts(self.plane.labels, self.plane.name)
        self.place_labels()
        self.crosshair.set_extent(*self.plane.shape(volume))
        self._shown_at = None
        self._on_position()
        self.reset_zoom()

    def _on_position(self, *_args) -> None:
        """Slice or point moved: a new image if this plane's coordinate changed; the crosshair always."""
        volume, plane_ = self.session.volume, self.plane
        if volume is None or plane_ is None:
            return
        voxel = self.voxel()
        if voxel[self.fixed] != self._shown_at:
            self._shown_at = voxel[self.fixed]
            self.image.set_image(plane_.view(volume, voxel), self.session.levels)
            self.sigRepainted.emit()
        self.crosshair.set_point(*plane_.to_screen(volume, voxel))  # unchanged by a move along this view's fixed axis

    def repaint_soon(self) -> None:
        """Ask for the whole view to be repainted (the saliency overlay does with each new map:
        the scene's own request for it was lost about once in a hundred slice changes, and the
        view kept the old slice until the mouse moved)."""
        self.graphics.viewport().update()

    def set_lut(self, lut: np.ndarray) -> None:
        self.image.set_lut(lut)

    def _on_levels(self, levels) -> None:
        self.image.set_levels(levels)

    def _on_layout(self, layout: str) -> None:
        self.crosshair.setVisible(layout == "ortho")

    def reset_zoom(self) -> None:
        self.view.autoRange(padding=0.02)

    # -- mouse --------------------------------------------------------------------------------

    def voxel_at(self, row: float, col: float) -> tuple[int, int, int] | None:
        """The voxel under image coordinates (row, col) of this view, or None outside it."""
        volume, plane_ = self.session.volume, self.plane
        if volume is None or plane_ is None:
            return None
        rows, cols = plane_.shape(volume)
        r, c = int(np.floor(row)), int(np.floor(col))
        if not (0 <= r < rows and 0 <= c < cols):
            return None
        return plane_.to_voxel(volume, r, c, self.voxel())

    def _on_point(self, row: float, col: float) -> None:
        volume, plane_ = self.session.volume, self.plane
        if volume is None or plane_ is None:
            return
        rows, cols = plane_.shape(volume)
        r, c = min(max(int(np.floor(row)), 0), rows - 1), min(max(int(np.floor(col)), 0), cols - 1)
        self.session.set_voxel(*plane_.to_voxel(volume, r, c, self.voxel()))

    def _on_window_drag(self, dx: float, dy: float, start: bool) -> None:
        from app.display import window_of

        if start or self._drag_start is None:
            self._drag_start = window_of(self.session.levels)
        center, width = self._drag_start
        self.session.set_window(center - dy * width * WL_DRAG_RATE, width * float(np.exp(dx * WL_DRAG_RATE * 2)))

    def _on_wheel(self, steps: int) -> None:
        if self.fixed == 0:
            self.session.step_slice(steps)
            return
        volume = self.session.volume
        if volume is None:
            return
        voxel = list(self.voxel())
        voxel[self.fixed] += steps
        self.session.set_voxel(*voxel)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        point = self.view.mapSceneToView(scene_pos)
        voxel = self.voxel_at(point.y(), point.x())
        self.session.set_pointer(None if voxel is None else (self.fixed, voxel))

    # -- captions -----------------------------------------------------------------------------

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.place_labels()

    def place_labels(self) -> None:
        """Captions in the bottom-right corner, above the bottom letter: pinned to the view, not the image."""
        width, height = self.graphics.width(), self.graphics.height()
        above = self.graphics.letter_rects()[1].height() + MARGIN
        for caption in self.captions:
            caption.adjustSize()
            caption.move(width - caption.width() - MARGIN, height - caption.height() - MARGIN - above)
        for widget in self.corner:
            widget.move(width - widget.width() - MARGIN, MARGIN)
