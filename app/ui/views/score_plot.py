"""Per-slice scores of the session's runs against slice index (or position in mm), with a cursor
locked to the session's slice, the threshold line, and the reader's labels as markers.

- One curve per run and output; the newest run is highlighted.  Clicking a legend entry hides or
  shows that run (``Session.set_run_visible``).
- Scores stream in batch by batch; curves are redrawn at most every 100 ms.
- A run with an uncertainty method gets a shaded band (mean ± sd) under each curve, growing as
  its batches stream in: one cached path item per curve (`band_path`), redrawn only with its run.
- With a reference mask (File › Load reference mask…), the followed segmentation run's Dice per
  slice is a dashed curve on a right-hand axis (`dice_curve`).
- Clicking or left-dragging on the plot, or dragging the cursor, moves the session's slice;
  dragging the threshold line (a wide grip) sets the session's threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsView

from app.ui.views.area_axis import AreaAxis
from app.ui.views.dice_curve import DiceCurves
from app.ui.views.scrubber import LABEL_COLORS
from app.ui.views.throttle import Throttle

if TYPE_CHECKING:
    from app.runs import Run
    from app.session import Session

CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache
STRATEGY_COLORS = {"slice": "#4fc3f7", "temporal": "#ffb74d", "embedding": "#81c784"}
EXTRA_COLORS = ("#f06292", "#ba68c8", "#fff176", "#4db6ac", "#e57373", "#90a4ae")
DASHES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine, Qt.PenStyle.DashDotDotLine)
REFRESH_MS = 100  # streamed scores: the curves redrawn at most this often
DIM = 0.67  # older runs: their colour this far towards the black background
LABEL_Y = {"1": 1.04, "0": -0.04, "?": 0.5}  # where a label's marker sits: positives on top, negatives below
BAND_ALPHA = (80, 36)  # the mean ± sd band: the run's colour at this opacity (of 255), newest run and older ones


def band_path(xs: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> QPainterPath:
    """The area between ``mean - sd`` and ``mean + sd``: one closed polygon per stretch of
    consecutive slices where both are finite (gaps stay gaps, as the curves' do)."""
    path = QPainterPath()
    finite = np.isfinite(mean) & np.isfinite(sd)
    edges = np.diff(np.concatenate([[0], finite.astype(np.int8), [0]]))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        x, m, s = xs[start:stop], mean[start:stop].astype(np.float64), sd[start:stop].astype(np.float64)
        upper = [pg.QtCore.QPointF(a, b) for a, b in zip(x, m + s)]
        lower = [pg.QtCore.QPointF(a, b) for a, b in zip(x[::-1], (m - s)[::-1])]
        path.addPolygon(QPolygonF(upper + lower))
        path.closeSubpath()
    return path


class _ScrubViewBox(pg.ViewBox):
    """Left click / left drag on the plot scrubs; other buttons pan and zoom as usual."""

    sigScrub = Signal(float)

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigScrub.emit(self.mapSceneToView(ev.scenePos()).x())
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() == Qt.MouseButton.LeftButton and axis is None:
            ev.accept()
            self.sigScrub.emit(self.mapSceneToView(ev.scenePos()).x())
            return
        super().mouseDragEvent(ev, axis)


SPARE_CURVES = 4  # removed runs' curves kept for reuse


class ScorePlot(pg.PlotWidget):
    def __init__(self, session: Session, parent=None):
        self.vb = _ScrubViewBox()
        super().__init__(parent, background="k", viewBox=self.vb)
        self.session = session
        self.setMinimumHeight(120)
        # A cursor move exposes two thin strips; repainting the one rectangle around them is about
        # twice as fast (1.2 against 2-3 ms) as clipping every cached item to the two strips.
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self._x_mm = False  # what the x axis shows now (session.plot_x_mm once drawn)
        self._placing = False  # the cursor is being moved to the session's slice
        self.curves: dict[Run, list[pg.PlotDataItem]] = {}
        self.bands: dict[Run, list[QGraphicsPathItem]] = {}  # mean ± sd, a band per curve (runs with a spread)
        self.colors: dict[Run, str] = {}
        self._styles: dict[pg.PlotDataItem, tuple] = {}  # the style each curve was given
        # Curves of removed runs, hidden, for the next run's: making a curve and adding it to the
        # plot (about 1.5 ms) is most of what a finished re-run costs the GUI.
        self._spare: list[pg.PlotDataItem] = []
        item = self.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.2)
        # The axes (with their grid lines across the plot) and the curves are drawn once into a
        # pixmap and then copied: moving the cursor while scrubbing repaints a strip of the plot,
        # which otherwise re-plays every grid line and curve (about 15 ms, against 0.5 ms).
        for name in ("left", "bottom"):
            item.getAxis(name).setCacheMode(CACHED)
        item.setLabel("left", "score")
        item.setLabel("bottom", "slice index")
        item.setMenuEnabled(False)
        # the legend is a row above the plot (in the title's place), so it never hides the cursor or data
        self.legend = pg.LegendItem(colCount=4, labelTextSize="9pt", horSpacing=20, verSpacing=-6)
        item.layout.removeItem(item.titleLabel)
        item.titleLabel.hide()
        item.layout.addItem(self.legend, 0, 1)
        item.legend = self.legend  # curves added with a name join it
        self.legend.sigSampleClicked.connect(self._on_legend_clicked)
        self.vb.disableAutoRange()
        self.vb.sigScrub.connect(self._on_scrub)

        self.cursor = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#ffd54f", width=2), hoverPen=pg.mkPen("#fff59d", width=4))
        self.cursor.setZValue(50)
        self.cursor_label = pg.InfLineLabel(self.cursor, text="", position=0.96, anchors=[(0, 0), (0, 0)], color="#ffd54f", fill=(0, 0, 0, 190))
        self.cursor.sigPositionChanged.connect(self._on_cursor_dragged)
        self.addItem(self.cursor, ignoreBounds=True)

        # a wide hover pen widens the line's grip (its hit area follows the wider pen) to about 10 px
        self.threshold_line = pg.InfiniteLine(
            pos=session.threshold, angle=0, movable=True,
            pen=pg.mkPen("#ef5350", width=1.5, style=Qt.PenStyle.DashLine), hoverPen=pg.mkPen(255, 138, 128, 150, width=9),
            label="threshold {value:.2f}", labelOpts={"position": 0.985, "color": "#ef5350", "anchors": [(1, 0), (1, 0)], "fill": (0, 0, 0, 190)},
        )
        self.threshold_line.setZValue(40)
        self.threshold_line.sigPositionChanged.connect(lambda line: session.set_threshold(line.value()))
        self.addItem(self.threshold_line, ignoreBounds=True)

        self.label_markers = pg.ScatterPlotItem(size=8, pen=None, symbol="d")
        self.label_markers.setZValue(45)
        self.addItem(self.label_markers, ignoreBounds=True)

        self.hint = pg.TextItem("Run a strategy to plot a score for every slice", color="#8899aa", anchor=(0.5, 0.5))
        self.addItem(self.hint, ignoreBounds=True)

        self._fresh: set[Run] = set()  # runs whose scores streamed in since they were last drawn
        self._streamed = Throttle(self, REFRESH_MS, self._draw_fresh)
        # Runs added, finished or removed since the plot last caught up with the session.  The plot
        # catches up once per pass of the event loop, after the paints already asked for: a run's
        # end (finished, the old run removed, the next one added) is one redraw, and a click in a
        # view that meets it is answered first.
        self._changed: dict[Run, None] = {}
        self._synced = Throttle(self, 0, self.sync)
        events = session.events
        events.volume.connect(self._on_volume)
        events.slice.connect(self._on_slice)
        events.threshold.connect(self._on_threshold)
        events.runs.connect(self._on_run)
        events.labels.connect(self.draw_labels)
        self.dice = DiceCurves(self)  # the followed segmentation run's Dice against a reference mask
        self.areas = AreaAxis(self)  # segmentation runs' areas on their own axis while scores share the plot
        self._update_ranges()

    # -- axes and cursor ----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return self.session.volume.depth if self.session.volume is not None else 0

    def xs(self) -> np.ndarray:
        volume = self.session.volume
        if volume is None:
            return np.zeros(0)
        return np.asarray(volume.positions_mm, dtype=np.float64) if self.session.plot_x_mm else np.arange(volume.depth, dtype=np.float64)

    def nearest_slice(self, x: float) -> int:
        xs = self.xs()
        return int(np.argmin(np.abs(xs - x))) if len(xs) else 0

    def _on_slice(self, index: int) -> None:
        """The cursor to the slice; the x axis follows ``session.plot_x_mm`` (index or mm)."""
        x_mm = self.session.plot_x_mm
        if x_mm != self._x_mm:
            self._x_mm = x_mm
            self.getPlotItem().setLabel("bottom", "position (mm)" if x_mm else "slice index")
            self.draw_labels(self.session.labels)
            self.refresh()
        self._move_cursor(index)

    def _on_volume(self, volume) -> None:
        """Every curve goes (their x values were the old volume's); its runs come back as "added"."""
        for run in list(self.curves):
            self._remove(run)
        self.hint.setVisible(True)
        self._on_slice(self.session.index)
        self.draw_labels(self.session.labels)
        self._update_ranges()

    def _move_cursor(self, index: int) -> None:
        xs = self.xs()
        if not len(xs):
            return
        self.cursor_label.format = f"slice {index}"  # the label redraws once, as the cursor moves
        self._placing = True  # not a drag: the cursor follows the session (cheaper than a SignalBlock)
        try:
            if self.cursor.value() != float(xs[index]):
                self.cursor.setValue(float(xs[index]))
            else:
                self.cursor_label.valueChanged()
        finally:
            self._placing = False

    def _on_threshold(self, value: float) -> None:
        if self.threshold_line.value() != value:
            self.threshold_line.setValue(value)

    def _on_cursor_dragged(self, line=None) -> None:
        if self._placing:
            return
        self._request(self.nearest_slice(self.cursor.value()))

    def _on_scrub(self, x: float) -> None:
        self._request(self.nearest_slice(x))

    def _request(self, index: int) -> None:
        self.session.set_slice(index)
        self._move_cursor(self.session.index)  # snap the cursor even when the slice did not change

    # -- runs ---------------------------------------------------------------------------------

    def _on_areas(self, run: Run) -> bool:
        """``run``'s curves are drawn on the area axis: its scores are areas, and scores share the plot."""
        return run.unit == "mm²" and any(other.unit != "mm²" for other in self.curves)

    def _arrange(self) -> None:
        """Each run's curves and bands in the view its unit calls for, and the left axis named
        for what it shows: "area (mm²)" when every run's scores are areas, else "score"."""
        for run, curves in self.curves.items():
            on_areas = self._on_areas(run)
            for item in [*curves, *self.bands.get(run, [])]:
                self.areas.place(item, on_areas)
        units = {run.unit for run in self.curves}
        text = "area (mm²)" if units == {"mm²"} else "score"
        axis = self.getPlotItem().getAxis("left")
        if axis.labelText != text:
            axis.setLabel(text)

    def _on_run(self, run: Run, what: str) -> None:
        if what == "scores":
            self._fresh.add(run)
            self._streamed.request()
        elif what == "shown":
            for item in [*self.curves.get(run, []), *self.bands.get(run, [])]:
                item.setVisible(run.visible)
        else:  # added, finished, removed
            self._changed[run] = None
            self._synced.request()

    @property
    def behind(self) -> bool:
        """Runs have changed since the plot last caught up (it will on the event loop's next pass)."""
        return bool(self._changed)

    def sync(self) -> None:
        """Catch up with the session's runs: curves of removed runs dropped, new runs given theirs,
        changed runs redrawn; then one restyle and one range update for all of them."""
        changed, self._changed = self._changed, {}
        runs = self.session.runs
        for run in [r for r in self.curves if r not in runs]:
            self._remove(run)
        for run in runs:
            if run not in self.curves:
                self._add(run)
            elif run in changed:
                self._fresh.discard(run)
                self._draw(run)
        self.hint.setVisible(not self.curves)
        self._restyle()
        self._arrange()
        self._update_ranges()
        self.dice.draw()  # in the run's colour, given here (it may have drawn before, without one)

    def _add(self, run: Run) -> None:
        color = STRATEGY_COLORS.get(run.strategy) if run.key.model is None else None
        used = set(self.colors.values())
        if color is None or color in used:
            color = next((c for c in EXTRA_COLORS if c not in used), EXTRA_COLORS[len(self.colors) % len(EXTRA_COLORS)])
        self.colors[run] = color
        self.curves[run] = []
        self._draw(run)

    def _remove(self, run: Run) -> None:
        self._fresh.discard(run)
        for item in [*self.curves.get(run, []), *self.bands.get(run, [])]:
            self.areas.place(item, False)  # back in the plot's own view, which removes it or keeps it spare
        for band in self.bands.pop(run, []):
            self.removeItem(band)
        for curve in self.curves.pop(run, []):
            self._styles.pop(curve, None)
            self.legend.removeItem(curve)
            if len(self._spare) < SPARE_CURVES:
                curve.setVisible(False)
                self._spare.append(curve)
            else:
                self.removeItem(curve)
        self.colors.pop(run, None)

    def refresh(self) -> None:
        for run in self.curves:
            self._draw(run)
        self._restyle()
        self._arrange()
        self.dice.draw()
        self._update_ranges()

    def _draw_fresh(self) -> None:
        """Redraw only the runs with new scores: setting a curve's data drops its cached pixmap,
        and redrawing a finished run's curve with each batch of another cost a few ms per batch."""
        fresh, self._fresh = self._fresh, set()
        for run in fresh:
            self._draw(run)
        self._restyle()
        self._arrange()  # a segmentation run's unit is known once its map streams in
        self._update_ranges()

    def _label(self, run: Run, k: int) -> str:
        outputs = 0 if run.scores is None else run.scores.shape[1]
        if outputs <= 1:
            text = run.title
        else:
            name = run.names[k] if k < len(run.names) else str(k)
            name = f"output {name}" if name.isdigit() else name  # an unnamed score column
            text = f"{run.title} · {name}"
        if run.prediction is None:
            text += " (scoring…)"
        elif run.prediction.volume_score is not None and k == 0:
            values = ", ".join(f"{v:.3f}" for v in np.asarray(run.prediction.volume_score).ravel())
            text += f" — volume score {values}"
        return text

    def _draw(self, run: Run) -> None:
        curves = self.curves.get(run)
        if curves is None or run.scores is None:
            return
        xs = self.xs()
        for k in range(run.scores.shape[1]):
            if k == len(curves):
                curves.append(self._new_curve(run, k))
            curves[k].setData(xs, run.scores[:, k], connect="finite")
            curves[k].setVisible(run.visible)
            label, text = self.legend.getLabel(curves[k]), self._label(run, k)
            if label is not None and label.text != text:
                label.setText(text)
        self._draw_bands(run, xs)

    def _new_curve(self, run: Run, k: int) -> pg.PlotDataItem:
        """A curve for ``run``'s score ``k``, in the plot and the legend: a removed run's if one is spare."""
        name, brush = self._label(run, k), pg.mkBrush(self.colors[run])
        if self._spare:
            curve = self._spare.pop()
            curve.opts["name"] = name
            curve.setSymbolBrush(brush)
            self.legend.addItem(curve, name)
            return curve
        curve = pg.PlotDataItem(name=name, connect="finite", symbolSize=4, symbolPen=None, symbolBrush=brush)  # symbols on the newest run's curve when depth <= 64
        curve.curve.setCacheMode(CACHED)
        self.addItem(curve)
        return curve

    def _draw_bands(self, run: Run, xs: np.ndarray) -> None:
        """The run's mean ± sd bands (none without a spread)."""
        bands = self.bands.setdefault(run, [])
        count = 0 if run.spread is None or run.scores is None or run.spread.shape != run.scores.shape else run.spread.shape[1]
        while len(bands) > count:
            self.removeItem(bands.pop())
        if not count:
            return
        for k in range(count):
            if k == len(bands):
                band = QGraphicsPathItem()
                band.setPen(QPen(Qt.PenStyle.NoPen))
                band.setCacheMode(CACHED)
                band.setZValue(0)  # under every curve
                self.addItem(band, ignoreBounds=True)
                bands.append(band)
            bands[k].setPath(band_path(xs, run.scores[:, k], run.spread[:, k]))
            bands[k].setVisible(run.visible)

    def _restyle(self) -> None:
        """The newest run bold and on top, older runs thinner and dimmed; only changed curves are touched.

        Dimming mixes the colour towards the black background instead of lowering its alpha: an
        opaque solid pen can be drawn segment by segment, about ten times faster than one
        antialiased polyline (1.9 against 0.17 ms for 300 slices), and a restyled curve loses
        its cached pixmap, so curves whose style did not change keep theirs.
        """
        runs = list(self.curves)
        for i, run in enumerate(runs):
            latest = i == len(runs) - 1
            color = pg.mkColor(self.colors[run])
            if not latest:
                color = QColor.fromRgbF(color.redF() * DIM, color.greenF() * DIM, color.blueF() * DIM)
            symbol = "o" if latest and run.scores is not None and self.depth <= 64 else None
            band = QColor(self.colors[run])
            band.setAlpha(BAND_ALPHA[0] if latest else BAND_ALPHA[1])
            for item in self.bands.get(run, []):
                item.setBrush(QBrush(band))  # Qt ignores an unchanged brush: the cached pixmap stays
            for k, curve in enumerate(self.curves[run]):
                style = (color.name(), latest, k, symbol)
                if self._styles.get(curve) == style:
                    continue
                self._styles[curve] = style
                dash = DASHES[k % len(DASHES)]
                curve.setPen(pg.mkPen(color, width=2.6 if latest else 1.5, style=dash))
                curve.curve.setSegmentedLineMode("on" if dash == Qt.PenStyle.SolidLine else "off")
                curve.setZValue(10 if latest else 1)
                curve.setSymbol(symbol)  # its size, pen and brush are set with the curve: each setter re-sends the data

    def _on_legend_clicked(self, curve) -> None:
        """The legend's sample was clicked (pyqtgraph has toggled the curve): make it the session's."""
        for run, curves in self.curves.items():
            if curve in curves:
                self.session.set_run_visible(run, curve.isVisible())

    # -- labels -------------------------------------------------------------------------------

    def draw_labels(self, labels: dict[int, str]) -> None:
        """The reader's labels as diamonds: positives above the curves, negatives below."""
        xs = self.xs()
        spots = [
            {"pos": (float(xs[i]), LABEL_Y.get(value, 0.5)), "brush": pg.mkBrush(LABEL_COLORS.get(value, "#ffffff"))}
            for i, value in sorted(labels.items()) if 0 <= i < len(xs)
        ]
        self.label_markers.setData(spots)

    # -- ranges -------------------------------------------------------------------------------

    def _update_ranges(self) -> None:
        xs = self.xs()
        if len(xs):
            lo, hi = float(xs.min()), float(xs.max())
            pad = max((hi - lo) * 0.01, 0.5)
            self.vb.setXRange(lo - pad, hi + pad, padding=0)
        else:
            self.vb.setXRange(0, 1, padding=0)
        areas = [run for run in self.curves if self._on_areas(run)]
        ymin, ymax = _y_range([run for run in self.curves if run not in areas])
        self.vb.setYRange(ymin, ymax, padding=0.04)
        self.areas.show(bool(areas), _y_range(areas))
        self.hint.setPos(float(xs.mean()) if len(xs) else 0.5, (ymin + ymax) / 2)


def _y_range(runs) -> tuple[float, float]:
    """What ``runs``' scores (± their spread) span, and at least -0.06…1.06 (a score's range)."""
    ymin, ymax = -0.06, 1.06
    for run in runs:
        if run.scores is not None and np.isfinite(run.scores).any():
            spread = run.spread if run.spread is not None and run.spread.shape == run.scores.shape else 0
            ymin = min(ymin, float(np.nanmin(run.scores - spread)))
            ymax = max(ymax, float(np.nanmax(run.scores + spread)))
    return ymin, ymax
