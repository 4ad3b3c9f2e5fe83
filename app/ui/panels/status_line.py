"""`StatusLine`: the status bar's permanent parts, drawn from the session.

The voxel readout (under the mouse, else at the crosshair), the slice with its position along
the depth axis, and a busy bar while a volume loads.  The readouts only grow wider while one
volume is shown (`SteadyLabel`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QProgressBar, QStatusBar

from app.status import readout_text, slice_text
from app.ui.panels.steady_label import SteadyLabel

if TYPE_CHECKING:
    from app.session import Session

READOUT_TIP = "voxel index (d, h, w) · world position (x, y, z) RAS mm · value under the mouse (else at the crosshair)"
SLICE_TIP = "current slice · its position along the depth axis (RAS mm)"


class StatusLine:
    def __init__(self, session: Session, bar: QStatusBar):
        self.session = session
        self.readout = SteadyLabel(tip=READOUT_TIP)
        self.slice = SteadyLabel(tip=SLICE_TIP)
        for label in (self.readout, self.slice):
            label.setStyleSheet("QLabel { border-left: 1px solid #999; padding: 0 6px; }")
        self.load_busy = QProgressBar()
        self.load_busy.setRange(0, 0)
        self.load_busy.setMaximumWidth(120)
        self.load_busy.setFormat("loading…")
        self.load_busy.hide()
        for widget in (self.load_busy, self.readout, self.slice):
            bar.addPermanentWidget(widget)
        events = session.events
        events.volume.connect(self._on_volume)
        events.slice.connect(self._on_slice)
        for event in (events.pointer, events.crosshair):
            event.connect(self._update_readout)

    def _on_volume(self, *_args) -> None:
        for label in (self.readout, self.slice):
            label.reset_width()
        self._on_slice(self.session.index)
        self._update_readout()

    def _on_slice(self, index: int) -> None:
        volume = self.session.volume
        self.slice.setText("" if volume is None else slice_text(volume, index))

    def _update_readout(self, *_args) -> None:
        voxel, volume = self.session.readout_voxel(), self.session.volume
        self.readout.setText("" if voxel is None or volume is None else readout_text(volume, *voxel))
