"""Volumes opened off the GUI thread: ``app.io.load_volume`` on a small thread pool.

Each request gets an id; only the newest request's result is delivered (an older load that
finishes late is dropped), so opening B while A is still loading shows B.  Display levels are
computed on the pool thread too, once per volume.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from app.errors import SlicewiseError

if TYPE_CHECKING:
    from app.volume import Volume


@dataclass(frozen=True)
class LoadRequest:
    """What to open, and the world point (mm) to keep in view if it is a re-slice of the same file."""

    id: int
    path: Path
    axis: str = "axial"
    volume_index: int = 0
    focus_mm: tuple[float, float, float] | None = None
    remember: bool = True  # add to Open Recent


@dataclass(frozen=True)
class Loaded:
    request: LoadRequest
    volume: Volume
    levels: tuple[float, float]  # initial window: 1st-99th percentile
    value_range: tuple[float, float]  # finite min / max
    histogram: tuple[np.ndarray, np.ndarray] | None = None  # (bin left edges, counts) of the whole volume


CT_SOFT_TISSUE = (-160.0, 240.0)
HISTOGRAM_BINS = 256


def sample_voxels(volume: Volume) -> np.ndarray:
    """Up to about 2 million finite voxels, evenly strided through the volume."""
    flat = volume.data.numpy().reshape(-1)
    sample = flat[:: max(1, flat.size // 2_000_000)]
    return sample[np.isfinite(sample)]


def display_levels(volume: Volume, sample: np.ndarray | None = None) -> tuple[tuple[float, float], tuple[float, float]]:
    """Initial window and the finite value range, from a subsample.

    CT in Hounsfield units (air at about -1000) opens in a soft-tissue window (40/400), as
    radiology viewers do; anything else in its 1st-99th percentile range.
    """
    sample = sample_voxels(volume) if sample is None else sample
    if sample.size == 0:
        return (0.0, 1.0), (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(sample, [1.0, 99.0]))
    vmin, vmax = float(sample.min()), float(sample.max())
    if -1100 <= lo <= -900 and hi > 0:
        lo, hi = CT_SOFT_TISSUE
    if hi <= lo:
        lo, hi = vmin, vmax
    if hi <= lo:
        hi = lo + 1.0
    if vmax <= vmin:
        vmax = vmin + 1.0
    return (lo, hi), (vmin, vmax)


def load(request: LoadRequest) -> Loaded:
    """Open the request's volume (any thread); raises SlicewiseError on bad input."""
    from app.io import load_volume

    volume = load_volume(request.path, axis=request.axis, volume_index=request.volume_index)
    sample = sample_voxels(volume)
    levels, value_range = display_levels(volume, sample)
    return Loaded(request, volume, levels, value_range, volume_histogram(sample, value_range))


def volume_histogram(sample: np.ndarray, value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The histogram beside the slice, of the whole volume (from the subsample), once per volume:
    it no longer changes, and costs nothing, with every slice shown."""
    counts, edges = np.histogram(sample, bins=HISTOGRAM_BINS, range=value_range)
    return edges[:-1], counts.astype(np.float64)


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
            traceback.print_exc()
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

    def request(self, path: str | Path, axis: str = "axial", volume_index: int = 0, focus_mm=None, remember: bool = True) -> int:
        self._next_id += 1
        req = LoadRequest(self._next_id, Path(path), axis, volume_index, focus_mm, remember)
        self._pending += 1
        if self._pending == 1:
            self.sigBusy.emit(True)
        self._pool.start(_LoadTask(req, self._signals))
        return req.id

    def load_now(self, path: str | Path, axis: str = "axial", volume_index: int = 0) -> Loaded:
        """Synchronous load on the calling thread (``slicewise render``); supersedes pending loads."""
        self._next_id += 1
        return load(LoadRequest(self._next_id, Path(path), axis, volume_index, remember=False))

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
