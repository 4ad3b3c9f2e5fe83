"""`MaskOverlay`: the session's segmentation map over one plane view, drawn from the session.

The depth view shows slice d of the map; a side view shows the map's plane through the
crosshair.  Either is a strided view of the map's (D, H, W, K) uint8 array, oriented as the
view's image (`Plane.oriented`), not a copy of the map: it is turned into pixels when the view
paints (`MaskPixels`, buffers kept between moves), like `SliceImage` does for the volume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem

from app.ui.views.mask_pixels import MaskPixels
from app.ui.views.slice_image import draw_image
from app.ui.views.throttle import Throttle

if TYPE_CHECKING:
    from app.runs import Run
    from app.segmentation.dense_map import DenseMap
    from app.session import Session
    from app.ui.views.plane_view import PlaneView

STREAMED_MS = 100  # a streaming map: side views (which cross every slice) redrawn at most this often
Z_VALUE = 12  # above the slice and the saliency map, under the crosshair


class MaskImage(QGraphicsItem):
    """A (rows, cols, K) uint8 plane of a map drawn at (0, 0)-(cols, rows), one unit per pixel."""

    def __init__(self, parent: QGraphicsItem | None = None):
        super().__init__(parent)
        self.plane: np.ndarray | None = None
        self.dense: DenseMap | None = None
        self.mode, self.opacity = "filled", 0.5
        self.pixels = MaskPixels()
        self._gathered = np.empty((0, 0, 0), np.uint8)  # a scattered plane, copied once per draw
        self._image: QImage | None = None  # the pixels as drawn; None: to be made at the next paint
        self._mirrored = False

    def set_plane(self, plane: np.ndarray, dense: DenseMap, mode: str, opacity: float) -> None:
        if self.plane is None or plane.shape[:2] != self.plane.shape[:2]:
            self.prepareGeometryChange()
        self.plane, self.dense, self.mode, self.opacity = plane, dense, mode, opacity
        self.changed()

    def clear(self) -> None:
        if self.plane is not None:
            self.prepareGeometryChange()
            self.plane = self.dense = None
            self.changed()

    def changed(self) -> None:
        """The map's values changed (a streamed block): draw again at the next paint."""
        self._image = None
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt's name
        if self.plane is None:
            return QRectF()
        rows, cols = self.plane.shape[:2]
        return QRectF(0, 0, cols, rows)

    def render(self) -> QImage:
        """The plane's pixels as an ARGB32 premultiplied image over the kept buffer (a null
        image when nothing shows)."""
        plane = self.plane
        # a mirrored view (a radiological slice) is read forwards and mirrored back at paint
        self._mirrored = plane.strides[1] < 0
        if self._mirrored:
            plane = plane[:, ::-1]
        if abs(plane.strides[1]) > 4 * plane.shape[2]:  # each pixel in its own cache line: one gather, then K reads
            if self._gathered.shape != plane.shape:
                self._gathered = np.empty(plane.shape, np.uint8)
            np.copyto(self._gathered, plane)
            plane = self._gathered
        pixels = self.pixels.render(plane, self.dense, self.mode, self.opacity)
        if pixels is None:
            return QImage()
        rows, cols = pixels.shape
        return QImage(pixels.data, cols, rows, 4 * cols, QImage.Format.Format_ARGB32_Premultiplied)

    def paint(self, painter: QPainter, option, widget=None) -> None:
        if self.plane is None or self.plane.size == 0:
            return
        if self._image is None:
            self._image = self.render()
        if self._image.isNull():
            return
        draw_image(painter, self.boundingRect(), self._image, self._mirrored)


class MaskOverlay:
    """Keeps ``view``'s `MaskImage` showing the session's mask run through the crosshair."""

    def __init__(self, session: Session, view: PlaneView):
        self.session, self.view = session, view
        self.image = MaskImage()
        self.image.setZValue(Z_VALUE)
        self.image.setVisible(False)
        view.view.addItem(self.image, ignoreBounds=True)
        self.run: Run | None = None  # the run shown
        self._shown_at: int | None = None  # the fixed coordinate of the plane shown
        self._streamed = Throttle(view, STREAMED_MS, self._redraw_values)
        events = session.events
        for event in (events.volume, events.radiological, events.mask, events.follow):
            event.connect(self.refresh)
        events.runs.connect(self._on_run)
        events.crosshair.connect(self._on_crosshair)
        events.dense.connect(self._on_dense)

    def refresh(self, *_args) -> None:
        """Show the session's mask run (or nothing) on the plane through the crosshair."""
        session, plane = self.session, self.view.plane
        run = session.mask_run() if session.mask.on else None
        volume = session.volume
        if run is None or plane is None or volume is None or run.dense.probabilities.shape[:3] != tuple(volume.shape[:3]):
            self.run, self._shown_at = None, None
            self.image.setVisible(False)
            self.image.clear()
            return
        self.run = run
        voxel = session.crosshair()
        self._shown_at = voxel[self.view.fixed]
        index: list[slice | int] = [slice(None)] * 3
        index[self.view.fixed] = self._shown_at
        mask = session.mask
        values = shown_values(run, mask.mode)
        if values is None:  # the uncertainty mode on a run of one pass: nothing to show (the legend says so)
            self.image.setVisible(False)
            self.image.clear()
            return
        self.image.set_plane(plane.oriented(values[tuple(index)]), run.dense, mask.mode, mask.opacity)
        self.image.setVisible(True)

    def _on_crosshair(self, voxel: tuple[int, int, int]) -> None:
        if self.run is not None and voxel[self.view.fixed] != self._shown_at:
            self.refresh()

    def _on_run(self, run: Run, what: str) -> None:
        if what in ("finished", "removed", "shown", "added"):
            self.refresh()

    def _on_dense(self, run: Run, indices: np.ndarray) -> None:
        shown = self.session.mask_run() if self.session.mask.on else None
        if shown is not self.run or (shown is not None and shown.dense is not self.image.dense):
            self.refresh()  # a first block, or a map that was reallocated
        elif run is not self.run:
            return
        elif self.view.fixed != 0:
            self._streamed.request()  # a side view crosses every slice
        elif self._shown_at in indices:
            self.image.changed()

    def _redraw_values(self) -> None:
        if self.run is not None:
            self.image.changed()


def shown_values(run: Run, mode: str) -> np.ndarray | None:
    """The (D, H, W, K) uint8 levels a mode draws: the map's probabilities, or in the uncertainty
    mode the per-pixel sd of a finished run's passes (None when it made one pass)."""
    if mode != "uncertainty":
        return run.dense.probabilities
    spread = getattr(run.prediction, "dense_sd", None)
    return spread.values if spread is not None else None
