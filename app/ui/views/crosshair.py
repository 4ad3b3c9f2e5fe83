"""`Crosshair`: the two lines through the crosshair point of a plane view, as one item.

One item in image coordinates spanning the image, so a move is one update of one item.  Two
pyqtgraph InfiniteLines cost two position changes, two signals and a bounding rect recomputed
from the view on every paint, and each crosshair move moves the lines of all three views.
"""

from __future__ import annotations

from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsItem


class Crosshair(QGraphicsItem):
    """A dashed horizontal and vertical line through (row, col) of a rows x cols image; the
    lines run through the middle of the pixel, across the whole image."""

    def __init__(self, color: str, parent: QGraphicsItem | None = None):
        super().__init__(parent)
        self.pen = QPen(QColor(color), 1, Qt.PenStyle.DashLine)
        self.pen.setCosmetic(True)  # one screen pixel wide at any zoom
        self._rect = QRectF(0, 0, 1, 1)
        self.row = self.col = 0.0

    def set_extent(self, rows: int, cols: int) -> None:
        rect = QRectF(0, 0, cols, rows)
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect

    def set_point(self, row: float, col: float) -> None:
        if (row, col) != (self.row, self.col):
            self.row, self.col = row, col
            self.update()

    def point(self) -> tuple[float, float]:
        return self.row, self.col

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        return self._rect

    def paint(self, painter: QPainter, option, widget=None) -> None:
        rect = self._rect
        y, x = self.row + 0.5, self.col + 0.5
        painter.setPen(self.pen)
        painter.drawLines([QLineF(rect.left(), y, rect.right(), y), QLineF(x, rect.top(), x, rect.bottom())])
