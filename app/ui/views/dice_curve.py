"""The per-slice Dice of the followed segmentation run against the session's reference mask, on
the score plot: one dashed curve per foreground class in the run's colour, on a right-hand axis
0…1 labelled "Dice" (a second `ViewBox` linked on x, as pyqtgraph's MultiplePlotAxes example).

Slices where neither mask has voxels have no Dice (NaN) and are drawn as gaps.  The curves and the
right axis are cached pixmaps like the plot's own; they are rebuilt only when the run, its Dice
(`Session.dice`, computed once per finished map), its colour or the x axis change.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem

CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache  # as the score plot's curves and axes
DICE_DASHES = (Qt.PenStyle.DashLine, Qt.PenStyle.DashDotLine, Qt.PenStyle.DotLine)


def dice_values(per_slice: list[float | None]) -> np.ndarray:
    """`dice_scores`' per-slice list as floats, NaN where both masks are empty."""
    return np.array([np.nan if v is None else v for v in per_slice], dtype=np.float64)


class DiceCurves:
    """Draws ``plot.session``'s Dice of `Session.finished_dense_run` on ``plot``; listens to the session."""

    def __init__(self, plot: pg.PlotWidget):
        """``plot``: the `ScorePlot` (its ``session``, ``colors``, ``legend`` and ``xs()``)."""
        self.plot, self.session = plot, plot.session
        self.view: pg.ViewBox | None = None  # the right-hand axis's view, made with the first curve
        self.curves: list[pg.PlotDataItem] = []
        self._drawn: tuple | None = None  # what the curves show now
        events = self.session.events
        for event in (events.reference, events.runs, events.follow, events.volume):
            event.connect(self.draw)

    def draw(self, *args) -> None:
        if args[1:2] == ("scores",):  # a streaming batch: only finished maps have a Dice
            return
        run = self.session.finished_dense_run()
        scores = self.session.dice(run)
        shown = None if scores is None else (run, scores, self.session.plot_x_mm, self.plot.colors.get(run), run.visible)
        if shown == self._drawn:
            return
        self._drawn = shown
        self._clear()
        if shown is None:
            self.plot.getPlotItem().hideAxis("right")
            return
        self._ensure_view()
        xs, color = self.plot.xs(), shown[3] or "#ffffff"
        for k, (name, entry) in enumerate(scores.items()):
            pen = pg.mkPen(color, width=1.8, style=DICE_DASHES[k % len(DICE_DASHES)])
            curve = pg.PlotDataItem(xs, dice_values(entry["per_slice"]), connect="finite", pen=pen)
            curve.curve.setCacheMode(CACHED)
            curve.setVisible(run.visible)
            self.view.addItem(curve)
            overall = "n/a" if entry["dice"] is None else f"{entry['dice']:.3f}"
            self.plot.legend.addItem(curve, f"Dice · {name} ({overall})")
            self.curves.append(curve)

    def _clear(self) -> None:
        for curve in self.curves:
            self.plot.legend.removeItem(curve)
            self.view.removeItem(curve)
        self.curves = []

    def _ensure_view(self) -> None:
        item = self.plot.getPlotItem()
        if self.view is None:
            self.view = pg.ViewBox(enableMouse=False, enableMenu=False)
            self.view.setZValue(-1)  # under the plot's own view: clicks and drags still scrub
            item.scene().addItem(self.view)
            axis = item.getAxis("right")
            axis.linkToView(self.view)
            axis.setLabel("Dice")
            axis.setCacheMode(CACHED)
            self.view.setXLink(item.vb)
            self.view.disableAutoRange()
            self.view.setYRange(0.0, 1.0, padding=0.04)
            item.vb.sigResized.connect(self._fit)
        item.showAxis("right")
        self._fit()

    def _fit(self) -> None:
        """The right-hand view over the plot's own view (pyqtgraph's MultiplePlotAxes ``updateViews``)."""
        vb = self.plot.getPlotItem().vb
        self.view.setGeometry(vb.sceneBoundingRect())
        self.view.linkedViewChanged(vb, self.view.XAxis)
