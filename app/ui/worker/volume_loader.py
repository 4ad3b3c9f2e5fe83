"""Volumes opened off the GUI thread: ``app.io.load_volume`` on a small thread pool.

Each request gets an id; only the newest request's result is delivered (an older load that
finishes late is dropped), so opening B while A is still loading shows B.  The display range
(`app.display`) is computed on the pool thread too, once per volume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.display import DisplayRange, display_range
from app.errors import SlicewiseError

if TYPE_CHECKING:
    from app.volume import Volume

log = logging.getLogger(__name__)
DEFAULT_AXIS = "acquired"


@dataclass(frozen=True)
class LoadRequest:
    """What to open, and the world point (mm) to keep in view if it is a re-slice of the same file."""

    id: int
    path: Path
    axis: str = DEFAULT_AXIS
    volume_index: int = 0
    focus_mm: tuple[float, float, float] | None = None
    remember: bool = True  # add to Open Recent
    skip_damaged: bool = False  # a DICOM series without its damaged files


@dataclass(frozen=True)
class Loaded:
    request: LoadRequest
    volume: Volume
    display: DisplayRange


def load(request: LoadRequest) -> Loaded:
    """Open the request's volume and its display range (any thread); raises SlicewiseError."""
    from app.io import load_volume

    volume = load_volume(request.path, axis=request.axis, volume_index=request.volume_index, skip_damaged=request.skip_damaged)
    return Loaded(request, volume, display_range(volume))


class _Signals(QObject):
    done = Signal(object)  # Loaded
    failed = Signal(object, str)  # LoadRequest, message


class _LoadTask(QRunnable):
    def __init__(self, request: LoadRequest, signals: _Signals):
        super().__init__()
        self.request, self.signals = request, signals
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = load(self.request)
        except SlicewiseError as exc:
            self.signals.failed.emit(self.request, str(exc))
        except Exception as exc:  # noqa: BLE001 - a loader bug must not kill the thread silently
            log.exception("loading %s failed", self.request.path)
            self.signals.failed.emit(self.request, f"unexpected {type(exc).__name__}: {exc}")
        else:
            self.signals.done.emit(result)


class VolumeLoader(QObject):
    """Requests in, ``sigLoaded`` / ``sigFailed`` out (newest request only), ``sigBusy`` while loading."""

    sigLoaded = Signal(object)  # Loaded
    sigFailed = Signal(object, str)  # LoadRequest, message
    sigBusy = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _Signals(self)  # lives on the GUI thread: emits from the pool are queued here
        self._signals.done.connect(self._on_done)
        self._signals.failed.connect(self._on_failed)
        self._next_id = 0
        self._pending = 0

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def request(
        self, path: str | Path, axis: str = DEFAULT_AXIS, volume_index: int = 0, focus_mm=None, remember: bool = True, skip_damaged: bool = False
    ) -> int:
        self._next_id += 1
        req = LoadRequest(self._next_id, Path(path), axis, volume_index, focus_mm, remember, skip_damaged)
        self._pending += 1
        if self._pending == 1:
            self.sigBusy.emit(True)
        self._pool.start(_LoadTask(req, self._signals))
        return req.id

    def shutdown(self) -> None:
        self._pool.clear()
        self._pool.waitForDone()

    def _finish_one(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self.sigBusy.emit(False)

    def _on_done(self, result: Loaded) -> None:
        self._finish_one()
        if result.request.id == self._next_id:
            self.sigLoaded.emit(result)

    def _on_failed(self, request: LoadRequest, message: str) -> None:
        self._finish_one()
        if request.id == self._next_id:
            self.sigFailed.emit(request, message)
