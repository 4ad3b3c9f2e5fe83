"""Shared pieces of the GUI tests: a shown main window with recorded error dialogs, small real
NIfTI files, and the waits a user's actions need (open, run, close)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QMessageBox

REPO = Path(__file__).resolve().parents[1]
SIGNAL_TIMEOUT_MS = 60_000


def write_nifti(path: Path, depth: int = 24, height: int = 48, width: int = 40, spacing=(0.9, 1.1, 2.5), seed: int = 0) -> Path:
    """A small int16 NIfTI in RAS with a real affine: an elliptic body, a bright ball (the
    'lesion', on some slices) and a marker bar at the anterior edge."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(np.arange(width), np.arange(height), np.arange(depth), indexing="ij")
    body = ((x - width / 2) / (width * 0.42)) ** 2 + ((y - height / 2) / (height * 0.45)) ** 2 < 1
    data = np.where(body, 40.0, -1000.0)
    ball = (x - width * 0.3) ** 2 + (y - height * 0.7) ** 2 + ((z - depth * 0.6) * spacing[2] / spacing[0]) ** 2 < (min(width, height) * 0.12) ** 2
    data[ball] = 300
    data[(np.abs(x - width / 2) < 2) & (y > height * 0.85) & body] = 150
    data += rng.normal(0, 8, data.shape)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [-width * spacing[0] / 2, -height * spacing[1] / 2, -depth * spacing[2] / 2]
    nib.save(nib.Nifti1Image(data.astype(np.int16), affine), path)
    return path


def shown_window(qtbot, tmp_path, monkeypatch):
    """A shown MainWindow with its own settings file; error dialogs are recorded, not shown.
    (A generator: the ``window`` fixture of conftest.py yields from it, then it closes the window.)"""
    from app.ui.main import ensure_app
    from app.ui.window import MainWindow

    ensure_app()
    dialogs: list[tuple[str, str]] = []

    def critical(parent, title, text, *args, **kwargs):
        dialogs.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(critical))
    win = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win.dialogs = dialogs
    win.show()
    qtbot.waitExposed(win)
    yield win
    close(qtbot, win)


def close(qtbot, win) -> None:
    """Close the window and wait for the inference thread's ``finished`` (not isRunning polling)."""
    if not win.inference._stopped:
        with qtbot.waitSignal(win.inference.thread.finished, timeout=SIGNAL_TIMEOUT_MS):
            win.close()
    win.deleteLater()
    QApplication.processEvents()


def open_volume(qtbot, win, path: Path, **kwargs):
    with qtbot.waitSignal(win.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        win.open_path(path, **kwargs)
    return blocker.args[0]


def run(qtbot, win, strategy: str):
    win.set_strategy(strategy)
    with qtbot.waitSignal(win.sigPredictionFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        job = win.run_prediction()
    assert blocker.args[0] == job
    return blocker.args[1]
