"""`MaskLegend`: what the mask overlay shows, pinned to a view's top-right corner.

The shown run's foreground classes, each with its colour and its volume in mL (voxels in the
mask × the voxel's volume from the volume's spacing / 1000); in heat mode, the colour bar of
the probabilities from 0 to 1.  Hidden when the overlay is off or no run has a map.

A finished map is counted once, on a helper thread when it is large (a 3-class softmax map of
512 x 512 x 300 takes about half a second): the legend says "counting…" meanwhile, and the
views stay live.  A streaming map's new slices are counted here, a few at a time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRect, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QWidget

from app.ui.views.mask_pixels import class_colors
from app.ui.views.saliency_overlay import heat_lut
from app.ui.views.throttle import Throttle

if TYPE_CHECKING:
    from app.session import Session
    from app.ui.views.plane_view import PlaneView

STREAMED_MS = 250  # a streaming map's volumes redrawn at most this often
COUNT_HERE = 4_000_000  # at most this many map values counted on the GUI thread; more: on the helper
_COUNTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slicewise-mask-count")  # numpy releases the GIL
BAR_WIDTH = 120
PAD = 5
SWATCH = 10


class MaskLegend(QWidget):
    sigCounted = Signal()  # the helper thread counted a map's voxels

    def __init__(self, session: Session, view: PlaneView):
        super().__init__(view.graphics)
        self.session, self.view = session, view
        self.title = ""
        self.entries: list[tuple[str | None, str]] = []  # (colour or None, "name  12.3 mL")
        self.heat = False
        self.top = "1"  # the colour bar's right end
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()
        view.corner.append(self)
        bar = heat_lut(256)  # the heat mode's colours at full opacity, left (0) to right (1)
        bar[:, 3] = 255
        self._bar_pixels = np.ascontiguousarray(np.repeat(bar[None], 2, axis=0))
        self._bar = QImage(self._bar_pixels.data, 256, 2, 4 * 256, QImage.Format.Format_RGBA8888)
        self._streamed = Throttle(self, STREAMED_MS, self.refresh)
        events = session.events
        for event in (events.volume, events.mask, events.follow, events.runs):
            event.connect(self.refresh)
        events.dense.connect(self._on_dense)
        self.run = None  # the run whose classes are listed
        self._counting = None  # the run whose voxels the helper thread is counting
        self.sigCounted.connect(self._on_counted)

    def lines(self) -> list[str]:
        """The legend's text, a line each (what tests and screen readers read)."""
        return [self.title, *(text for _, text in self.entries)] if self.isVisibleTo(self.parentWidget()) else []

    def _on_dense(self, *_args) -> None:
        """A streamed block: a new map is listed at once, a growing one at most every `STREAMED_MS`."""
        if (self.session.mask_run() if self.session.mask.on else None) is not self.run:
            self.refresh()
        else:
            self._streamed.request()

    def _on_counted(self) -> None:
        self._counting = None
        self.refresh()

    def refresh(self, *_args) -> None:
        session = self.session
        run = session.mask_run() if session.mask.on else None
        volume = session.volume
        self.run = run if volume is not None else None
        if run is None or volume is None:
            self.hide()
            return
        dense, mode = run.dense, session.mask.mode
        self.heat = mode in ("heat", "uncertainty")
        self.top = "0.5" if mode == "uncertainty" else "1"  # the colour bar's right end: an sd, or a probability
        scoring = "" if run.finished else " (scoring…)"
        if mode == "uncertainty":
            has_spread = getattr(run.prediction, "dense_sd", None) is not None
            self.title = "sd of the passes" if has_spread else "no spread: run with Model › Uncertainty"
        else:
            self.title = f"probability{scoring}" if self.heat else f"mask ≥ {dense.threshold:.2f}{scoring}" if dense.kind == "sigmoid" else f"mask{scoring}"
        colors = class_colors(dense)
        voxel_mm3 = float(np.prod(volume.spacing))
        if self._counting is None and len(run.uncounted()) * dense.probabilities[0].size > COUNT_HERE:
            self._counting = run
            _COUNTER.submit(run.voxels).add_done_callback(lambda _: self.sigCounted.emit())
        if self._counting is not None:
            volumes = [f"{dense.classes[k]}  counting…" for k in dense.foreground]
        else:
            volumes = [f"{name}  {ml:.2f} mL" for name, ml in run.volumes_ml(voxel_mm3)]
        self.entries = [(None if self.heat else colors[k], text) for k, text in zip(dense.foreground, volumes)]
        self._resize()
        self.show()
        self.raise_()
        self.update()

    def _resize(self) -> None:
        metrics = QFontMetrics(self.font())
        texts = [self.title, *(text for _, text in self.entries)]
        width = max(metrics.horizontalAdvance(text) for text in texts) + SWATCH + 3 * PAD
        if self.heat:
            width = max(width, BAR_WIDTH + 2 * PAD)
        line = metrics.height()
        height = PAD * 2 + line * len(texts) + (line + 8 if self.heat else 0)
        self.resize(width, height)
        self.view.place_labels()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 170))
        metrics = QFontMetrics(self.font())
        line = metrics.height()
        y = PAD
        painter.setPen(QColor("#e0e0e0"))
        painter.drawText(QRect(PAD, y, self.width() - 2 * PAD, line), Qt.AlignmentFlag.AlignLeft, self.title)
        y += line
        if self.heat:
            painter.drawImage(QRect(PAD, y + 2, self.width() - 2 * PAD, 6), self._bar)
            y += 8
            painter.drawText(QRect(PAD, y, self.width() - 2 * PAD, line), Qt.AlignmentFlag.AlignLeft, "0")
            painter.drawText(QRect(PAD, y, self.width() - 2 * PAD, line), Qt.AlignmentFlag.AlignRight, self.top)
            y += line
        for color, text in self.entries:
            x = PAD
            if color is not None:
                painter.fillRect(QRect(x, y + (line - SWATCH) // 2, SWATCH, SWATCH), QColor(color))
                x += SWATCH + PAD
            painter.drawText(QRect(x, y, self.width() - x - PAD, line), Qt.AlignmentFlag.AlignLeft, text)
            y += line
        painter.end()
