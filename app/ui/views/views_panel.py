"""`ViewsPanel`: the depth view large and the two side views beside it (three-view layout), or the
depth view alone, behind a placeholder until a volume is shown; the display panel at the side."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QStackedWidget, QVBoxLayout, QWidget

from app.ui.panels.display_panel import DisplayPanel
from app.ui.views.image_item import ImageItem
from app.ui.views.mask_legend import MaskLegend
from app.ui.views.mask_overlay import MaskOverlay
from app.ui.views.plane_view import PlaneView
from app.ui.views.saliency_overlay import SaliencyOverlay
from app.ui.views.throttle import Throttle

if TYPE_CHECKING:
    from app.runs import Run
    from app.session import Session

PLACEHOLDER = "File › Open… or drop a volume here"
TINT_COLORMAP = "inferno"
STREAMED_MS = 200  # streamed scores: the tint strips redrawn at most this often


class ViewsPanel(QWidget):
    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.depth_view = PlaneView(session, 0)
        self.side_views = (PlaneView(session, 1), PlaneView(session, 2))
        self.views = (self.depth_view, *self.side_views)
        self.saliency = SaliencyOverlay(session, self.depth_view)
        self.masks = tuple(MaskOverlay(session, view) for view in self.views)  # a segmentation run's map, in every view
        self.mask_legend = MaskLegend(session, self.depth_view)
        self.display = DisplayPanel(session)
        self.display.sigLut.connect(self._on_lut)
        lut = self.display.lut()
        for view in self.views:
            view.set_lut(lut)
        self.tints = [_ScoreTint(session, view) for view in self.side_views]

        side = QSplitter(Qt.Orientation.Vertical)
        for view in self.side_views:
            side.addWidget(view)
        self.side = side
        planes = QSplitter(Qt.Orientation.Horizontal)
        planes.addWidget(self.depth_view)
        planes.addWidget(side)
        planes.setStretchFactor(0, 3)
        planes.setStretchFactor(1, 2)
        planes.setChildrenCollapsible(False)
        viewer = QWidget()
        row = QHBoxLayout(viewer)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        row.addWidget(planes, 1)
        row.addWidget(self.display)

        self.placeholder = QLabel(PLACEHOLDER)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("QLabel { color: #9aa; font-size: 18pt; background: #111; border: 2px dashed #444; }")
        self.placeholder.setMinimumSize(160, 160)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(viewer)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        session.events.volume.connect(self._on_volume)
        session.events.layout.connect(self._on_layout)
        self._on_layout(session.layout)

    def show_placeholder(self, text: str = PLACEHOLDER) -> None:
        """The placeholder with ``text`` when no volume is shown yet ("Loading NAME…")."""
        if self.session.volume is None:
            self.placeholder.setText(text)
            self.stack.setCurrentIndex(0)

    def _on_volume(self, volume) -> None:
        if volume is None:
            self.show_placeholder()
        else:
            self.stack.setCurrentIndex(1)

    def _on_layout(self, layout: str) -> None:
        self.side.setVisible(layout == "ortho")
        for view in self.views:
            view._on_layout(layout)

    def _on_lut(self, lut: np.ndarray) -> None:
        for view in self.views:
            view.set_lut(lut)

    def reset_zoom(self) -> None:
        for view in self.views:
            view.reset_zoom()


class _ScoreTint:
    """A side view's strip along its depth axis: the followed run's score per slice as colour,
    and the scored range marked by two lines (shown when the session's ``score_tint`` is on)."""

    WIDTH = 0.04  # of the plane's extent across the depth axis

    def __init__(self, session: Session, view: PlaneView):
        self.session, self.view = session, view
        self.strip = ImageItem(axisOrder="row-major")
        self.strip.setZValue(15)
        self.strip.setLookupTable(pg.colormap.get(TINT_COLORMAP).getLookupTable(nPts=256, alpha=False))
        view.view.addItem(self.strip, ignoreBounds=True)
        pen = pg.mkPen("#ffb74d", width=1, style=Qt.PenStyle.DotLine)
        self.ends = [pg.InfiniteLine(pen=pen, movable=False) for _ in range(2)]
        for line in self.ends:
            view.view.addItem(line, ignoreBounds=True)
        self._streamed = Throttle(view, STREAMED_MS, self.refresh)
        session.events.runs.connect(self._on_run)
        for event in (session.events.volume, session.events.follow, session.events.radiological, session.events.score_tint):
            event.connect(lambda *_args: self._streamed.now())
        self.refresh()

    def _on_run(self, _run: Run, _what: str) -> None:
        self._streamed.request()  # a run's start, scores and end: one redraw (a finish and the next start come together)

    def refresh(self) -> None:
        session, plane = self.session, self.view.plane
        run = session.followed_run()
        volume = session.volume
        show = volume is not None and plane is not None and run is not None and run.scores is not None
        for line in self.ends:
            line.setVisible(bool(show))
        self.strip.setVisible(bool(show and session.score_tint))
        if not show:
            return
        values = run.peak()
        scored = np.flatnonzero(np.isfinite(values))
        rows, cols = plane.shape(volume)
        depth_vertical = plane.vertical == 0
        first, last = (plane.to_screen(volume, (int(i), 0, 0))[0 if depth_vertical else 1] for i in (scored[0], scored[-1])) if len(scored) else (0, 0)
        for line, at in zip(self.ends, sorted((first, last))):
            line.setAngle(0 if depth_vertical else 90)
            line.setValue(at + (0 if at == min(first, last) else 1))
        strip = np.nan_to_num(values, nan=0.0).astype(np.float32)
        if plane.flip_vertical if depth_vertical else plane.flip_horizontal:
            strip = strip[::-1]
        across = cols if depth_vertical else rows
        thickness = max(across * self.WIDTH, 1.0)
        image = strip.reshape(-1, 1) if depth_vertical else strip.reshape(1, -1)
        self.strip.setImage(np.ascontiguousarray(image), levels=(0.0, 1.0), autoLevels=False)
        if depth_vertical:  # along the left edge, inside the image
            self.strip.setRect(0, 0, thickness, rows)
        else:  # along the bottom edge
            self.strip.setRect(0, rows - thickness, cols, thickness)
