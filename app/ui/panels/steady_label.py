"""`SteadyLabel`: a label whose size grows to fit its text and does not shrink until `reset_width`.

A label sized by its text asks its parent's layout to run again with every new text, and a
readout that changes on every slice (the status line, the scrubber's position) then lays out
the whole bar each time (about 1 ms of a scrub step) and makes the numbers jump sideways.  A
label of fixed size (minimum = maximum) asks for no layout, so this one only does when it grows.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

UNBOUNDED = 16777215  # Qt's QWIDGETSIZE_MAX


class SteadyLabel(QLabel):
    def __init__(self, text: str = "", tip: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        if tip:
            self.setToolTip(tip)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        if text == self.text():
            return
        super().setText(text)
        hint = self.sizeHint()
        if hint.width() > self.minimumWidth() or hint.height() != self.minimumHeight():
            self.setFixedSize(max(hint.width(), self.minimumWidth()), hint.height())

    def reset_width(self) -> None:
        self.setMinimumWidth(0)
        self.setMaximumWidth(UNBOUNDED)
