"""Per-slice scores against slice index (or position in mm), with a cursor locked to the
scrubber and a draggable threshold line.

- Each run (one strategy + model) is one curve per model output; several runs overlay, the
  latest highlighted; running the same strategy and model again replaces its curves.
- Scores stream in batch by batch (``add_batch``); the curves are redrawn at most every 40 ms.
- Clicking or left-dragging anywhere on the plot, or dragging the cursor line, asks for the
  nearest slice (``sigSliceRequested``); ``set_cursor`` moves the line without emitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGraphicsItem

CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache
STRATEGY_COLORS = {"slice": "#4fc3f7", "temporal": "#ffb74d", "embedding": "#81c784"}
EXTRA_COLORS = ("#f06292", "#ba68c8", "#fff176", "#4db6ac", "#e57373", "#90a4ae")
DASHES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine, Qt.PenStyle.DashDotDotLine)


@dataclass(eq=False)
class Run:
    """One run's curves; ``scores`` is ``(depth, K)`` with NaN where not scored yet."""

    key: tuple
    title: str
    color: str
    scores: np.ndarray | None = None
    curves: list = field(default_factory=list)
    prediction: object | None = None  # app.inference.Prediction once finished

    @property
    def finished(self) -> bool:
        return self.prediction is not None


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


class ScorePlot(pg.PlotWidget):
    sigSliceRequested = Signal(int)

    def __init__(self, parent=None):
        self.vb = _ScrubViewBox()
        super().__init__(parent, background="k", viewBox=self.vb)
        self.setMinimumHeight(120)
        self.depth = 0
        self.positions = np.zeros(0)
        self.x_mm = False
        self.index = 0
        self.runs: list[Run] = []
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
        self.vb.disableAutoRange()
        self.vb.sigScrub.connect(self._on_scrub)

        self.cursor = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#ffd54f", width=2), hoverPen=pg.mkPen("#fff59d", width=4))
        self.cursor.setZValue(50)
        self.cursor_label = pg.InfLineLabel(self.cursor, text="", position=0.96, anchors=[(0, 0), (0, 0)], color="#ffd54f", fill=(0, 0, 0, 190))
        self.cursor.sigPositionChanged.connect(self._on_cursor_dragged)
        self.addItem(self.cursor, ignoreBounds=True)

        self.threshold_line = pg.InfiniteLine(
            pos=0.5, angle=0, movable=True,
            pen=pg.mkPen("#ef5350", width=1.5, style=Qt.PenStyle.DashLine), hoverPen=pg.mkPen("#ff8a80", width=3),
            label="threshold {value:.2f}", labelOpts={"position": 0.985, "color": "#ef5350", "anchors": [(1, 0), (1, 0)], "fill": (0, 0, 0, 190)},
        )
        self.threshold_line.setZValue(40)
        self.addItem(self.threshold_line, ignoreBounds=True)

        self.hint = pg.TextItem("Run a strategy to plot a score for every slice", color="#8899aa", anchor=(0.5, 0.5))
        self.addItem(self.hint, ignoreBounds=True)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(40)
        self._refresh_timer.timeout.connect(self.refresh)
        self._update_ranges()

    # -- volume, axes -------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        return float(self.threshold_line.value())

    def set_threshold(self, value: float) -> None:
        self.threshold_line.setValue(value)

    def set_volume(self, depth: int, positions_mm: np.ndarray) -> None:
        self.clear_runs()
        self.depth, self.positions = depth, np.asarray(positions_mm, dtype=np.float64)
        self.index = -1
        self.set_cursor(0)
        self._update_ranges()

    def set_x_mm(self, on: bool) -> None:
        self.x_mm = bool(on)
        self.getPlotItem().setLabel("bottom", "position (mm)" if self.x_mm else "slice index")
        index, self.index = self.index, -1
        self.set_cursor(max(index, 0))
        for run in self.runs:
            self._draw(run)
        self._update_ranges()

    def xs(self) -> np.ndarray:
        return self.positions if self.x_mm and len(self.positions) == self.depth else np.arange(self.depth, dtype=np.float64)

    def nearest_slice(self, x: float) -> int:
        if self.depth == 0:
            return 0
        return int(np.argmin(np.abs(self.xs() - x)))

    # -- cursor -------------------------------------------------------------------------------

    def set_cursor(self, index: int) -> None:
        """Move the cursor to a slice without emitting ``sigSliceRequested``."""
        if self.depth == 0:
            return
        index = max(0, min(index, self.depth - 1))
        self.index = index
        with pg.SignalBlock(self.cursor.sigPositionChanged, self._on_cursor_dragged):
            self.cursor.setValue(float(self.xs()[index]))
        self.cursor_label.setFormat(f"slice {index}")

    def cursor_value(self) -> float:
        return float(self.cursor.value())

    def _on_cursor_dragged(self, line=None) -> None:
        self._request(self.nearest_slice(self.cursor.value()))

    def _on_scrub(self, x: float) -> None:
        self._request(self.nearest_slice(x))

    def _request(self, index: int) -> None:
        self.set_cursor(index)  # snap
        self.sigSliceRequested.emit(index)

    # -- runs ---------------------------------------------------------------------------------

    def begin_run(self, key: tuple, title: str, strategy: str) -> Run:
        """A new (empty) run, replacing an earlier one with the same key, highlighted as latest."""
        for old in [r for r in self.runs if r.key == key]:
            self.drop_run(old)
        color = STRATEGY_COLORS.get(strategy) if key[1] is None else None
        if color is None:
            used = {r.color for r in self.runs}
            color = next((c for c in EXTRA_COLORS if c not in used), EXTRA_COLORS[len(self.runs) % len(EXTRA_COLORS)])
        run = Run(key, title, color)
        self.runs.append(run)
        self._restyle()
        self.hint.setVisible(False)
        return run

    def add_batch(self, run: Run, indices: np.ndarray, scores: np.ndarray) -> None:
        if run not in self.runs or len(indices) == 0:
            return  # the embedding's last call is the volume score: shown when the run finishes
        scores = np.asarray(scores, dtype=np.float32).reshape(len(indices), -1)
        if run.scores is None:
            run.scores = np.full((self.depth, scores.shape[1]), np.nan, dtype=np.float32)
        run.scores[indices] = scores
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def finish_run(self, run: Run, prediction) -> None:
        if run not in self.runs:
            return
        run.scores = np.asarray(prediction.scores, dtype=np.float32)
        run.prediction = prediction
        self._draw(run)
        self._update_ranges()

    def drop_run(self, run: Run) -> None:
        if run not in self.runs:
            return
        for curve in run.curves:
            self.legend.removeItem(curve)
            self.removeItem(curve)
        self.runs.remove(run)
        self._restyle()
        self.hint.setVisible(not self.runs)
        self._update_ranges()

    def clear_runs(self) -> None:
        for run in list(self.runs):
            self.drop_run(run)

    def latest(self) -> Run | None:
        return self.runs[-1] if self.runs else None

    def refresh(self) -> None:
        for run in self.runs:
            self._draw(run)
        self._update_ranges()

    def find_above(self, start: int, step: int) -> int | None:
        """The next slice after ``start`` (``step`` +1) or before it (-1) whose score in the
        latest run is above the threshold (any output, for multi-output models)."""
        run = next((r for r in reversed(self.runs) if r.scores is not None), None)
        if run is None:
            return None
        with np.errstate(invalid="ignore"):
            values = np.nanmax(np.where(np.isnan(run.scores), -np.inf, run.scores), axis=1)
        hits = np.flatnonzero(values > self.threshold)
        hits = hits[hits > start] if step > 0 else hits[hits < start][::-1]
        return int(hits[0]) if len(hits) else None

    # -- drawing ------------------------------------------------------------------------------

    def _label(self, run: Run, k: int) -> str:
        outputs = 0 if run.scores is None else run.scores.shape[1]
        text = run.title if outputs <= 1 else f"{run.title} · output {k}"
        if run.prediction is None:
            text += " (scoring…)"
        elif getattr(run.prediction, "volume_score", None) is not None and k == 0:
            values = ", ".join(f"{v:.3f}" for v in np.asarray(run.prediction.volume_score).ravel())
            text += f" — volume score {values}"
        return text

    def _draw(self, run: Run) -> None:
        if run.scores is None:
            return
        xs = self.xs()
        for k in range(run.scores.shape[1]):
            if k == len(run.curves):
                curve = pg.PlotDataItem(name=self._label(run, k), connect="finite")
                curve.curve.setCacheMode(CACHED)
                self.addItem(curve)
                run.curves.append(curve)
            run.curves[k].setData(xs, run.scores[:, k], connect="finite")
            label = self.legend.getLabel(run.curves[k])
            if label is not None:
                label.setText(self._label(run, k))
        self._restyle()

    def _restyle(self) -> None:
        for i, run in enumerate(self.runs):
            latest = i == len(self.runs) - 1
            color = pg.mkColor(run.color)
            color.setAlpha(255 if latest else 170)
            for k, curve in enumerate(run.curves):
                curve.setPen(pg.mkPen(color, width=2.6 if latest else 1.5, style=DASHES[k % len(DASHES)]))
                curve.setZValue(10 if latest else 1)
                symbol = "o" if latest and run.scores is not None and self.depth <= 64 else None
                curve.setSymbol(symbol)
                if symbol:
                    curve.setSymbolSize(4)
                    curve.setSymbolPen(None)
                    curve.setSymbolBrush(color)

    def _update_ranges(self) -> None:
        xs = self.xs()
        if len(xs):
            lo, hi = float(xs.min()), float(xs.max())
            pad = max((hi - lo) * 0.01, 0.5 if not self.x_mm else 0.5)
            self.vb.setXRange(lo - pad, hi + pad, padding=0)
        else:
            self.vb.setXRange(0, 1, padding=0)
        ymin, ymax = 0.0, 1.0
        for run in self.runs:
            if run.scores is not None and np.isfinite(run.scores).any():
                ymin = min(ymin, float(np.nanmin(run.scores)))
                ymax = max(ymax, float(np.nanmax(run.scores)))
        self.vb.setYRange(ymin, ymax, padding=0.06)
        self.hint.setPos(float(xs.mean()) if len(xs) else 0.5, (ymin + ymax) / 2)
