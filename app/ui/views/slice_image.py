"""`SliceImage`: one plane of the volume drawn through the window and a colour table.

The plane is a strided view of the volume's tensor (no copy of its own).  When it is drawn, it
is read once: windowed to table indices, then looked up into an RGB image that Qt draws
directly, all in buffers kept from one image to the next (no allocation per move).
pyqtgraph's ImageItem would want a contiguous copy of the plane first, then window it through a
few more passes, and hand Qt an indexed image that Qt converts on every paint (about 0.9 ms for a 512 x 512 slice, against 0.13 ms for RGB).

A plane across the volume's rows (the sagittal view of an axial scan) has each pixel in its own
cache line: reading its 300 x 512 pixels takes over 1 ms, the largest single cost of a crosshair
move.  That read is handed to a helper thread as soon as the plane is set, so it runs while the
GUI thread handles the rest of the move, and the paint waits for it only if it is not done.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter, QTransform
from PySide6.QtWidgets import QGraphicsItem

GREY = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
_GATHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slicewise-gather")  # numpy copies release the GIL


def _scattered(image: np.ndarray) -> bool:
    """True when neighbouring pixels of a row are not neighbours in memory."""
    return abs(image.strides[1]) > 4 * image.itemsize


def _gather(image: np.ndarray, into: np.ndarray) -> np.ndarray:
    np.copyto(into, image)
    return into


class SliceImage(QGraphicsItem):
    """``image`` (rows, cols) drawn at (0, 0)-(cols, rows), one unit per pixel; ``levels`` map to
    the first and last entry of the lookup table, and values outside are clamped (non-finite
    values are drawn as 0)."""

    def __init__(self, parent: QGraphicsItem | None = None):
        super().__init__(parent)
        self.image: np.ndarray | None = None
        self.levels: tuple[float, float] = (0.0, 1.0)
        self.lut = GREY
        self._table = np.empty(0, np.uint32)  # the lookup table as 0xffRRGGBB
        self.set_lut(GREY)
        self._rgb: QImage | None = None  # the image as drawn; None: to be made at the next paint
        self._mirrored = False  # _rgb holds the image mirrored left to right
        self._gathered: Future | None = None  # a contiguous copy of a scattered image, being made
        self._gather_into = np.empty((0, 0), np.float32)
        self._values = np.empty((0, 0), np.float32)  # reused buffers, one plane each
        self._indices = np.empty((0, 0), np.uint8)
        self._pixels = np.empty((0, 0), np.uint32)

    def set_image(self, image: np.ndarray, levels: tuple[float, float] | None = None) -> None:
        if self.image is None or image.shape != self.image.shape:
            self.prepareGeometryChange()
        self.image = image
        if levels is not None:
            self.levels = (float(levels[0]), float(levels[1]))
        # Drop the old image before waking the helper: Qt releases the GIL while it frees it, and
        # a helper woken just before took the GIL then, stalling this thread ~1 ms every other move.
        self._changed()
        if self._gathered is not None:
            self._gathered.cancel()
            self._gathered = None
        if _scattered(image):
            if self._gather_into.shape != image.shape:
                self._gather_into = np.empty(image.shape, np.float32)
            # one helper thread, first in first out: an earlier copy into the buffer ends first
            self._gathered = _GATHER.submit(_gather, image, self._gather_into)

    def clear(self) -> None:
        if self.image is not None:
            self.prepareGeometryChange()
            self.image = self._gathered = None
            self._changed()

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = (float(levels[0]), float(levels[1]))
        self._changed()

    def set_lut(self, lut: np.ndarray) -> None:
        """A (n, 3) or (n, 4) uint8 table, n <= 256 (alpha is ignored: the slice is opaque)."""
        lut = np.asarray(lut, dtype=np.uint8)
        if not 1 <= len(lut) <= 256 or lut.ndim != 2 or lut.shape[1] not in (3, 4):
            raise ValueError(f"a (n <= 256, 3 or 4) lookup table, not {lut.shape}")
        self.lut = lut
        rgb = lut[:, :3].astype(np.uint32)
        self._table = 0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        self._changed()

    def _changed(self) -> None:
        self._rgb = None
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        if self.image is None:
            return QRectF()
        rows, cols = self.image.shape
        return QRectF(0, 0, cols, rows)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.image is None or self.image.size == 0:
            return
        if self._rgb is None:
            # Read a mirrored view (a radiological slice) forwards: a ufunc reading backwards is
            # about ten times slower, and the painter mirrors it back at no cost.
            image = self._gathered.result() if self._gathered is not None else self.image
            self._mirrored = image.strides[1] < 0
            self._rgb = self.render(image[:, ::-1] if self._mirrored else image)
        draw_image(painter, self.boundingRect(), self._rgb, self._mirrored)

    def render(self, image: np.ndarray) -> QImage:
        """``image`` windowed and coloured: an RGB32 QImage over this item's pixel buffer (valid
        until the next render)."""
        low, high = self.levels
        rows, cols = image.shape
        if self._values.shape != image.shape:
            self._values = np.empty(image.shape, np.float32)
            self._indices = np.empty(image.shape, np.uint8)
            self._pixels = np.empty(image.shape, np.uint32)
        values, indices, pixels = self._values, self._indices, self._pixels
        top = len(self._table)
        scale = top / (high - low) if high > low else 0.0
        np.subtract(image, low, out=values, casting="unsafe")  # the one read of the plane
        np.multiply(values, scale, out=values)
        if not np.isfinite(values).all():
            np.copyto(values, -low * scale, where=~np.isfinite(values))
        np.clip(values, 0, top - 1, out=values)
        np.copyto(indices, values, casting="unsafe")  # truncation: the table entry the value falls in
        np.take(self._table, indices, out=pixels, mode="wrap")  # indices < top: "wrap" only skips the bounds check
        return QImage(pixels.data, cols, rows, 4 * cols, QImage.Format.Format_RGB32)


def draw_image(painter: QPainter, rect: QRectF, image: QImage, mirrored: bool) -> None:
    """Paint ``image`` over ``rect``, mirrored left-right when it was rendered from a mirrored
    view read forwards (the painter's transform mirrors it back at no cost)."""
    if mirrored:
        painter.save()
        painter.setTransform(QTransform(-1, 0, 0, 1, rect.width(), 0), combine=True)
        painter.drawImage(rect, image)
        painter.restore()
    else:
        painter.drawImage(rect, image)
