"""`SaliencyOverlay`: the session's saliency map of the shown slice, over the depth view.

A heat map whose colour and opacity grow with the saliency (zero is transparent), so the grey
image stays readable under it; the method (Grad-CAM or an input gradient) is named in the view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel

from app.ui.views.image_item import ImageItem

if TYPE_CHECKING:
    from app.session import Session
    from app.ui.views.plane_view import PlaneView

COLORMAP = "inferno"


def heat_lut(size: int = 256) -> np.ndarray:
    """RGBA lookup table: the colormap with alpha rising from 0 (no saliency) to opaque."""
    lut = pg.colormap.get(COLORMAP).getLookupTable(nPts=size, alpha=True)
    ramp = np.clip(np.linspace(0.0, 1.6, size), 0.0, 1.0)
    lut[:, 3] = (255 * ramp).astype(np.uint8)
    return lut


class SaliencyOverlay:
    def __init__(self, session: Session, view: PlaneView):
        self.session, self.view = session, view
        self.image = ImageItem(axisOrder="row-major")
        self.image.setZValue(10)
        self.image.setLookupTable(heat_lut())
        self.image.setVisible(False)
        view.view.addItem(self.image)
        self.caption = QLabel(view.graphics)
        self.caption.setStyleSheet("QLabel { color: #ffcc80; background: rgba(0,0,0,150); padding: 1px 4px; }")
        self.caption.hide()
        view.captions.append(self.caption)
        self.shown_index: int | None = None
        for event in (session.events.slice, session.events.saliency, session.events.volume, session.events.radiological):
            event.connect(self.refresh)

    def refresh(self, *_args) -> None:
        session, plane = self.session, self.view.plane
        found = session.saliency_map(session.index) if session.saliency_on else None
        if found is None or plane is None:
            self.image.setVisible(False)
            self.shown_index = None
            self.caption.setVisible(session.saliency_on and session.volume is not None)
            self.caption.setText("saliency: computing…" if session.saliency_on else "")
            self.caption.adjustSize()
            self._place_caption()
            return
        self.image.setImage(plane.orient(found.values), levels=(0.0, 1.0), autoLevels=False)
        self.image.setOpacity(session.saliency_opacity)
        self.image.setVisible(True)
        self.view.repaint_soon()
        self.shown_index = session.index
        self.caption.setText(f"saliency: {found.method}")
        self.caption.adjustSize()
        self.caption.show()
        self._place_caption()

    def _place_caption(self) -> None:
        self.view.place_labels()
