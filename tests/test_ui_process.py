"""The viewer as separate processes see it: TensorFlow is imported only after the window is
shown (and only on the worker thread), the process exits cleanly, ``slicewise render`` writes
a PNG of the asked size, and ``run_gui`` opens a file and returns when the window closes."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def volume_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ui_process") / "head.nii.gz"
    rng = np.random.default_rng(0)
    x, y, z = np.meshgrid(np.arange(40), np.arange(44), np.arange(20), indexing="ij")
    data = np.where(((x - 20) / 17) ** 2 + ((y - 22) / 20) ** 2 < 1, 40.0, -1000.0) + rng.normal(0, 8, x.shape)
    data[(x - 12) ** 2 + (y - 30) ** 2 + (z - 12) ** 2 < 25] = 300
    affine = np.diag([0.9, 1.1, 2.5, 1.0])
    affine[:3, 3] = [-18, -24, -25]
    nib.save(nib.Nifti1Image(data.astype(np.int16), affine), path)
    return path


def python(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path}
    return subprocess.run([sys.executable, *args], check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QEventLoop, QSettings, QThread, QTimer
    from app.ui.main import ensure_app

    qapp = ensure_app()
    from app.ui.window import MainWindow
    import app.inference.engine as engine_module

    booted_on = []
    real_bootstrap = engine_module.bootstrap

    def bootstrap(*args, **kwargs):
        booted_on.append(QThread.currentThread() is qapp.thread())
        return real_bootstrap(*args, **kwargs)

    engine_module.bootstrap = bootstrap
    window = MainWindow(settings=QSettings(sys.argv[2], QSettings.Format.IniFormat), interactive=False)
    window.show()
    for _ in range(20):
        qapp.processEvents()
    print("shown", window.isVisible(), "tensorflow", "tensorflow" in sys.modules, flush=True)

    loop = QEventLoop()
    QTimer.singleShot(120_000, loop.quit)
    errors = []

    def fail(what):
        window.close()  # stops the worker thread first
        sys.exit(f"{what}: " + " | ".join(errors))

    window.sigError.connect(lambda title, message: (errors.append(f"{title}: {message}"), loop.quit()))
    window.sigVolumeShown.connect(lambda volume: loop.quit())
    window.open_path(sys.argv[1])
    loop.exec()
    print("opened", window.volume is not None, "tensorflow", "tensorflow" in sys.modules, flush=True)
    if window.volume is None:
        fail("not opened")

    outcome = []
    window.predictions.sigFinished.connect(lambda job, prediction: (outcome.append(prediction), loop.quit()))
    if window.run_prediction() is None:
        fail("not run")
    loop.exec()
    if not outcome:
        fail("not scored")
    prediction = outcome[0]
    print("scored", prediction.scores.shape, "tensorflow", "tensorflow" in sys.modules, flush=True)
    print("bootstrapped on the GUI thread", booted_on, flush=True)
    window.close()
    print("closed", flush=True)
    """
)


def test_window_is_shown_before_tensorflow_and_exits_cleanly(tmp_path, volume_file):
    script = tmp_path / "fresh.py"
    script.write_text(FRESH_PROCESS)
    done = python(str(script), str(volume_file), str(tmp_path / "settings.ini"))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "shown True tensorflow False" in lines
    assert "opened True tensorflow False" in lines
    assert "scored (20, 1) tensorflow True" in lines
    assert "bootstrapped on the GUI thread [False]" in lines, "TensorFlow is started on the worker thread only"
    assert lines[-1] == "closed"
    assert "QThread: Destroyed" not in done.stderr
    assert "Traceback" not in done.stderr


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_render_writes_a_png_of_the_asked_size(tmp_path, volume_file):
    out = tmp_path / "view.png"
    done = python("-m", "app", "render", str(volume_file), "--out", str(out), "--size", "1000x700", "--strategy", "embedding", "--slice", "12")
    assert done.returncode == 0, done.stderr[-3000:]
    assert png_size(out) == (1000, 700)
    assert "QThread: Destroyed" not in done.stderr


NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
DEMO = REPO / "resources" / "demo"


def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $SLICEWISE_UI_SHOTS (to look at them), else the test's folder."""
    folder = Path(os.environ.get("SLICEWISE_UI_SHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_render_three_planes_of_anatomical_nii(tmp_path):
    """nibabel's anatomical.nii (stored LAS) drawn as three planes, each way round."""
    folder = shots(tmp_path)
    for name, extra in (("anatomical_ortho.png", []), ("anatomical_ortho_neurological.png", ["--neurological"])):
        out = folder / name
        out.unlink(missing_ok=True)
        done = python("-m", "app", "render", str(NIBABEL_DATA / "anatomical.nii"), "--layout", "ortho", "--size", "1100x760", "--out", str(out), *extra)
        assert done.returncode == 0, done.stderr[-3000:]
        assert png_size(out) == (1100, 760)
    from PySide6.QtGui import QImage

    radiological, neurological = (QImage(str(folder / name)) for name in ("anatomical_ortho.png", "anatomical_ortho_neurological.png"))

    def differing(x0: int, x1: int, y0: int, y1: int) -> int:
        return sum(radiological.pixel(x, y) != neurological.pixel(x, y) for x in range(x0, x1, 5) for y in range(y0, y1, 5))

    assert differing(20, 560, 90, 470) > 200, "the axial view is mirrored"
    assert differing(620, 960, 310, 470) == 0, "the sagittal view is the same either way"


def test_render_three_planes_with_saliency(tmp_path):
    from PySide6.QtGui import QImage

    from app.review.labels import read_labels_csv

    lesion = min(i for i, v in read_labels_csv(DEMO / "labels.csv").items() if v == "1")
    demo = tmp_path / "demo.nii.gz"
    demo.write_bytes((DEMO / "phantom.nii.gz").read_bytes())
    folder = shots(tmp_path)
    plain, salient = folder / "demo_ortho.png", folder / "demo_ortho_saliency.png"
    for out, extra in ((plain, []), (salient, ["--saliency", "--strategy", "slice"])):
        out.unlink(missing_ok=True)
        done = python("-m", "app", "render", str(demo), "--layout", "ortho", "--slice", str(lesion + 1), "--out", str(out), *extra)
        assert done.returncode == 0, done.stderr[-3000:]
        assert png_size(out) == (1280, 800)
    a, b = QImage(str(plain)), QImage(str(salient))
    # the depth view (the left half of the top) differs where the heat map is drawn
    changed = sum(a.pixel(x, y) != b.pixel(x, y) for x in range(20, 620, 6) for y in range(90, 480, 6))
    assert changed > 100, changed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.nii.gz", "--out", "x.png"], "missing.nii.gz"),
        (["{volume}", "--out", "x.png", "--size", "big"], "--size"),
        (["{volume}", "--out", "x.png", "--slice", "99"], "out of range"),
    ],
)
def test_render_errors_are_one_line(tmp_path, volume_file, args, message):
    args = [a.replace("{volume}", str(volume_file)) for a in args]
    done = python("-m", "app", "render", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and message in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_run_gui_opens_the_file_and_returns_when_closed(qtbot, volume_file, tmp_path):
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app.ui import main, window

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path))  # keep the user's recent files out of it
    seen = []

    def close_when_open() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, window.MainWindow) and widget.isVisible() and widget.volume is not None:
                seen.append((widget.windowTitle(), widget.volume.depth))
                widget.close()
                return
        QTimer.singleShot(50, close_when_open)

    QTimer.singleShot(50, close_when_open)
    assert main.run_gui(str(volume_file)) == 0
    assert seen == [("Slicewise — head.nii.gz", 20)]


def test_window_screenshot_of_the_demo_scored_three_ways(qtbot, tmp_path, monkeypatch):
    """The window as a reader leaves it: the demo with its labels, three runs, three views,
    radiological, a CT window preset, saliency asked for; saved for a look."""
    from PySide6.QtCore import QSettings

    from app.ui.commands import label_keeper
    from app.ui.window import MainWindow
    from tests.ui_helpers import SIGNAL_TIMEOUT_MS, close, open_volume, run

    demo = tmp_path / "demo"
    demo.mkdir()
    for name in ("phantom.nii.gz", "labels.csv"):
        (demo / name).write_bytes((DEMO / name).read_bytes())
    monkeypatch.setattr(label_keeper, "DEMO_LABELS", demo / "labels.csv")
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), interactive=False)
    try:
        window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        open_volume(qtbot, window, demo / "phantom.nii.gz")
        for strategy in ("slice", "temporal", "embedding"):
            run(qtbot, window, strategy)
        window.actions_by_name["layout_ortho"].trigger()
        window.actions_by_name["preset_5"].trigger()  # soft tissue 40 / 400
        lesion = min(i for i, v in window.session.labels.items() if v == "1")
        window.session.set_slice(lesion + 1)
        window.set_saliency_visible(True)
        qtbot.waitUntil(lambda: window.views.saliency.image.isVisible() or window.saliency.failed is not None, timeout=SIGNAL_TIMEOUT_MS)
        qtbot.wait(100)
        out = shots(tmp_path) / "window_demo_three_runs.png"
        image = window.grab()
        assert image.save(str(out), "PNG")
        assert png_size(out) == (image.width(), image.height()) == (window.width(), window.height())
        assert [r.key.strategy for r in window.session.runs] == ["slice", "temporal", "embedding"]
        assert window.session.layout == "ortho" and window.session.radiological and window.session.levels == (-160.0, 240.0)
    finally:
        close(qtbot, window)
