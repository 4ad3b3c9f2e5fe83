"""The main window, driven as a user drives it (pytest-qt, offscreen): open, scrub, score,
cancel, supersede, export, errors.  Real NIfTI files written with nibabel; built-in models."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from tests.ui_helpers import REPO, SIGNAL_TIMEOUT_MS, open_volume, run, write_nifti  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ui_volumes")
    bad = folder / "broken.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file at all")
    return {
        "small": write_nifti(folder / "small.nii.gz"),
        "other": write_nifti(folder / "other.nii.gz", depth=17, height=32, width=36, spacing=(1.0, 1.0, 3.0), seed=1),
        "deep": write_nifti(folder / "deep.nii.gz", depth=300, height=16, width=16, spacing=(1.0, 1.0, 1.0), seed=2),
        "bad": bad,
    }


def slow_worker(win, seconds: float = 0.02) -> None:
    """Make every batch take a little longer, on the worker thread, so a test can act mid-run."""
    win.inference.worker.sigProgress.connect(lambda *args: time.sleep(seconds), Qt.ConnectionType.DirectConnection)


def scene_to_viewport(widget, scene_point) -> QPoint:
    return widget.mapFromScene(scene_point)


def plot_point(win, x: float, y: float = 0.3) -> QPoint:
    plot = win.score_plot
    return scene_to_viewport(plot, plot.getPlotItem().vb.mapViewToScene(QPointF(x, y)))


def wheel(widget, dy: int, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    viewport = widget.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    event = QWheelEvent(centre, QPointF(viewport.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, dy),
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


# -- opening and looking ------------------------------------------------------------------------


def test_empty_window_invites_to_open(window):
    assert window.volume is None
    assert "drop a volume here" in window.slice_view.placeholder.text()
    assert window.slice_view.stack.currentWidget() is window.slice_view.placeholder
    assert not window.toolbar.run.isEnabled()
    assert window.windowTitle() == "Slicewise"


def test_open_shows_middle_slice_upright_at_true_aspect(qtbot, window, volumes):
    from app.io import load_volume

    volume = open_volume(qtbot, window, volumes["small"])
    expected = load_volume(volumes["small"])
    assert volume.shape == expected.shape == (24, 48, 40, 1)
    assert window.windowTitle() == "Slicewise — small.nii.gz"
    assert window.current_slice() == 12 and window.scrubber.spin.value() == 12
    image = window.slice_view.image.image
    assert image.dtype == np.float32 and image.flags.c_contiguous and image.shape == (48, 40)
    np.testing.assert_array_equal(image, expected.data[12, :, :, 0].numpy())
    view = window.slice_view.view
    assert view.yInverted(), "row 0 must be at the top"
    _, rows_mm, cols_mm = volume.spacing
    assert view.state["aspectLocked"] == pytest.approx(cols_mm / rows_mm)
    # the marker bar sits at the anterior edge: with row 0 on top it must be drawn near the top
    bar_rows, _ = np.nonzero((image > 120) & (image < 200))
    assert len(bar_rows) and bar_rows.mean() < 48 * 0.25
    from app.ui.loader import CT_SOFT_TISSUE, display_levels
    from app.volume import Volume

    assert window.slice_view.levels() == pytest.approx(CT_SOFT_TISSUE), "CT (air at -1000 HU) opens in a soft-tissue window"
    mri_like = Volume.from_tensor(expected.data + 1000)
    flat = mri_like.data.numpy().ravel()
    assert display_levels(mri_like)[0] == pytest.approx((np.percentile(flat, 1), np.percentile(flat, 99)), abs=1.0)
    assert "12 / 23" in window.slice_label.text() and "mm" in window.slice_label.text()
    window.slice_view.set_colormap("viridis")
    assert window.slice_view.colormap.currentText() == "viridis"
    lut = window.slice_view.histogram.item.getLookupTable(image)
    assert lut.shape[0] == 256 and lut.dtype == np.uint8  # ImageItem's fast path
    assert window.dialogs == []


def test_scrub_by_keys_wheel_and_plot_both_ways(qtbot, window, volumes):
    open_volume(qtbot, window, volumes["small"])
    plot = window.score_plot

    def agree(index: int) -> None:
        assert window.current_slice() == index
        assert window.scrubber.spin.value() == index
        assert window.slice_view.index == index
        assert plot.cursor.value() == pytest.approx(index)

    graphics = window.slice_view.graphics
    graphics.setFocus()
    qtbot.keyClick(graphics, Qt.Key.Key_Right)
    agree(13)
    qtbot.keyClick(graphics, Qt.Key.Key_Left)
    qtbot.keyClick(graphics, Qt.Key.Key_Left)
    agree(11)
    qtbot.keyClick(window, Qt.Key.Key_PageDown)
    agree(21)
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    agree(11)
    qtbot.keyClick(window, Qt.Key.Key_End)
    agree(23)
    qtbot.keyClick(window, Qt.Key.Key_Home)
    agree(0)
    window.scrubber.slider.setFocus()
    qtbot.keyClick(window.scrubber.slider, Qt.Key.Key_Right)  # a window shortcut, even with the slider focused
    agree(1)

    # the wheel over the image scrolls slices; Ctrl+wheel zooms instead
    wheel(graphics, 120)
    wheel(graphics, 120)
    agree(3)
    before = np.array(window.slice_view.view.viewRange())
    wheel(graphics, 120, Qt.KeyboardModifier.ControlModifier)
    agree(3)
    assert not np.allclose(before, window.slice_view.view.viewRange())

    # scrubber → cursor
    window.scrubber.slider.setValue(9)
    agree(9)
    window.scrubber.spin.setValue(4)
    agree(4)
    # plot click → scrubber (snapped to the nearest slice)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot_point(window, 7.3))
    agree(7)
    # left-drag along the plot scrubs
    start, end = plot_point(window, 10.2), plot_point(window, 15.8)
    qtbot.mousePress(plot.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 11):
        qtbot.mouseMove(plot.viewport(), start + (end - start) * step / 10)
    qtbot.mouseRelease(plot.viewport(), Qt.MouseButton.LeftButton, pos=end)
    agree(16)
    # dragging the cursor line itself (InfiniteLine drags go through setValue) snaps too
    plot.cursor.setValue(5.6)
    agree(6)
    # positions in mm on the x axis: the cursor follows in mm
    window.actions_by_name["x_mm"].trigger()
    assert plot.cursor.value() == pytest.approx(window.volume.positions_mm[6])
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot_point(window, float(window.volume.positions_mm[20]) + 0.4))
    assert window.current_slice() == 20


def test_hover_reports_voxel_world_and_value(qtbot, window, volumes):
    volume = open_volume(qtbot, window, volumes["small"])
    view, graphics = window.slice_view.view, window.slice_view.graphics
    point = graphics.mapFromScene(view.mapViewToScene(QPointF(10.5, 20.5)))  # column 10, row 20
    qtbot.mouseMove(graphics.viewport(), point)
    text = window.hover_label.text()
    d = window.current_slice()
    x, y, z = volume.world(d, 20, 10)
    assert f"voxel ({d}, 20, 10)" in text
    assert f"({x:.1f}, {y:.1f}, {z:.1f}) mm" in text
    assert f"value {float(volume.data[d, 20, 10, 0]):.6g}" in text


def test_axis_switch_reloads_and_keeps_position(qtbot, window, volumes):
    volume = open_volume(qtbot, window, volumes["small"])
    window.set_slice(5)
    focus = volume.world(5, (48 - 1) / 2, (40 - 1) / 2)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        window.scrubber.axis.setCurrentText("coronal")
    coronal = blocker.args[0]
    assert coronal.axis == "coronal" and window.volume is coronal and coronal.depth == 48
    index = window.current_slice()
    assert abs(coronal.positions_mm[index] - focus[1]) <= coronal.spacing[0] / 2 + 1e-6
    assert window.score_plot.depth == 48 and window.scrubber.maximum() == 47
    assert window.dialogs == []


# -- scoring ------------------------------------------------------------------------------------


def test_each_strategy_streams_into_the_plot_and_export_matches_cli(qtbot, window, volumes, tmp_path):
    from app import export
    from app.ui.score_plot import STRATEGY_COLORS

    volume = open_volume(qtbot, window, volumes["small"])
    batches: list[tuple[int, int]] = []
    window.sigBatchPlotted.connect(lambda job, done, total: batches.append((done, total)))
    # Python thread-locals on the worker thread must survive from one job to the next
    # (TensorFlow keeps its graph-building state there; losing it crashed the second trace)
    local, carried = threading.local(), []

    def probe(job: int, text: str) -> None:
        carried.append((job, getattr(local, "job", None)))
        local.job = job

    window.inference.worker.sigStatus.connect(probe, Qt.ConnectionType.DirectConnection)
    window.batch_size = 8
    predictions = {}
    for strategy in ("temporal", "embedding", "slice"):
        batches.clear()
        predictions[strategy] = run(qtbot, window, strategy)
        assert batches and batches[-1][0] == batches[-1][1], "progress streamed batch by batch"
        latest = window.score_plot.latest()
        assert latest.finished and latest.key[0] == strategy
        assert len(latest.curves) == 1
        xs, ys = latest.curves[0].getData()
        assert len(xs) == volume.depth
        np.testing.assert_allclose(ys, predictions[strategy].scores[:, 0])
    assert [r.key[0] for r in window.score_plot.runs] == ["temporal", "embedding", "slice"]
    firsts = {}
    for job, previous in carried:
        firsts.setdefault(job, previous)
    assert list(firsts.values())[1:] == list(firsts)[:-1], "each job sees the thread-local set by the one before"
    assert len(batches) == 3  # 24 slices in batches of 8
    # the latest run is highlighted, older ones dimmed
    pens = [run.curves[0].opts["pen"] for run in window.score_plot.runs]
    assert pens[-1].widthF() > pens[0].widthF()
    assert pens[-1].color().name() == STRATEGY_COLORS["slice"]
    # the embedding's volume score is in the legend
    embedding_run = window.score_plot.runs[1]
    label = window.score_plot.legend.getLabel(embedding_run.curves[0]).text
    assert f"{float(predictions['embedding'].volume_score[0]):.3f}" in label
    message = window.statusBar().currentMessage()
    assert predictions["slice"].device in message and " s on " in message
    assert window.latest[1] is predictions["slice"]

    ours = tmp_path / "gui.csv"
    table, sidecar = window.export_predictions(ours)
    assert sidecar.is_file()
    theirs = tmp_path / "cli.csv"
    done = subprocess.run(
        [sys.executable, "-m", "app", "predict", str(volumes["small"]), "--strategy", "slice", "--batch-size", "8", "--out", str(theirs)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert ours.read_bytes() == theirs.read_bytes()
    assert ours.read_text() == export.csv_text([(volume, predictions["slice"])])

    plot_png = window.export_plot(tmp_path / "plot.png")
    assert plot_png.read_bytes().startswith(b"\x89PNG")
    window.clear_plot()
    assert window.score_plot.runs == []
    assert window.dialogs == []


def test_threshold_jumps_with_n_p_and_shift_arrows(qtbot, window, tmp_path):
    from app.phantom import write_demo

    image, _ = write_demo(tmp_path, seed=7)  # lesion slices score high, the others low
    open_volume(qtbot, window, image)
    prediction = run(qtbot, window, "slice")
    scores = prediction.scores[:, 0]
    threshold = 0.5
    window.score_plot.set_threshold(threshold)
    above = np.flatnonzero(scores > threshold)
    window.set_slice(0)
    expected = [int(i) for i in above if i > 0][:3]
    for index in expected[:2]:
        qtbot.keyClick(window, Qt.Key.Key_N)
        assert window.current_slice() == index
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_slice() == expected[2]
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert window.current_slice() == expected[1]
    qtbot.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_slice() == expected[0]
    window.score_plot.set_threshold(2.0)  # nothing above: stay, and say so
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert window.current_slice() == expected[0]
    assert "above 2.00" in window.statusBar().currentMessage()


def test_cancel_mid_run_keeps_its_scores_out(qtbot, window, volumes):
    open_volume(qtbot, window, volumes["deep"])
    slow_worker(window)
    finished: list[int] = []
    window.sigPredictionFinished.connect(lambda job, prediction: finished.append(job))
    window.batch_size = 1
    window.set_strategy("slice")
    with qtbot.waitSignal(window.sigBatchPlotted, timeout=SIGNAL_TIMEOUT_MS):
        job = window.run_prediction()
    assert window.toolbar.cancel.isEnabled()
    started = time.perf_counter()
    with qtbot.waitSignal(window.sigCancelConfirmed, timeout=SIGNAL_TIMEOUT_MS, check_params_cb=lambda j: j == job):
        qtbot.mouseClick(window.toolbar.cancel, Qt.MouseButton.LeftButton)
    assert time.perf_counter() - started < 5, "cancel is seen between batches, not at the end"
    qtbot.wait(200)
    assert finished == []
    assert window.score_plot.runs == [] and window.latest is None
    assert not window.toolbar.cancel.isEnabled() and window.toolbar.run.isEnabled()
    assert window.toolbar.progress.format() == "cancelled"
    # the worker is free again: a new run completes
    window.batch_size = 64
    prediction = run(qtbot, window, "slice")
    assert prediction.scores.shape == (300, 1) and finished == [job + 1]


def test_opening_a_file_mid_run_drops_the_old_scores(qtbot, window, volumes, engine):
    from app.io import load_volume
    from app.strategies import STRATEGIES

    open_volume(qtbot, window, volumes["deep"])
    slow_worker(window)
    window.batch_size = 1
    window.set_strategy("slice")
    with qtbot.waitSignal(window.sigBatchPlotted, timeout=SIGNAL_TIMEOUT_MS):
        first = window.run_prediction()
    switched: list[bool] = []
    window.sigVolumeShown.connect(lambda volume: switched.append(True))
    late: list[int] = []
    original = window.score_plot.add_batch
    window.score_plot.add_batch = lambda run, indices, scores: (switched and late.append(len(indices)), original(run, indices, scores))
    with qtbot.waitSignal(window.sigCancelConfirmed, timeout=SIGNAL_TIMEOUT_MS, check_params_cb=lambda j: j == first):
        volume = open_volume(qtbot, window, volumes["small"])
    qtbot.wait(100)
    assert late == [], "no batch of the first file reached the plot after the second was opened"
    assert window.score_plot.runs == [] and window.score_plot.depth == 24

    window.batch_size = 32
    prediction = run(qtbot, window, "slice")
    curve = window.score_plot.latest().curves[0]
    assert len(curve.getData()[1]) == volume.depth == 24
    fresh = engine.run(load_volume(volumes["small"]), STRATEGIES["slice"])
    np.testing.assert_allclose(prediction.scores, fresh.scores, rtol=0, atol=1e-6)
    assert window.dialogs == []


def test_rerunning_supersedes_the_running_job(qtbot, window, volumes):
    open_volume(qtbot, window, volumes["deep"])
    slow_worker(window, 0.01)
    window.batch_size = 1
    finished: list[int] = []
    window.sigPredictionFinished.connect(lambda job, prediction: finished.append(job))
    with qtbot.waitSignal(window.sigBatchPlotted, timeout=SIGNAL_TIMEOUT_MS):
        first = window.run_prediction()
    window.batch_size = 100
    with qtbot.waitSignal(window.sigPredictionFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        second = window.run_prediction()
    assert blocker.args[0] == second and finished == [second] and first not in finished
    assert len(window.score_plot.runs) == 1


# -- errors, recent files, drag and drop ---------------------------------------------------------


def test_bad_file_gives_a_dialog_and_keeps_the_open_volume(qtbot, window, volumes, tmp_path):
    volume = open_volume(qtbot, window, volumes["small"])
    prediction = run(qtbot, window, "slice")
    window.set_slice(3)
    for path in (volumes["bad"], tmp_path / "missing.nii.gz"):
        count = len(window.dialogs)
        window.open_path(path)
        qtbot.waitUntil(lambda: len(window.dialogs) == count + 1, timeout=SIGNAL_TIMEOUT_MS)
        title, text = window.dialogs[-1]
        assert title == "Cannot open volume" and path.name in text
        assert window.volume is volume and window.latest[1] is prediction
        assert window.windowTitle() == "Slicewise — small.nii.gz"
        assert window.current_slice() == 3 and len(window.score_plot.runs) == 1
    assert "no such file" in window.dialogs[-1][1]


def test_bad_model_file_gives_a_dialog_and_falls_back_to_builtin(qtbot, window, volumes, tmp_path):
    open_volume(qtbot, window, volumes["small"])
    model = tmp_path / "broken.keras"
    model.write_bytes(b"not a zip")
    window.set_model(model)
    qtbot.waitUntil(lambda: len(window.dialogs) == 1, timeout=SIGNAL_TIMEOUT_MS)
    assert window.dialogs[0][0] == "Cannot load model" and "broken.keras" in window.dialogs[0][1]
    assert window.model_path is None and window.toolbar.model.text() == "built-in model"
    assert window.actions_by_name["builtin"].isChecked()


def test_recent_files_persist_and_drop_opens(qtbot, window, volumes, tmp_path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(volumes["other"]))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        window.dropEvent(event)
    assert blocker.args[0].source == volumes["other"] and blocker.args[0].depth == 17
    open_volume(qtbot, window, volumes["small"])
    assert window.recent.paths()[:2] == [str(volumes["small"].resolve()), str(volumes["other"].resolve())]
    window.fill_recent_menu()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert any("small.nii.gz" in t for t in texts) and any("other.nii.gz" in t for t in texts)
    # persisted in the settings file, at most ten
    from app.ui.settings import MAX_RECENT, RecentFiles

    again = RecentFiles(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert again.paths()[0] == str(volumes["small"].resolve())
    for i in range(12):
        again.add(tmp_path / f"v{i}.nii")
    assert len(again.paths()) == MAX_RECENT and again.paths()[0].endswith("v11.nii")
    # Open Recent opens the file
    window.fill_recent_menu()
    entry = next(a for a in window.recent_menu.actions() if "v11.nii" in a.text())
    assert entry is not None


def test_worker_thread_stops_when_the_window_closes(qtbot, volumes, tmp_path):
    from app.ui.window import MainWindow

    win = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    win.show()
    open_volume(qtbot, win, volumes["deep"])
    slow_worker(win)
    win.batch_size = 1
    with qtbot.waitSignal(win.sigBatchPlotted, timeout=SIGNAL_TIMEOUT_MS):
        win.run_prediction()
    with qtbot.waitSignal(win.inference.thread.finished, timeout=SIGNAL_TIMEOUT_MS):
        win.close()  # mid-run: cancel, quit, wait
    win.deleteLater()


if os.environ.get("SLICEWISE_UI_SHOTS"):  # pragma: no cover - a manual look at the window

    def test_screenshots(qtbot, window, volumes):
        folder = Path(os.environ["SLICEWISE_UI_SHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        window.resize(1280, 860)
        window.grab().save(str(folder / "empty.png"))
        open_volume(qtbot, window, volumes["small"])
        window.set_slice(14)
        qtbot.wait(100)
        window.grab().save(str(folder / "opened.png"))
        for strategy in ("slice", "temporal", "embedding"):
            run(qtbot, window, strategy)
        qtbot.wait(100)
        window.grab().save(str(folder / "scored.png"))


def test_volume_index_of_a_4d_file(qtbot, window, tmp_path):
    frames = np.stack([np.full((20, 22, 9), 10 * (k + 1), dtype=np.int16) for k in range(3)], axis=-1)
    path = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(frames, np.diag([1.0, 1.0, 2.0, 1.0])), path)
    volume = open_volume(qtbot, window, path)
    spin = window.scrubber.volume_index
    assert volume.n_volumes == 3 and spin.isEnabled() and spin.maximum() == 2
    window.set_slice(2)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        spin.setValue(2)
    assert blocker.args[0].volume_index == 2 and window.volume is blocker.args[0]
    assert window.current_slice() == 2
    assert float(window.slice_view.image.image.mean()) == pytest.approx(30)


def test_user_model_with_two_outputs_draws_two_curves(qtbot, window, volumes, tmp_path):
    from app.tools.seed_models import seed_temporal_model

    model_path = tmp_path / "two_outputs.keras"
    seed_temporal_model(5, 16 * 16, outputs=2).save(model_path)
    volume = open_volume(qtbot, window, volumes["other"])
    window.set_model(model_path)
    qtbot.waitUntil(lambda: window.toolbar.model.text() == "two_outputs.keras", timeout=SIGNAL_TIMEOUT_MS)
    assert "Model ready" in window.statusBar().currentMessage()
    window.set_normalize("zscore")
    prediction = run(qtbot, window, "temporal")
    assert prediction.model_source == str(model_path) and prediction.normalize == "zscore"
    run_curves = window.score_plot.latest().curves
    assert len(run_curves) == 2 and all(len(c.getData()[1]) == volume.depth for c in run_curves)
    labels = [window.score_plot.legend.getLabel(c).text for c in run_curves]
    assert labels == ["temporal · two_outputs.keras · zscore · output 0", "temporal · two_outputs.keras · zscore · output 1"]
    table, _ = window.export_predictions(tmp_path / "two.csv")
    assert table.read_text().splitlines()[0] == "volume,slice_index,position_mm,score_0,score_1"
    window.use_builtin_model()
    assert window.model_path is None and window.toolbar.model.text() == "built-in model"
    assert window.dialogs == []


def test_slider_drag_is_rate_limited_and_lands_on_the_last_position(qtbot, window, volumes):
    """A burst of drag moves repaints a few times, not once per move, and ends where the mouse did."""
    volume = open_volume(qtbot, window, volumes["deep"])
    shown = []
    window.scrubber.sigIndexChanged.connect(shown.append)
    slider = window.scrubber.slider
    slider.setSliderDown(True)
    for value in range(10, 210):  # 200 moves in a few milliseconds
        slider.setSliderPosition(value)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == 209, timeout=2000)
    slider.setSliderDown(False)
    assert len(shown) < 20, f"{len(shown)} repaints for 200 moves"
    assert window.current_slice() == 209 and volume.depth > 209
    assert window.score_plot.cursor.value() == pytest.approx(209)
