"""``slicewise [VOLUME]``: the QApplication and the main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import app

DEMO = Path(app.__file__).resolve().parents[1] / "resources" / "demo" / "phantom.nii.gz"


def passive_worker_threads() -> None:
    """OpenMP threads (torch's) sleep as soon as a parallel region ends, instead of spinning for
    the next one, where they took the core the GUI thread needed: on 2 cores the crosshair's p95
    while a run streams went from 11-12 ms to 9-10 ms, and scoring was as fast.  OpenMP reads it
    when torch loads: call this before torch is imported (later it changes nothing)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def ensure_app(offscreen: bool = False):
    """The process's QApplication (created once), with pyqtgraph configured."""
    passive_worker_threads()
    if offscreen and not os.environ.get("QT_QPA_PLATFORM") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtWidgets import QApplication

    qapp = QApplication.instance()
    if qapp is None:
        QApplication.setOrganizationName("Slicewise")
        QApplication.setApplicationName("Slicewise")
        qapp = QApplication(sys.argv[:1])
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, background="k", foreground="#d0d0d0")
    return qapp


def run_gui(path: str | os.PathLike | None = None, axis: str | None = None, volume_index: int = 0, skip_damaged: bool = False) -> int:
    """Open the viewer on ``path`` (default: the bundled demo, if there is one); returns the exit code."""
    qapp = ensure_app()
    from PySide6.QtCore import QTimer

    from app.ui.window import MainWindow

    window = MainWindow()
    window.show()
    target = Path(path) if path else (DEMO if DEMO.is_file() else None)
    if target is not None:
        QTimer.singleShot(0, lambda: window.open_path(target, axis, volume_index, skip_damaged=skip_damaged))
    return qapp.exec()
