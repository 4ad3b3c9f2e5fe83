"""`Throttle`: a redraw asked for many times a second runs at most once per interval.

Scores stream in batch by batch; a widget that redrew on every batch would take the GUI
thread's time from the user's scrubbing.  A request starts a single-shot timer (unless one is
pending) and the redraw runs when it fires, with whatever state is current by then; `now` runs
it at once (a finished run, a new volume) and drops the pending one.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer


class Throttle:
    def __init__(self, parent: QObject, interval_ms: int, redraw: Callable[[], object]):
        self._redraw = redraw
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(redraw)

    def request(self) -> None:
        """Redraw within the interval (several requests meanwhile: one redraw)."""
        if not self._timer.isActive():
            self._timer.start()

    def now(self) -> None:
        self._timer.stop()
        self._redraw()
