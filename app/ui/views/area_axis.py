"""Areas beside scores: segmentation runs' per-slice areas (mm²) on an axis of their own at the
plot's right edge, while the plot also holds unitless scores, so that neither squashes the other
(a classifier's 0…1 beside areas of hundreds of mm²).

A second `ViewBox` linked on x, as pyqtgraph's MultiplePlotAxes example and `dice_curve` do; the
axis joins the plot's layout only while it is needed.  With one kind of run, every curve stays in
the plot's own view, on its left axis.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem

CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache  # as the score plot's axes
COLUMN = 3  # in the plot item's layout: left axis 0, view 1, the Dice axis 2


class AreaAxis:
    def __init__(self, plot: pg.PlotWidget):
        self.plot = plot
        self.view: pg.ViewBox | None = None  # made when first needed
        self.axis: pg.AxisItem | None = None
        self._moved: set[QGraphicsItem] = set()  # items now in ``view``
        self.shown = False  # the axis is in the plot's layout

    def holds(self, item: QGraphicsItem) -> bool:
        return item in self._moved

    def place(self, item: QGraphicsItem, on_area: bool) -> None:
        """``item`` (a curve or a band) into the area view, or back into the plot's own view."""
        if on_area == (item in self._moved):
            return
        home = self.plot.getPlotItem().vb
        if on_area:
            self._ensure()
            home.removeItem(item)
            self.view.addItem(item)
            self._moved.add(item)
        else:
            self.view.removeItem(item)
            home.addItem(item)
            self._moved.discard(item)

    def show(self, on: bool, y_range: tuple[float, float] | None = None) -> None:
        """The axis in the layout (with the view over ``y_range``), or out of it."""
        if on:
            self._ensure()
            if not self.shown:
                self.plot.getPlotItem().layout.addItem(self.axis, 2, COLUMN)
                self.axis.show()
                self.shown = True
            if y_range is not None:
                self.view.setYRange(*y_range, padding=0.04)
        elif self.shown:
            self.plot.getPlotItem().layout.removeItem(self.axis)
            self.axis.hide()
            self.shown = False

    def _ensure(self) -> None:
        if self.view is not None:
            return
        item = self.plot.getPlotItem()
        self.view = pg.ViewBox(enableMouse=False, enableMenu=False)
        self.view.setZValue(-1)  # under the plot's own view: clicks and drags still scrub
        item.scene().addItem(self.view)
        self.view.setXLink(item.vb)
        self.view.disableAutoRange()
        self.axis = pg.AxisItem("right")
        self.axis.linkToView(self.view)
        self.axis.setLabel("area (mm²)")
        self.axis.setCacheMode(CACHED)
        self.axis.hide()
        item.vb.sigResized.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        """The area view over the plot's own view (pyqtgraph's MultiplePlotAxes ``updateViews``)."""
        vb = self.plot.getPlotItem().vb
        self.view.setGeometry(vb.sceneBoundingRect())
        self.view.linkedViewChanged(vb, self.view.XAxis)
