"""Reviewing runs in the window: a cancelled re-run loses nothing, runs per axis, the legend and
N / P on a chosen run, the threshold box and line, slice labels (keys, ticks, markers, the
sidecar, the demo's ground truth), the agreement panel, export with labels, saliency, and what
the status texts say.  The demo phantom and small NIfTI files; the built-in models."""

from __future__ import annotations

import re
import shutil
import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPointF, Qt

from tests.ui_helpers import (
    REPO,
    SIGNAL_TIMEOUT_MS,
    close,
    drag,
    make_window,
    module_window,
    open_volume,
    plotted,
    run,
    slow_worker,
    write_nifti,
)

pytestmark = pytest.mark.gui

DEMO = REPO / "resources" / "demo"


def choose(combo, text: str) -> None:
    """Pick ``text`` in a combo box as a user does (``activated`` fires)."""
    index = combo.findText(text)
    assert index >= 0, (text, [combo.itemText(i) for i in range(combo.count())])
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def region_starts(values: np.ndarray, threshold: float) -> list[int]:
    """First slice of each run of consecutive slices scoring above ``threshold``."""
    above = np.asarray(values) > threshold
    return [i for i in range(len(above)) if above[i] and (i == 0 or not above[i - 1])]


def plot_point(window, x: float, y: float):
    plot = window.score_plot
    return plot.mapFromScene(plot.getPlotItem().vb.mapViewToScene(QPointF(x, y)))


def read_truth() -> dict[int, str]:
    from app.review.labels import read_labels_csv

    return read_labels_csv(DEMO / "labels.csv")


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory):
    """The bundled demo and its labels.csv copied to a folder of their own (nothing is written
    into resources/), and app.ui.commands.label_keeper told that this is the demo's folder."""
    folder = tmp_path_factory.mktemp("demo")
    for name in ("phantom.nii.gz", "labels.csv"):
        shutil.copyfile(DEMO / name, folder / name)
    with pytest.MonkeyPatch.context() as patch:
        from app.ui.commands import label_keeper

        patch.setattr(label_keeper, "DEMO_LABELS", folder / "labels.csv")
        yield folder


@pytest.fixture(scope="module")
def reviewed(request, tmp_path_factory, demo_copy):
    """One window on the demo (its ground truth imported), scored by slice and then temporal."""
    with module_window(request, tmp_path_factory.mktemp("reviewed") / "settings.ini") as (window, bot):
        volume = open_volume(bot, window, demo_copy / "phantom.nii.gz")
        labels = dict(window.session.labels)
        predictions = {name: run(bot, window, name) for name in ("slice", "temporal")}
        runs = {r.key.strategy: r for r in window.session.runs}
        yield {"window": window, "bot": bot, "volume": volume, "labels": labels, "predictions": predictions, "runs": runs}


@pytest.fixture
def fresh(reviewed):
    """The reviewed window back at its starting state: slice 0, threshold 0.5, newest run followed, all shown."""
    window = reviewed["window"]
    session = window.session
    session.set_threshold(0.5)
    session.set_follow(None)
    for run_ in session.runs:
        session.set_run_visible(run_, True)
    session.set_saliency(on=False)
    window.actions_by_name["saliency"].setChecked(False)
    session.set_slice(0)
    window.activateWindow()  # the keys are window shortcuts: other tests' windows may have been active
    reviewed["bot"].waitUntil(window.isActiveWindow, timeout=2000)
    return reviewed


# -- the demo opens with its ground truth --------------------------------------------------------


def test_demo_opens_with_its_ground_truth(reviewed, demo_copy):
    window, truth = reviewed["window"], read_truth()
    assert truth and set(truth.values()) == {"0", "1"}
    assert reviewed["labels"] == truth, "the demo's labels.csv is imported the first time"
    sidecar = demo_copy / "phantom.nii.gz.labels.csv"
    assert sidecar.is_file() and "# volume_sha256: " + reviewed["volume"].sha256 in sidecar.read_text()
    assert window.scrubber.marks.labels == truth
    spots = window.score_plot.label_markers.data
    assert sorted(int(x) for x in spots["x"]) == sorted(truth)
    assert {(int(x), float(y)) for x, y in zip(spots["x"], spots["y"])} == {(i, 1.04 if v == "1" else -0.04) for i, v in truth.items()}
    assert window.errors == []


# -- cancel, axes --------------------------------------------------------------------------------


def test_first_run_says_what_happens_and_a_cancelled_rerun_keeps_the_finished_one(qtbot, window, tmp_path):
    volume = open_volume(qtbot, window, write_nifti(tmp_path / "deep.nii.gz", depth=200, height=16, width=16, spacing=(1.0, 1.0, 1.0)))
    session = window.session
    activities: list[str] = []
    formats: list[str] = []
    session.events.activity.connect(lambda activity: (activities.append(activity.text), formats.append(window.toolbar.progress.format())))
    # the worker starts TensorFlow once, before its first model call: make that visibly slow
    def slow_start(job: int, text: str) -> None:
        if text.startswith("Starting TensorFlow"):
            time.sleep(0.6)

    window.inference.worker.sigStatus.connect(slow_start, Qt.ConnectionType.DirectConnection)
    session.update_settings(batch_size=64)
    first_prediction = run(qtbot, window, "slice")
    assert activities[0] == "starting…" and "Starting TensorFlow…" in activities and activities[-1] == "done"
    assert "Starting TensorFlow…" in formats, "the progress bar says what is happening"
    assert activities.index("Starting TensorFlow…") < activities.index("Scoring…") < activities.index("1 / 4 batches")
    message = window.statusBar().currentMessage()
    total = first_prediction.timings["total_s"]
    waited = float(re.search(r"waited (\d+\.\d) s in all", message)[1])
    assert message.startswith("slice: 200 slices in ") and waited >= 0.6 and waited >= total
    first = session.runs[0]
    shown = window.score_plot.curves[first][0].getData()[1].copy()

    slow_worker(window)
    session.update_settings(batch_size=1)
    with qtbot.waitSignal(window.predictions.sigBatch, timeout=SIGNAL_TIMEOUT_MS):
        job = window.run_prediction()
    pending = session.run_for_job(job)
    assert pending.key == first.key and session.runs == [first, pending] and len(window.score_plot.curves) == 2
    with qtbot.waitSignal(window.predictions.sigCancelConfirmed, timeout=SIGNAL_TIMEOUT_MS, check_params_cb=lambda j: j == job):
        qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert session.runs == [first] and first.prediction is first_prediction
    assert list(window.score_plot.curves) == [first]
    np.testing.assert_array_equal(window.score_plot.curves[first][0].getData()[1], shown)
    np.testing.assert_array_equal(first.scores, first_prediction.scores)
    assert "Cancelled" in window.statusBar().currentMessage()
    assert window.actions_by_name["export_predictions"].isEnabled()
    assert volume.depth == 200 and window.errors == []


def test_runs_are_kept_per_axis(qtbot, window, tmp_path):
    path = write_nifti(tmp_path / "small.nii.gz", depth=12, height=20, width=18)
    volume = open_volume(qtbot, window, path)
    assert window.session.runs == []
    run(qtbot, window, "slice")
    axial_run = window.session.runs[0]
    assert axial_run.finished

    def reslice(axis: str):
        with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as blocker:
            choose(window.scrubber.axis, axis)
        return blocker.args[0]

    coronal = reslice("coronal")
    assert coronal.axis == "coronal" and window.session.runs == [] and window.score_plot.curves == {}
    run(qtbot, window, "temporal")
    coronal_run = window.session.runs[0]
    again = reslice("axial")
    assert again.axis == volume.axis == "axial"
    assert window.session.runs == [axial_run], "the axial runs come back with the axial volume"
    np.testing.assert_array_equal(plotted(qtbot, window).curves[axial_run][0].getData()[1], axial_run.scores[:, 0])
    reslice("coronal")
    assert window.session.runs == [coronal_run] and list(plotted(qtbot, window).curves) == [coronal_run]
    assert window.errors == []


# -- legend, follow, threshold -------------------------------------------------------------------


def test_hiding_a_run_hides_its_curve_and_n_p_skip_it(fresh):
    window = fresh["window"]
    session, plot = window.session, window.score_plot
    slice_run, temporal_run = fresh["runs"]["slice"], fresh["runs"]["temporal"]
    assert session.followed_run() is temporal_run
    session.set_run_visible(temporal_run, False)
    assert not any(c.isVisible() for c in plot.curves[temporal_run]) and all(c.isVisible() for c in plot.curves[slice_run])
    assert session.followed_run() is slice_run, "N / P step through a shown run"
    session.set_run_visible(temporal_run, True)
    assert all(c.isVisible() for c in plot.curves[temporal_run])


def test_clicking_the_legend_hides_and_shows_a_run(fresh):
    window, bot = fresh["window"], fresh["bot"]
    plot, temporal_run = window.score_plot, fresh["runs"]["temporal"]
    curve = plot.curves[temporal_run][0]
    sample = next(s for s, label in plot.legend.items if s.item is curve)
    where = plot.mapFromScene(sample.mapToScene(sample.boundingRect().center()))
    bot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert not temporal_run.visible and not curve.isVisible()
    bot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert temporal_run.visible and curve.isVisible()


def test_n_p_follow_the_run_chosen_region_by_region(fresh):
    window, bot = fresh["window"], fresh["bot"]
    session, follow = window.session, window.review.follow
    runs, predictions = fresh["runs"], fresh["predictions"]
    assert [follow.itemText(i) for i in range(follow.count())] == ["newest run", runs["slice"].title, runs["temporal"].title]
    for name in ("slice", "temporal"):
        choose(follow, runs[name].title)
        assert session.follow is runs[name] and session.followed_run() is runs[name]
        scores = predictions[name].scores[:, 0]
        starts = region_starts(scores, 0.5)
        assert len(starts) >= 2, name
        hits = window.scrubber.marks.hits
        np.testing.assert_array_equal(hits, scores > 0.5)
        session.set_slice(0)
        visited = []
        for _ in starts[:4]:
            bot.keyClick(window, Qt.Key.Key_N)
            visited.append(session.index)
        assert visited == [s for s in starts if s > 0][:4], name
        bot.keyClick(window, Qt.Key.Key_P)
        assert session.index == visited[-2]
        assert runs[name].title in window.statusBar().currentMessage()
    choose(follow, "newest run")
    assert session.follow is None


def test_threshold_box_and_line_agree_both_ways(fresh):
    window, bot = fresh["window"], fresh["bot"]
    session, box, line = window.session, window.review.threshold, window.score_plot.threshold_line
    box.setFocus()
    box.selectAll()
    bot.keyClicks(box, "0.7")
    bot.keyClick(box, Qt.Key.Key_Return)
    assert session.threshold == pytest.approx(0.7) and line.value() == pytest.approx(0.7)
    line.setValue(0.25)  # what dragging the line does
    assert session.threshold == pytest.approx(0.25) and box.value() == pytest.approx(0.25)
    # a real drag of the line, grabbed a few pixels off it (its grip is wide)
    x = 10.5
    grab = plot_point(window, x, 0.25)
    grab.setY(grab.y() + 3)
    drag(bot, window.score_plot.viewport(), grab, plot_point(window, x, 0.85), steps=8)
    assert session.threshold == pytest.approx(0.85, abs=0.04)
    assert box.value() == pytest.approx(session.threshold, abs=1e-3) and line.value() == pytest.approx(session.threshold)
    assert session.index == 0, "dragging the line does not scrub"
    bot.waitUntil(lambda: f"at threshold {session.threshold:.2f}" in window.review.figures.text(), timeout=2000)


# -- agreement -----------------------------------------------------------------------------------


def expected_counts(scores: np.ndarray, labels: dict[int, str], threshold: float) -> dict[str, int]:
    index = np.array(sorted(i for i, v in labels.items() if v in "01"))
    truth = np.array([int(labels[i]) for i in index])
    called = scores[index] > threshold
    return {"TP": int((called & (truth == 1)).sum()), "FP": int((called & (truth == 0)).sum()),
            "FN": int((~called & (truth == 1)).sum()), "TN": int((~called & (truth == 0)).sum())}


def test_review_panel_shows_agreement_live_and_jumps_to_disagreements(fresh):
    from sklearn.metrics import roc_auc_score

    window, bot = fresh["window"], fresh["bot"]
    session, panel = window.session, window.review
    truth = read_truth()
    assert session.labels == truth
    for threshold in (0.5, 0.9):
        session.set_threshold(threshold)
        bot.waitUntil(lambda t=threshold: f"at threshold {t:.2f}" in panel.figures.text(), timeout=2000)
        text = panel.figures.text()
        for name, prediction in fresh["predictions"].items():
            scores = prediction.scores[:, 0]
            index = sorted(truth)
            auc = roc_auc_score([int(truth[i]) for i in index], scores[index])
            counts = expected_counts(scores, truth, threshold)
            block = text.split(f"<b>{fresh['runs'][name].title}</b>")[1].split("<b>")[0]
            assert f"AUC {auc:.3f}" in block, (name, block)
            assert f"TP {counts['TP']} · FP {counts['FP']} · FN {counts['FN']} · TN {counts['TN']}" in block, (name, threshold)
            sens = counts["TP"] / (counts["TP"] + counts["FN"])
            spec = counts["TN"] / (counts["TN"] + counts["FP"])
            assert f"sens {sens:.2f} · spec {spec:.2f}" in block
    # the disagreements of the followed run (temporal, the newest), a click away
    scores = fresh["predictions"]["temporal"].scores[:, 0]
    wrong = sorted(i for i, v in truth.items() if (scores[i] > 0.9) != (v == "1"))
    items = [panel.disagree.item(k) for k in range(panel.disagree.count())]
    assert [item.data(Qt.ItemDataRole.UserRole) for item in items] == wrong
    assert wrong, "at 0.9 the temporal run misses some lesion slices"
    target = items[-1]
    panel.disagree.scrollToItem(target)
    bot.mouseClick(panel.disagree.viewport(), Qt.MouseButton.LeftButton, pos=panel.disagree.visualItemRect(target).center())
    assert session.index == target.data(Qt.ItemDataRole.UserRole)
    assert ("FP" in target.text()) == (truth[session.index] == "0")


def test_export_has_a_column_per_run_and_the_labels(fresh, tmp_path):
    window, volume = fresh["window"], fresh["volume"]
    table, sidecar = window.export_predictions(tmp_path / "scores.csv")
    lines = table.read_text().splitlines()
    assert lines[0] == "volume,slice_index,position_mm,score_slice,score_temporal,label"
    assert len(lines) == volume.depth + 1
    truth = read_truth()
    for line in lines[1:]:
        cells = line.split(",")
        assert cells[-1] == truth.get(int(cells[1]), "")
    assert sidecar.is_file()


# -- labels --------------------------------------------------------------------------------------


def test_label_keys_ticks_markers_and_a_sidecar_found_by_content(qtbot, window, tmp_path, monkeypatch):
    folder = tmp_path / "scans"
    folder.mkdir()
    path = write_nifti(folder / "small.nii.gz", depth=12, height=20, width=18)
    open_volume(qtbot, window, path)
    session = window.session
    assert session.labels == {}
    for index, key in ((2, Qt.Key.Key_1), (5, Qt.Key.Key_0), (7, Qt.Key.Key_Question), (9, Qt.Key.Key_1)):
        session.set_slice(index)
        qtbot.keyClick(window, key)
    session.set_slice(5)
    qtbot.keyClick(window, Qt.Key.Key_Backspace)
    expected = {2: "1", 7: "?", 9: "1"}
    assert session.labels == expected
    assert window.scrubber.marks.labels == expected
    spots = window.score_plot.label_markers.data
    assert {(int(x), float(y)) for x, y in zip(spots["x"], spots["y"])} == {(2, 1.04), (7, 0.5), (9, 1.04)}
    sidecar = folder / "small.nii.gz.labels.csv"
    rows = [line.split(",")[:2] for line in sidecar.read_text().splitlines() if not line.startswith("#")]
    assert rows == [["slice_index", "label"], ["2", "1"], ["7", "?"], ["9", "1"]]
    assert sorted(p.name for p in folder.iterdir()) == ["small.nii.gz", "small.nii.gz.labels.csv"], "written atomically: no temporary left"
    # renamed, and opened in a new window: found by its content
    renamed = path.rename(folder / "renamed.nii.gz")
    other = make_window(qtbot, tmp_path / "other", monkeypatch, tmp_path / "other.ini")
    try:
        open_volume(qtbot, other, renamed)
        assert other.session.labels == expected and other.scrubber.marks.labels == expected
    finally:
        close(qtbot, other)
    # a volume with other content does not get them
    write_nifti(folder / "small.nii.gz", depth=12, height=20, width=18, seed=5)
    open_volume(qtbot, window, folder / "small.nii.gz")
    assert session.labels == {}
    assert window.errors == []


# -- saliency ------------------------------------------------------------------------------------


def test_saliency_overlay_on_a_lesion_slice_and_stale_requests_dropped(fresh):
    window, bot = fresh["window"], fresh["bot"]
    session, overlay = window.session, window.views.saliency
    truth, scores = read_truth(), fresh["predictions"]["slice"].scores[:, 0]
    lesion = max((i for i, v in truth.items() if v == "1"), key=lambda i: scores[i])
    choose(window.review.follow, fresh["runs"]["slice"].title)
    session.set_slice(lesion)
    assert not overlay.image.isVisible()
    window.actions_by_name["saliency"].trigger()  # View › Show saliency
    assert session.saliency_on and window.actions_by_name["saliency"].isChecked()
    bot.waitUntil(lambda: overlay.image.isVisible() or window.saliency.failed is not None, timeout=SIGNAL_TIMEOUT_MS)
    assert window.saliency.failed is None
    found = session.saliency_map(lesion)
    height, width = fresh["volume"].shape[1:3]
    assert found.values.shape == (height, width) and found.values.dtype == np.float32
    assert 0 <= found.values.min() and found.values.max() <= 1 and found.values.max() > 0
    np.testing.assert_array_equal(overlay.image.image, window.views.depth_view.plane.orient(found.values))
    assert overlay.caption.isVisible() and overlay.caption.text() == f"saliency: {found.method}"
    assert found.method  # "Grad-CAM (…)" or "gradient × input"

    # View › Saliency method › Occlusion: the map is made again, by occlusion
    window.actions_by_name["saliency_occlusion"].trigger()
    assert session.saliency_method == "occlusion" and session.saliency_map(lesion) is None
    bot.waitUntil(lambda: session.saliency_map(lesion) is not None or window.saliency.failed is not None, timeout=SIGNAL_TIMEOUT_MS)
    occluded = session.saliency_map(lesion)
    assert window.saliency.failed is None and occluded.method.startswith("occlusion (patch ")
    assert overlay.caption.text() == f"saliency: {occluded.method}" and occluded.values.max() == 1
    bot.wait(300)
    window.grab().save("/tmp/saliency_occlusion.png")
    window.actions_by_name["saliency_auto"].trigger()
    bot.waitUntil(lambda: session.saliency_map(lesion) is not None, timeout=SIGNAL_TIMEOUT_MS)
    assert session.saliency_map(lesion).method == found.method

    # a burst of slice changes: only the newest asks the worker for a map
    computed: list[int] = []
    window.inference.worker.sigSaliency.connect(lambda request, key, index, values, method: computed.append(index), Qt.ConnectionType.DirectConnection)
    burst = [i for i in range(0, 40, 2) if i != lesion][:20]
    for index in burst:
        session.set_slice(index)
    bot.waitUntil(lambda: session.saliency_map(burst[-1]) is not None, timeout=SIGNAL_TIMEOUT_MS)
    bot.wait(200)
    assert burst[-1] in computed and len(computed) <= 3, f"{len(computed)} maps computed for {len(burst)} slice changes"
    assert overlay.image.isVisible() and overlay.shown_index == burst[-1]
    bot.keyClick(window, Qt.Key.Key_S)
    assert not session.saliency_on and not overlay.image.isVisible()
    assert window.errors == []


def test_every_slice_change_repaints_the_view_while_saliency_maps_arrive(fresh):
    """Scrubbing with the overlay on, the maps arriving from the worker between steps: each slice
    change repaints the depth view (the scene's own repaint request used to be lost now and then,
    leaving the old slice on screen)."""
    window, bot = fresh["window"], fresh["bot"]
    session = window.session
    window.set_saliency_visible(True)
    viewport = window.views.depth_view.graphics.viewport()
    paints: list[int] = []

    class Watch(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint:
                paints.append(session.index)
            return False

    watch = Watch()
    viewport.installEventFilter(watch)
    rng = np.random.default_rng(3)
    try:
        for _ in range(60):
            index = int(rng.integers(0, fresh["volume"].depth))
            if index == session.index:
                continue
            before = len(paints)
            window.scrubber.slider.setValue(index)
            bot.waitUntil(lambda before=before: len(paints) > before, timeout=3000)  # a lost repaint never comes; a busy machine may take a while
            bot.wait(int(rng.integers(0, 15)))  # a map may arrive meanwhile
    finally:
        viewport.removeEventFilter(watch)
        window.set_saliency_visible(False)
    assert window.errors == []


def gradient_map(height: int, width: int) -> np.ndarray:
    """A map that tells left from right and top from bottom: 0 at the first voxel, 1 at the last."""
    return np.linspace(0, 1, height * width, dtype=np.float32).reshape(height, width)


def test_saliency_overlay_draws_the_sessions_map_in_the_views_orientation(qtbot, window, tmp_path):
    from app.session import SaliencyMap

    volume = open_volume(qtbot, window, write_nifti(tmp_path / "s.nii.gz", depth=10, height=20, width=16))
    session, overlay, view = window.session, window.views.saliency, window.views.depth_view
    values = gradient_map(20, 16)
    session.store_saliency(session.saliency_key(), 4, SaliencyMap(values, "gradient × input"))
    session.set_slice(4)
    assert not overlay.image.isVisible(), "off until asked for"
    window.set_saliency_visible(True)
    assert overlay.image.isVisible() and overlay.shown_index == 4
    np.testing.assert_array_equal(overlay.image.image, values[:, ::-1])  # radiological, as the slice is
    assert overlay.caption.isVisible() and overlay.caption.text() == "saliency: gradient × input"
    assert view.graphics.rect().contains(overlay.caption.geometry())
    window.actions_by_name["neurological"].trigger()
    np.testing.assert_array_equal(overlay.image.image, values)
    window.review.opacity.setValue(30)
    assert session.saliency_opacity == pytest.approx(0.3) and overlay.image.opacity() == pytest.approx(0.3)
    session.set_slice(5)  # no map for this slice yet: nothing stale is shown
    assert not overlay.image.isVisible() and overlay.caption.text().startswith("saliency: computing")
    session.set_slice(4)
    assert overlay.image.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_S)
    assert not session.saliency_on and not overlay.image.isVisible() and not window.actions_by_name["saliency"].isChecked()
    assert volume.depth == 10


def test_saliency_caption_stays_in_the_view_when_the_window_changes(qtbot, window, tmp_path):
    from app.session import SaliencyMap

    open_volume(qtbot, window, write_nifti(tmp_path / "s.nii.gz", depth=10, height=20, width=16))
    session, overlay, graphics = window.session, window.views.saliency, window.views.depth_view.graphics
    session.store_saliency(session.saliency_key(), session.index, SaliencyMap(gradient_map(20, 16), "gradient × input"))
    window.set_saliency_visible(True)
    assert graphics.rect().contains(overlay.caption.geometry())
    window.resize(700, 500)
    window.actions_by_name["layout_ortho"].trigger()
    qtbot.wait(50)
    assert graphics.rect().contains(overlay.caption.geometry()), (overlay.caption.geometry(), graphics.rect())


# -- status texts --------------------------------------------------------------------------------


def test_placeholder_says_what_is_loading(qtbot, window, tmp_path):
    path = write_nifti(tmp_path / "loading.nii.gz", depth=8, height=12, width=10)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS):
        window.open_path(path)
        assert window.views.placeholder.text() == "Loading loading.nii.gz…"
        assert window.views.stack.currentWidget() is window.views.placeholder
    assert window.views.stack.currentWidget() is not window.views.placeholder
    assert window.statusBar().currentMessage().startswith("loading.nii.gz: 8 ")
