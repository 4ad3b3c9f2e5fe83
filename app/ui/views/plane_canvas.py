"""`PlaneCanvas`: a plane view's graphics view, with its direction letters and name painted
over the scene, pinned to the view's edges (they stay when the image is zoomed or panned).

They are painted with the scene rather than shown as child labels: a label over the view is a
widget of its own, and each new image repainted all five of each view (fifteen paints per
crosshair move over the three views, each through the style sheet machinery).
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRect, QRectF
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QStaticText, QTransform

LETTER_COLOR = QColor("#ffd54f")
TITLE_COLOR = QColor("#99aabb")
MARGIN = 4  # pixels between a letter and the view's edge


class PlaneCanvas(pg.GraphicsView):
    def __init__(self) -> None:
        super().__init__(background="k")
        self.letters: tuple[str, str, str, str] = ("", "", "", "")  # top, bottom, left, right
        self.title = ""
        self.letter_font = QFont(self.font())
        self.letter_font.setBold(True)
        self._laid_out: list[QStaticText] = []  # letters then title, laid out once (drawText would each paint)
        self._spots: list[tuple[int, int]] = []  # where each is drawn, for the viewport's size now

    def set_texts(self, letters: tuple[str, str, str, str], title: str) -> None:
        if (tuple(letters), title) != (self.letters, self.title):
            self.letters, self.title = tuple(letters), title  # type: ignore[assignment]
            self._laid_out = [QStaticText(text) for text in (*self.letters, self.title)]
            for text, font in zip(self._laid_out, [self.letter_font] * 4 + [self.font()]):
                text.prepare(QTransform(), font)
            self._spots = []
            self.viewport().update()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._spots = []

    def letter_rects(self) -> list[QRect]:
        """Where the top, bottom, left and right letters are drawn, in viewport pixels."""
        metrics = QFontMetrics(self.letter_font)
        width, height = self.viewport().width(), self.viewport().height()
        rects = []
        for text, (x_at, y_at) in zip(self.letters, ((0.5, 0.0), (0.5, 1.0), (0.0, 0.5), (1.0, 0.5))):
            w, h = metrics.horizontalAdvance(text) + 2, metrics.height()
            x = round(MARGIN + x_at * (width - w - 2 * MARGIN))
            y = round(MARGIN + y_at * (height - h - 2 * MARGIN))
            rects.append(QRect(x, y, w, h))
        return rects

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt's name
        if not self._laid_out:
            return
        if not self._spots:
            self._spots = [(round(box.center().x() - text.size().width() / 2 + 0.5), box.top())
                           for text, box in zip(self._laid_out, self.letter_rects())] + [(MARGIN, MARGIN)]
        painter.save()
        painter.resetTransform()  # viewport pixels, whatever the zoom
        painter.setFont(self.letter_font)  # the fonts the texts were laid out in: no new layout
        painter.setPen(LETTER_COLOR)
        for text, (x, y) in zip(self._laid_out[:4], self._spots):
            painter.drawStaticText(x, y, text)
        painter.setFont(self.font())
        painter.setPen(TITLE_COLOR)
        painter.drawStaticText(*self._spots[4], self._laid_out[4])
        painter.restore()
