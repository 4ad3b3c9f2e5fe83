"""The main window, driven as a user drives it (pytest-qt, offscreen): open, scrub, score,
cancel, supersede, export, errors.  Real NIfTI files written with nibabel; built-in models."""

from __future__ import annotations

import subprocess
import sys
import threading

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.ui_helpers import (
    REPO,
    SIGNAL_TIMEOUT_MS,
    drag,
    hover_view,
    module_window,
    open_volume,
    plotted,
    run,
    slow_worker,
    wheel,
    write_nifti,
)

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ui_volumes")
    bad = folder / "broken.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file at all")
    return {
        "small": write_nifti(folder / "small.nii.gz"),
        "other": write_nifti(folder / "other.nii.gz", depth=17, height=32, width=36, spacing=(1.0, 1.0, 3.0), seed=1),
        "deep": write_nifti(folder / "deep.nii.gz", depth=300, height=16, width=16, spacing=(1.0, 1.0, 1.0), seed=2),
        "bad": bad,
    }


def plot_point(win, x: float, y: float = 0.3) -> QPoint:
    plot = win.score_plot
    return plot.mapFromScene(plot.getPlotItem().vb.mapViewToScene(QPointF(x, y)))


def choose(combo, text: str) -> None:
    """Pick ``text`` in a combo box as a user does (``activated`` fires)."""
    index = combo.findText(text)
    assert index >= 0, text
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def depth_image(win) -> np.ndarray:
    return win.views.depth_view.image.image


def expected_depth_image(volume, index: int) -> np.ndarray:
    """The axial slice as the radiological default shows it: the patient's right on the left."""
    return np.fliplr(volume.data[index, :, :, 0].numpy())


# -- opening and looking ------------------------------------------------------------------------


def test_empty_window_invites_to_open(window):
    assert window.volume is None and window.session.volume is None
    assert "drop a volume here" in window.views.placeholder.text()
    assert window.views.stack.currentWidget() is window.views.placeholder
    assert not window.toolbar.run.isEnabled() and not window.actions_by_name["run"].isEnabled()
    assert not window.actions_by_name["export_predictions"].isEnabled()
    assert window.windowTitle() == "Slicewise"
    assert window.scrubber.axis.currentText() == "acquired"


def test_open_shows_middle_slice_upright_at_true_aspect(qtbot, window, volumes):
    from app.display import CT_SOFT_TISSUE, display_range
    from app.io import load_volume
    from app.volume import Volume

    volume = open_volume(qtbot, window, volumes["small"])
    expected = load_volume(volumes["small"], axis="axial")  # acquired axially: the same layout
    assert volume.shape == expected.shape == (24, 48, 40, 1)
    np.testing.assert_array_equal(volume.data.numpy(), expected.data.numpy())
    assert window.views.stack.currentWidget() is not window.views.placeholder
    assert window.windowTitle() == "Slicewise — small.nii.gz"
    assert window.current_slice() == 12 and window.scrubber.spin.value() == 12
    image = depth_image(window)
    assert image.dtype == np.float32 and image.shape == (48, 40) and not image.flags.writeable  # a view of the tensor
    np.testing.assert_array_equal(image, expected_depth_image(expected, 12))
    view = window.views.depth_view.view
    assert view.yInverted(), "row 0 must be at the top"
    _, rows_mm, cols_mm = volume.spacing
    assert view.state["aspectLocked"] == pytest.approx(cols_mm / rows_mm)
    # the marker bar sits at the anterior edge: with row 0 on top it must be drawn near the top
    bar_rows, _ = np.nonzero((image > 120) & (image < 200))
    assert len(bar_rows) and bar_rows.mean() < 48 * 0.25
    # the ball lies in the patient's right half (small x): radiological puts it on the screen's left
    ball_cols = np.nonzero(expected_depth_image(expected, 14) > 250)[1]
    assert len(ball_cols) and ball_cols.mean() > 40 / 2
    assert window.session.levels == pytest.approx(CT_SOFT_TISSUE), "CT (air at -1000 HU) opens in a soft-tissue window"
    assert tuple(window.views.depth_view.image.levels) == pytest.approx(CT_SOFT_TISSUE)
    mri_like = Volume.from_tensor(expected.data + 1000)
    flat = mri_like.data.numpy().ravel()
    assert display_range(mri_like).levels == pytest.approx((np.percentile(flat, 1), np.percentile(flat, 99)), abs=1.0)
    assert "12 / 23" in window.status_line.slice.text() and "mm" in window.status_line.slice.text()
    grey = window.views.depth_view.image.lut.copy()
    window.views.display.colormap.setCurrentText("viridis")
    assert window.session.colormap == "viridis"
    lut = window.views.depth_view.image.lut
    assert lut.shape[0] == 256 and lut.dtype == np.uint8
    assert not np.array_equal(lut, grey)
    assert all(np.array_equal(v.image.lut, lut) for v in window.views.views), "one colormap for the three views"
    assert window.errors == []


def test_scrub_by_keys_wheel_and_plot_both_ways(qtbot, window, volumes):
    volume = open_volume(qtbot, window, volumes["small"])
    plot = window.score_plot

    def agree(index: int) -> None:
        assert window.current_slice() == index
        assert window.scrubber.spin.value() == index and window.scrubber.slider.value() == index
        np.testing.assert_array_equal(depth_image(window), expected_depth_image(volume, index))
        assert plot.cursor.value() == pytest.approx(index)

    graphics = window.views.depth_view.graphics
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
    wheel(graphics, 60)  # half a notch (a touchpad): nothing yet, the rest adds up
    agree(3)
    wheel(graphics, 60)
    agree(4)
    wheel(graphics, -120)
    agree(3)
    before = np.array(window.views.depth_view.view.viewRange())
    wheel(graphics, 120, Qt.KeyboardModifier.ControlModifier)
    agree(3)
    assert not np.allclose(before, window.views.depth_view.view.viewRange())

    # scrubber → cursor
    window.scrubber.slider.setValue(9)
    agree(9)
    window.scrubber.spin.setValue(4)
    agree(4)
    # plot click → scrubber (snapped to the nearest slice)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot_point(window, 7.3))
    agree(7)
    # left-drag along the plot scrubs
    drag(qtbot, plot.viewport(), plot_point(window, 10.2), plot_point(window, 15.8), steps=10)
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
    view = window.views.depth_view
    hover_view(qtbot, view, 20, 10)  # screen row 20, column 10
    d = window.current_slice()
    voxel = view.plane.to_voxel(volume, 20, 10, (d, 0, 0))
    assert voxel == (d, 20, 40 - 1 - 10), "radiological: screen column 10 is voxel column 29"
    text = window.status_line.readout.text()
    x, y, z = volume.world(*voxel)
    assert f"voxel ({d}, 20, 29)" in text
    assert f"({x:.1f}, {y:.1f}, {z:.1f}) mm" in text
    assert f"value {float(volume.data[d, 20, 29, 0]):.6g}" in text
    assert float(volume.data[d, 20, 29, 0]) == depth_image(window)[20, 10]


def test_axis_switch_reloads_and_keeps_position(qtbot, window, volumes):
    volume = open_volume(qtbot, window, volumes["small"])
    window.set_slice(5)
    focus = volume.world(5, 48 // 2, 40 // 2)  # the crosshair's point: the centre of the slice
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        choose(window.scrubber.axis, "coronal")
    coronal = blocker.args[0]
    assert coronal.axis == "coronal" and window.volume is coronal and coronal.depth == 48
    index = window.current_slice()
    assert abs(coronal.positions_mm[index] - focus[1]) <= coronal.spacing[0] / 2 + 1e-6
    assert window.score_plot.depth == 48 and window.scrubber.slider.maximum() == 47
    assert window.scrubber.axis.currentText() == "coronal"
    assert window.errors == []


# -- scoring ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored(request, tmp_path_factory, volumes):
    """One window, the small volume scored by the three strategies in batches of 8 (in this order)."""
    folder = tmp_path_factory.mktemp("scored")
    with module_window(request, folder / "settings.ini") as (window, bot):
        volume = open_volume(bot, window, volumes["small"])
        batches: dict[str, list[tuple[int, int]]] = {}
        # Python thread-locals on the worker thread must survive from one job to the next
        # (TensorFlow keeps its graph-building state there; losing it crashed the second trace)
        local, carried = threading.local(), []

        def probe(job: int, text: str) -> None:
            carried.append((job, getattr(local, "job", None)))
            local.job = job

        window.inference.worker.sigStatus.connect(probe, Qt.ConnectionType.DirectConnection)
        window.session.update_settings(batch_size=8)
        predictions = {}
        for strategy in ("temporal", "embedding", "slice"):
            seen: list[tuple[int, int]] = []
            batches[strategy] = seen

            def record(job: int, done: int, total: int, seen=seen) -> None:
                seen.append((done, total))

            window.predictions.sigBatch.connect(record)
            predictions[strategy] = run(bot, window, strategy)
            window.predictions.sigBatch.disconnect(record)
        yield {"window": window, "volume": volume, "predictions": predictions, "batches": batches, "carried": carried,
               "message": window.statusBar().currentMessage()}


def test_each_strategy_streams_into_the_plot(scored):
    from app.ui.views.score_plot import STRATEGY_COLORS

    window, volume, predictions = scored["window"], scored["volume"], scored["predictions"]
    session, plot = window.session, window.score_plot
    for batches in scored["batches"].values():
        assert batches and batches[-1][0] == batches[-1][1], "progress streamed to the last batch"
    assert scored["batches"]["slice"][0] == (1, 3), "24 slices in batches of 8: the first one shows at once"
    assert [r.key.strategy for r in session.runs] == ["temporal", "embedding", "slice"]
    for run_ in session.runs:
        assert run_.finished and run_.prediction is predictions[run_.key.strategy]
        assert len(plot.curves[run_]) == 1
        xs, ys = plot.curves[run_][0].getData()
        assert len(xs) == volume.depth
        np.testing.assert_allclose(ys, predictions[run_.key.strategy].scores[:, 0])
    firsts: dict[int, int | None] = {}
    for job, previous in scored["carried"]:
        firsts.setdefault(job, previous)
    assert list(firsts.values())[1:] == list(firsts)[:-1], "each job sees the thread-local set by the one before"
    # the latest run is highlighted, older ones dimmed
    pens = [plot.curves[r][0].opts["pen"] for r in session.runs]
    assert pens[-1].widthF() > pens[0].widthF()
    assert pens[-1].color().name() == STRATEGY_COLORS["slice"]
    assert predictions["slice"].device in scored["message"] and " s on " in scored["message"]
    assert session.finished_runs()[-1].prediction is predictions["slice"]
    assert window.actions_by_name["export_predictions"].isEnabled()
    assert window.errors == []


def legend_text(plot, curve) -> str | None:
    label = plot.legend.getLabel(curve)
    return None if label is None else label.text


def test_legend_names_each_run_and_the_volume_score(scored):
    window, predictions = scored["window"], scored["predictions"]
    plot = window.score_plot
    texts = [legend_text(plot, plot.curves[r][0]) for r in window.session.runs]
    assert texts[0] == "temporal" and texts[2] == "slice"
    assert texts[1] == f"embedding — volume score {float(predictions['embedding'].volume_score[0]):.3f}"
    assert len(plot.legend.items) == 3


def test_export_writes_every_run_as_the_cli_does(scored, tmp_path):
    from app import export

    window, volume, predictions = scored["window"], scored["volume"], scored["predictions"]
    theirs = tmp_path / "cli.csv"
    done = subprocess.run(
        [sys.executable, "-m", "app", "predict", str(volume.source), "--strategy", "temporal", "--strategy", "embedding",
         "--strategy", "slice", "--batch-size", "8", "--out", str(theirs)],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    header = theirs.read_text().splitlines()[0]
    assert header == "volume,slice_index,position_mm,score_temporal,score_embedding,score_slice"
    ours = tmp_path / "gui.csv"
    table, sidecar = window.export_predictions(ours)
    assert table == ours and sidecar.is_file()
    assert ours.read_text().splitlines()[0] == header
    assert ours.read_bytes() == theirs.read_bytes()
    runs = [predictions[name] for name in ("temporal", "embedding", "slice")]
    assert ours.read_text() == export.csv_text([(volume, runs)])


def test_exports_never_overwrite_the_open_volume(scored, tmp_path):
    from app.errors import SlicewiseError

    window = scored["window"]
    source = window.session.volume.source
    before = source.read_bytes()
    link = tmp_path / "plot.png"
    link.symlink_to(source)
    for export, target in ((window.export_predictions, source), (window.export_plot, link)):
        with pytest.raises(SlicewiseError, match="refusing to write .*it is an input"):
            export(target)
    assert source.read_bytes() == before and not (tmp_path / f"{source.name}.json").exists()


def test_export_plot_has_a_title_and_the_folder_is_remembered(scored, tmp_path, monkeypatch):
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QFileDialog

    window = scored["window"]
    plot_png = window.export_plot(tmp_path / "plot.png")
    assert plot_png.read_bytes().startswith(b"\x89PNG")
    image = QImage(str(plot_png))
    plot = window.score_plot
    assert image.width() == plot.width() and image.height() > plot.height(), "a title strip above the plot"
    # the title strip holds text (light pixels on black); the plot below is the plot widget
    strip = np.array([[image.pixelColor(x, y).lightness() for x in range(min(image.width(), 400))] for y in range(image.height() - plot.height())])
    assert (strip > 150).any()
    # the Export dialog: writes there and starts in that folder next time
    folder = tmp_path / "exports"
    folder.mkdir()
    asked: list[str] = []

    def save(parent, title, start, filter_):
        asked.append(start)
        return str(folder / "scores.csv"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save))
    window.export_predictions_dialog()
    assert (folder / "scores.csv").is_file() and (folder / "scores.csv.json").is_file()
    assert window.dialogs.folder("export") == str(folder)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda parent, title, start, filter_: (asked.append(start), (str(folder / "plot.png"), ""))[1]))
    window.export_plot_dialog()
    assert asked[-1] == str(folder / "small_scores.png"), "the Export dialog starts in the last folder used"
    assert (folder / "plot.png").read_bytes().startswith(b"\x89PNG")
    assert window.errors == []


def test_threshold_jumps_region_by_region_with_n_p_and_shift_arrows(qtbot, window, tmp_path):
    from app.phantom import write_demo

    image, _ = write_demo(tmp_path, seed=7)  # lesion slices score high, the others low
    open_volume(qtbot, window, image)
    prediction = run(qtbot, window, "slice")
    scores = prediction.scores[:, 0]
    threshold = 0.5
    window.session.set_threshold(threshold)
    above = scores > threshold
    starts = [i for i in range(len(scores)) if above[i] and (i == 0 or not above[i - 1])]  # each region's first slice
    assert len(starts) >= 3, "the demo has at least three lesions"
    window.set_slice(0)
    expected = [s for s in starts if s > 0][:3]
    for index in expected[:2]:
        qtbot.keyClick(window, Qt.Key.Key_N)
        assert window.current_slice() == index
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_slice() == expected[2]
    if above[expected[2] + 1]:  # inside a region, P goes back to where it starts first
        window.set_slice(expected[2] + 1)
        qtbot.keyClick(window, Qt.Key.Key_P)
        assert window.current_slice() == expected[2]
    qtbot.keyClick(window, Qt.Key.Key_P)
    assert window.current_slice() == expected[1]
    qtbot.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert window.current_slice() == expected[0]
    window.session.set_threshold(2.0)  # nothing above: stay, and say so
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert window.current_slice() == expected[0]
    assert "above 2.00" in window.statusBar().currentMessage()
    window.clear_plot()
    assert window.session.runs == [] and plotted(qtbot, window).curves == {}
    assert not window.actions_by_name["export_predictions"].isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert "Run a strategy first" in window.statusBar().currentMessage()


def test_cancel_mid_run_keeps_its_scores_out(qtbot, window, volumes):
    open_volume(qtbot, window, volumes["deep"])
    slow_worker(window)
    batches_scored: list[int] = []
    window.inference.worker.sigProgress.connect(lambda job, *args: batches_scored.append(job), Qt.ConnectionType.DirectConnection)
    finished: list[int] = []
    window.predictions.sigFinished.connect(lambda job, prediction: finished.append(job))
    window.session.update_settings(batch_size=1)
    window.set_strategy("slice")
    with qtbot.waitSignal(window.predictions.sigBatch, timeout=SIGNAL_TIMEOUT_MS):
        job = window.run_prediction()
    assert window.toolbar.cancel.isEnabled() and window.session.run_for_job(job) is not None
    with qtbot.waitSignal(window.predictions.sigCancelConfirmed, timeout=SIGNAL_TIMEOUT_MS, check_params_cb=lambda j: j == job):
        qtbot.mouseClick(window.toolbar.cancel, Qt.MouseButton.LeftButton)
    assert 0 < batches_scored.count(job) < 300, "cancel is seen between batches, not at the end"
    qtbot.wait(200)
    assert finished == []
    assert window.session.runs == [] and window.score_plot.curves == {}
    assert not window.toolbar.cancel.isEnabled() and window.toolbar.run.isEnabled()
    assert window.toolbar.progress.format() == "cancelled"
    # the worker is free again: a new run completes
    window.session.update_settings(batch_size=64)
    prediction = run(qtbot, window, "slice")
    assert prediction.scores.shape == (300, 1) and finished == [job + 1]


def test_opening_a_file_mid_run_drops_the_old_scores(qtbot, window, volumes, engine):
    from app.io import load_volume
    from app.strategies import STRATEGIES

    open_volume(qtbot, window, volumes["deep"])
    slow_worker(window)
    window.session.update_settings(batch_size=1)
    window.set_strategy("slice")
    with qtbot.waitSignal(window.predictions.sigBatch, timeout=SIGNAL_TIMEOUT_MS):
        first = window.run_prediction()
    after_switch: list[tuple[object, str]] = []
    switched: list[bool] = []
    window.sigVolumeShown.connect(lambda volume: switched.append(True))
    window.session.events.runs.connect(lambda run_, what: switched and after_switch.append((run_, what)))
    with qtbot.waitSignal(window.predictions.sigCancelConfirmed, timeout=SIGNAL_TIMEOUT_MS, check_params_cb=lambda j: j == first):
        volume = open_volume(qtbot, window, volumes["small"])
    qtbot.wait(100)
    assert [what for _, what in after_switch if what == "scores"] == [], "no batch of the first file reached the plot after the second was opened"
    assert window.session.runs == [] and window.score_plot.curves == {} and window.score_plot.depth == 24

    window.session.update_settings(batch_size=32)
    prediction = run(qtbot, window, "slice")
    curve = window.score_plot.curves[window.session.runs[-1]][0]
    assert len(curve.getData()[1]) == volume.depth == 24
    fresh = engine.run(load_volume(volumes["small"], axis="acquired"), STRATEGIES["slice"])
    np.testing.assert_allclose(prediction.scores, fresh.scores, rtol=0, atol=1e-6)
    assert window.errors == []


def test_rerunning_supersedes_the_running_job(qtbot, window, volumes):
    open_volume(qtbot, window, volumes["deep"])
    slow_worker(window, 0.01)
    window.session.update_settings(batch_size=1)
    finished: list[int] = []
    window.predictions.sigFinished.connect(lambda job, prediction: finished.append(job))
    with qtbot.waitSignal(window.predictions.sigBatch, timeout=SIGNAL_TIMEOUT_MS):
        first = window.run_prediction()
    window.session.update_settings(batch_size=100)
    with qtbot.waitSignal(window.predictions.sigFinished, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        second = window.run_prediction()
    assert blocker.args[0] == second and finished == [second] and first not in finished
    assert len(window.session.runs) == 1 and window.session.runs[0].prediction is blocker.args[1]
    assert len(window.score_plot.curves) == 1


def test_a_new_run_after_the_old_ones_went_shows_its_own_scores_once(qtbot, window, volumes):
    """Curves of removed runs are reused for the next run's (cheaper than new ones): what shows is
    the new run's scores, under its own name, in one legend entry, and nothing of the old run."""
    import pyqtgraph as pg

    open_volume(qtbot, window, volumes["small"])
    run(qtbot, window, "slice")
    volume = open_volume(qtbot, window, volumes["deep"])  # the old volume's run goes with it
    prediction = run(qtbot, window, "slice")
    plot = window.score_plot
    (curve,) = plot.curves[window.session.runs[0]]
    xs, ys = curve.getData()
    np.testing.assert_array_equal(xs, np.arange(volume.depth))
    np.testing.assert_allclose(ys, np.asarray(prediction.scores)[:, 0])
    shown = [item for item in plot.getPlotItem().listDataItems() if isinstance(item, pg.PlotDataItem) and item.isVisible()]
    assert shown == [curve] and len(plot.legend.items) == 1 and legend_text(plot, curve) == "slice"


# -- errors, recent files, drag and drop ---------------------------------------------------------


def test_bad_file_gives_a_dialog_and_keeps_the_open_volume(qtbot, window, volumes, tmp_path):
    volume = open_volume(qtbot, window, volumes["small"])
    prediction = run(qtbot, window, "slice")
    window.set_slice(3)
    for path in (volumes["bad"], tmp_path / "missing.nii.gz"):
        count = len(window.errors)
        window.open_path(path)
        qtbot.waitUntil(lambda count=count: len(window.errors) == count + 1, timeout=SIGNAL_TIMEOUT_MS)
        title, text = window.errors[-1]
        assert title == "Cannot open volume" and path.name in text
        assert window.volume is volume and window.session.finished_runs()[-1].prediction is prediction
        assert window.windowTitle() == "Slicewise — small.nii.gz"
        assert window.current_slice() == 3 and len(window.session.runs) == 1 and len(window.score_plot.curves) == 1
        assert window.views.stack.currentWidget() is not window.views.placeholder
    assert "no such file" in window.errors[-1][1]


def test_bad_model_file_gives_a_dialog_and_falls_back_to_builtin(qtbot, window, volumes, tmp_path):
    open_volume(qtbot, window, volumes["small"])
    model = tmp_path / "broken.keras"
    model.write_bytes(b"not a zip")
    window.set_model(model)
    qtbot.waitUntil(lambda: len(window.errors) == 1, timeout=SIGNAL_TIMEOUT_MS)
    assert window.errors[0][0] == "Cannot load model" and "broken.keras" in window.errors[0][1]
    assert window.session.settings.model_path is None and window.toolbar.model.text() == "built-in model"
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
    # Open Recent opens the file
    entry = next(a for a in window.recent_menu.actions() if "other.nii.gz" in a.text())
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        entry.trigger()
    assert blocker.args[0].source.resolve() == volumes["other"].resolve()
    # persisted in the settings file, at most ten
    from app.ui.commands.settings import MAX_RECENT, RecentFiles

    again = RecentFiles(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert again.paths()[:2] == [str(volumes["other"].resolve()), str(volumes["small"].resolve())], "reopened: first again"
    for i in range(12):
        again.add(tmp_path / f"v{i}.nii")
    assert len(again.paths()) == MAX_RECENT and again.paths()[0].endswith("v11.nii")
    window.fill_recent_menu()
    names = [a.text().split()[1] for a in window.recent_menu.actions() if a.text().startswith("&")]
    assert names == [f"v{i}.nii" for i in range(11, 1, -1)], "the window's menu reads the same file: the ten newest"


def test_worker_thread_stops_when_the_window_closes(qtbot, volumes, tmp_path):
    from app.ui.window import MainWindow

    win = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), interactive=False)
    win.show()
    open_volume(qtbot, win, volumes["deep"])
    slow_worker(win)
    win.session.update_settings(batch_size=1)
    with qtbot.waitSignal(win.predictions.sigBatch, timeout=SIGNAL_TIMEOUT_MS):
        win.run_prediction()
    with qtbot.waitSignal(win.inference.thread.finished, timeout=SIGNAL_TIMEOUT_MS):
        win.close()  # mid-run: cancel, quit, wait
    win.deleteLater()


def test_volume_index_of_a_4d_file(qtbot, window, tmp_path):
    frames = np.stack([np.full((20, 22, 9), 10 * (k + 1), dtype=np.int16) for k in range(3)], axis=-1)
    path = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(frames, np.diag([1.0, 1.0, 2.0, 1.0])), path)
    volume = open_volume(qtbot, window, path)
    spin = window.scrubber.volume_index
    assert volume.n_volumes == 3 and spin.isEnabled() and spin.maximum() == 2
    assert float(depth_image(window).mean()) == pytest.approx(10)
    window.set_slice(2)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
        spin.setValue(2)
    assert blocker.args[0].volume_index == 2 and window.volume is blocker.args[0]
    assert window.current_slice() == 2
    assert float(depth_image(window).mean()) == pytest.approx(30)


@pytest.fixture(scope="module")
def two_outputs(request, tmp_path_factory, volumes):
    """A window scoring the 'other' volume with a user's temporal model of two outputs, z-scored."""
    from app.tools.seed_models import seed_temporal_model

    folder = tmp_path_factory.mktemp("two_outputs")
    model_path = folder / "two_outputs.keras"
    seed_temporal_model(5, 16 * 16, outputs=2).save(model_path)
    with module_window(request, folder / "settings.ini") as (window, bot):
        volume = open_volume(bot, window, volumes["other"])
        window.set_model(model_path)
        bot.waitUntil(lambda: window.toolbar.model.text() == "two_outputs.keras", timeout=SIGNAL_TIMEOUT_MS)
        ready = window.statusBar().currentMessage()
        window.set_normalize("zscore")
        prediction = run(bot, window, "temporal")
        yield {"window": window, "volume": volume, "prediction": prediction, "model_path": model_path, "ready": ready}


def test_user_model_with_two_outputs_draws_two_curves(two_outputs, tmp_path):
    window, volume, prediction = two_outputs["window"], two_outputs["volume"], two_outputs["prediction"]
    assert "Model ready" in two_outputs["ready"]
    assert prediction.model_source == str(two_outputs["model_path"]) and prediction.normalize == "zscore"
    run_ = window.session.runs[-1]
    assert run_.title == "temporal · two_outputs.keras · zscore" and run_.scores.shape == (volume.depth, 2)
    run_curves = window.score_plot.curves[run_]
    assert len(run_curves) == 2 and all(len(c.getData()[1]) == volume.depth for c in run_curves)
    for k, curve in enumerate(run_curves):
        np.testing.assert_allclose(curve.getData()[1], prediction.scores[:, k])
    assert run_curves[0].opts["pen"].style() != run_curves[1].opts["pen"].style(), "outputs told apart by dashes"
    table, _ = window.export_predictions(tmp_path / "two.csv")
    assert table.read_text().splitlines()[0] == "volume,slice_index,position_mm,score_0,score_1"
    assert not window.actions_by_name["builtin"].isChecked()
    window.use_builtin_model()
    assert window.session.settings.model_path is None and window.toolbar.model.text() == "built-in model"
    assert window.actions_by_name["builtin"].isChecked()
    assert window.errors == []


def test_legend_names_each_output(two_outputs):
    window = two_outputs["window"]
    run_curves = window.score_plot.curves[window.session.runs[-1]]
    labels = [legend_text(window.score_plot, c) for c in run_curves]
    assert labels == ["temporal · two_outputs.keras · zscore · output 0", "temporal · two_outputs.keras · zscore · output 1"]


def test_slider_drag_is_rate_limited_and_lands_on_the_last_position(qtbot, window, volumes):
    """A burst of drag moves repaints a few times, not once per move, and ends where the mouse did."""
    volume = open_volume(qtbot, window, volumes["deep"])
    shown: list[int] = []
    window.session.events.slice.connect(shown.append)
    repaints: list[bool] = []
    window.views.depth_view.sigRepainted.connect(lambda: repaints.append(True))
    slider = window.scrubber.slider
    slider.setSliderDown(True)
    for value in range(10, 210):  # 200 moves in a few milliseconds
        slider.setSliderPosition(value)
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == 209, timeout=2000)
    slider.setSliderDown(False)
    assert len(shown) < 20, f"{len(shown)} slice changes for 200 moves"
    assert len(repaints) < 20, f"{len(repaints)} repaints for 200 moves"
    assert window.current_slice() == 209 and volume.depth > 209
    assert window.score_plot.cursor.value() == pytest.approx(209)
    np.testing.assert_array_equal(depth_image(window), expected_depth_image(volume, 209))


def test_progress_relay_hands_fast_batches_on_together():
    """Batches that follow within PROGRESS_INTERVAL_S reach the GUI as one hand-over; the first
    and the last go at once, and every scored slice arrives exactly once."""
    from app.ui.worker.inference_thread import _ProgressRelay

    sent: list[tuple[int, int, list[int], np.ndarray, np.ndarray | None]] = []
    relay = _ProgressRelay(lambda done, total, indices, scores, sd: sent.append((done, total, list(indices), scores, sd)))
    relay(1, 4, np.arange(0, 8), np.full((8, 1), 0.1))
    relay(2, 4, np.empty(0, int), np.empty((0, 0)))  # a step that scored no slice
    relay(3, 4, np.arange(8, 16), np.full((8, 1), 0.3))
    relay(4, 4, np.arange(16, 24), np.full((8, 1), 0.4))
    assert [(done, total) for done, total, *_ in sent] == [(1, 4), (4, 4)]
    assert sent[1][2] == list(range(8, 24)) and sent[1][3].shape == (16, 1) and sent[1][4] is None
    assert sorted(i for _, _, indices, *_ in sent for i in indices) == list(range(24))
    # an uncertainty method's sd travels with its slices
    sent.clear()
    relay = _ProgressRelay(lambda *args: sent.append(args))
    relay(1, 3, np.arange(0, 4), np.full((4, 1), 0.1), np.full((4, 1), 0.01))
    relay(2, 3, np.arange(4, 8), np.full((4, 1), 0.2), np.full((4, 1), 0.02))
    relay(3, 3, np.arange(8, 10), np.full((2, 1), 0.3), np.full((2, 1), 0.03))
    np.testing.assert_array_equal(sent[-1][4][:, 0], np.float32([0.02] * 4 + [0.03] * 2))
    np.testing.assert_array_equal(np.concatenate([s[4] for s in sent])[:, 0], np.repeat([0.01, 0.02, 0.03], [4, 4, 2]).astype(np.float32))


def test_threads_setting_starts_at_every_core_and_is_kept(window, monkeypatch):
    """Model › Threads for scoring…: the dialog starts at the worker's threads (every core by
    default: it runs at low priority) and the choice is saved for the next start."""
    import os

    asked: list[int] = []
    monkeypatch.setattr(window.dialogs, "ask_int", lambda title, label, value, low, high: asked.append(value) or 1)
    assert window.inference.worker.threads == (os.cpu_count() or 1)
    window.actions_by_name["worker_threads"].trigger()
    assert asked == [os.cpu_count() or 1]
    assert window.prefs.worker_threads() == 1
