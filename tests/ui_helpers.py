"""Shared pieces of the GUI tests: a shown main window whose error dialogs are recorded (``window.errors``), small real
NIfTI files, the waits a user's actions need (open, run, close) and the mouse on a plane view."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox

REPO = Path(__file__).resolve().parents[1]
SIGNAL_TIMEOUT_MS = 60_000


def write_nifti(path: Path, depth: int = 24, height: int = 48, width: int = 40, spacing=(0.9, 1.1, 2.5), seed: int = 0) -> Path:
    """A small int16 NIfTI in RAS with a real affine: an elliptic body, a bright ball (the
    'lesion', on some slices) and a marker bar at the anterior edge.

    The array is stored (x, y, z) = (``width``, ``height``, ``depth``) with voxel sizes
    ``spacing`` (x, y, z), so the axial volume is ``(depth, height, width)``."""
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


MARKER_VALUE = 900  # the marker of `write_marked_nifti`: MARKER_VALUE + its x index


def write_marked_nifti(path: Path, depth: int = 12, height: int = 30, width: int = 32) -> Path:
    """A RAS+ NIfTI (x toward the patient's right), value 10 everywhere but a bright block of
    ``MARKER_VALUE + x`` in the patient's LEFT half only (small x indices), on every slice: the
    screen side it lands on tells the left/right convention, and its value tells its voxel."""
    data = np.full((width, height, depth), 10, dtype=np.int16)
    for x in range(width // 8, width // 8 + 4):
        data[x, height // 3 : height // 3 + 5, :] = MARKER_VALUE + x
    affine = np.diag([1.0, 1.2, 2.0, 1.0])
    affine[:3, 3] = [-width / 2, -height * 0.6, -depth]
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def shown_window(qtbot, tmp_path, monkeypatch, settings_path: Path | None = None):
    """A shown MainWindow with its own settings file; error dialogs are recorded, not shown.
    (A generator: the ``window`` fixture of conftest.py yields from it, then it closes the window.)"""
    win = make_window(qtbot, tmp_path, monkeypatch, settings_path)
    yield win
    close(qtbot, win)


def make_window(qtbot, tmp_path, monkeypatch, settings_path: Path | None = None):
    """A shown MainWindow on ``settings_path`` (default ``tmp_path/settings.ini``); the caller closes it."""
    from app.ui.main import ensure_app
    from app.ui.window import MainWindow

    ensure_app()
    errors: list[tuple[str, str]] = []

    def critical(parent, title, text, *args, **kwargs):
        errors.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(critical))
    path = settings_path or tmp_path / "settings.ini"
    win = MainWindow(settings=QSettings(str(path), QSettings.Format.IniFormat))
    win.errors = errors  # the error dialogs, (title, text), in order
    win.show()
    qtbot.waitExposed(win)
    return win


@contextmanager
def module_window(request, settings_path: Path):
    """A shown, non-interactive MainWindow for the tests of a module to share (errors are
    recorded in ``window.errors`` from ``sigError``), and a `QtBot` to drive it; closed on exit."""
    from pytestqt.qtbot import QtBot

    from app.ui.main import ensure_app
    from app.ui.window import MainWindow

    ensure_app()
    bot = QtBot(request)
    win = MainWindow(settings=QSettings(str(settings_path), QSettings.Format.IniFormat), interactive=False)
    win.errors = []
    win.sigError.connect(lambda title, text: win.errors.append((title, text)))
    win.show()
    bot.waitExposed(win)
    try:
        yield win, bot
    finally:
        close(bot, win)


def close(qtbot, win) -> None:
    """Close the window and wait for the inference thread's ``finished`` (not isRunning polling)."""
    if not win.inference._stopped:
        with qtbot.waitSignal(win.inference.thread.finished, timeout=SIGNAL_TIMEOUT_MS):
            win.close()
    win.deleteLater()
    QApplication.processEvents()


def wait_for(qtbot, win, signal, start):
    """Call ``start()`` and wait for ``signal``'s first emission after it; stop at once with the
    window's error message when it reports an error instead.  Returns the signal's arguments."""
    got: list[tuple] = []
    errors = getattr(win, "errors", [])
    count = len(errors)

    def record(*args) -> None:
        got.append(args)

    signal.connect(record)
    try:
        result = start()
        qtbot.waitUntil(lambda: bool(got) or len(errors) > count, timeout=SIGNAL_TIMEOUT_MS)
    finally:
        signal.disconnect(record)
    assert got, errors[-1]
    return result, got[0]


def open_volume(qtbot, win, path: Path, **kwargs):
    """Open ``path`` and wait until it is shown; returns the `Volume`."""
    _, (volume,) = wait_for(qtbot, win, win.sigVolumeShown, lambda: win.open_path(path, **kwargs))
    return volume


def run(qtbot, win, strategy: str):
    """Run ``strategy`` with the window's settings and wait for its prediction."""
    win.set_strategy(strategy)
    job, (finished, prediction) = wait_for(qtbot, win, win.predictions.sigFinished, win.run_prediction)
    assert finished == job
    plotted(qtbot, win)
    return prediction


def plotted(qtbot, win):
    """The score plot, once it has caught up with the session's runs (it does on the event loop's
    pass after they change)."""
    qtbot.waitUntil(lambda: not win.score_plot.behind, timeout=SIGNAL_TIMEOUT_MS)
    return win.score_plot


def slow_worker(win, seconds: float = 0.02) -> None:
    """Make every batch take a little longer, on the worker thread, so a test can act mid-run."""
    win.inference.worker.sigProgress.connect(lambda *args: time.sleep(seconds), Qt.ConnectionType.DirectConnection)


def view_point(view, row: float, col: float) -> QPoint:
    """The viewport pixel of image coordinates (row, col) of a `PlaneView` (pixel centres at +0.5)."""
    scene = view.view.mapViewToScene(QPointF(col, row))
    return view.graphics.mapFromScene(scene)


def click_view(qtbot, view, row: float, col: float, button=Qt.MouseButton.LeftButton) -> None:
    """Click the centre of screen pixel (row, col) of a plane view."""
    qtbot.mouseClick(view.graphics.viewport(), button, pos=view_point(view, row + 0.5, col + 0.5))


def hover_view(qtbot, view, row: float, col: float) -> None:
    """Move the mouse over screen (row, col) of ``view``; pyqtgraph holds back a move that comes
    within 10 ms of the last one (its ``mouseRateLimit``) and delivers it on a timer, so wait."""
    viewport, target = view.graphics.viewport(), view_point(view, row + 0.5, col + 0.5)
    qtbot.mouseMove(viewport, target + QPoint(3, 3))  # Qt sends no move to where the mouse already is
    qtbot.wait(12)
    qtbot.mouseMove(viewport, target)
    voxel = view.voxel_at(row + 0.5, col + 0.5)
    expected = None if voxel is None else (view.fixed, voxel)
    qtbot.waitUntil(lambda: view.session.pointer == expected, timeout=2000)


def drag(qtbot, viewport, start: QPoint, end: QPoint, button=Qt.MouseButton.LeftButton, steps: int = 5) -> None:
    """Press at ``start``, move to ``end`` in ``steps`` moves, release.  Moves are spaced a little
    apart: pyqtgraph drops mouse moves that come faster than its ``mouseRateLimit`` (100 Hz)."""
    qtbot.mousePress(viewport, button, pos=start)
    for step in range(1, steps + 1):
        qtbot.wait(12)
        qtbot.mouseMove(viewport, start + (end - start) * step / steps)
    qtbot.mouseRelease(viewport, button, pos=end)


def double_click(qtbot, viewport, pos: QPoint) -> None:
    """A user's double click: press, release, double-click press, release (QTest's own
    ``mouseDClick`` sends no final release, and pyqtgraph reports a double click on the release)."""
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=pos)


def wheel(widget, dy: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """One wheel event of ``dy`` eighths of a degree (120 = one notch) at the widget's centre."""
    viewport = widget.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    event = QWheelEvent(centre, QPointF(viewport.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, dy),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)
