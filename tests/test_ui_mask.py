"""The mask overlay of a segmentation run's map: the pixels each view draws match the map voxel
by voxel (filled, outline, heat; the depth view and a side view), M shows and hides it, the
legend names the classes with their volumes in mL, the plot's y axis says mm² for areas, File ›
Export mask follows the runs, and the worker's map relay."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter
from scipy.ndimage import binary_erosion

from app.prediction import Prediction
from app.segmentation.dense_map import DenseMap
from tests.ui_helpers import module_window, open_volume, plotted, view_point, write_nifti

pytestmark = pytest.mark.gui

BALL_HU = 200  # write_nifti's ball is 300, the body 40, the marker bar 150


@pytest.fixture(scope="module")
def shown(request, tmp_path_factory):
    """One window on write_nifti's volume (24 x 48 x 40, spacing 2.5 x 1.1 x 0.9 mm) in three
    views, with the crosshair in its ball."""
    folder = tmp_path_factory.mktemp("ui_mask")
    path = write_nifti(folder / "small.nii.gz")
    with module_window(request, folder / "settings.ini") as (window, bot):
        volume = open_volume(bot, window, path)
        window.session.set_layout("ortho")
        data = volume.data.numpy()[..., 0]
        ball = data > BALL_HU
        d, h, w = np.argwhere(ball).mean(axis=0).round().astype(int)
        window.session.set_voxel(int(d), int(h), int(w))
        yield {"window": window, "bot": bot, "volume": volume, "data": data, "ball": ball, "folder": folder}


def finish_dense_run(session, dense: DenseMap, job: int, unit: str = "mm²"):
    """A finished segmentation run with ``dense`` as its map (what the engine's prediction carries)."""
    volume = session.volume
    row_mm, col_mm = volume.spacing[1], volume.spacing[2]
    areas = dense.masks(slice(None))[..., list(dense.foreground)].sum(axis=(1, 2)).astype(np.float32) * row_mm * col_mm
    prediction = Prediction(areas, None, "slice", "built-in:slice", "", "none", "CPU", 1, classes=tuple(dense.classes[k] for k in dense.foreground),
                            dense=dense, reduce="area", unit=unit)
    run = session.begin_run(job)
    session.finish_run(run, prediction)
    return run


def ball_map(data: np.ndarray) -> DenseMap:
    """One sigmoid class: p = (value - 40) / 260, clipped: 1 in the ball, 0 in the body and air."""
    dense = DenseMap.empty((*data.shape, 1), "sigmoid", ("ball",))
    dense.put(np.arange(data.shape[0]), np.clip((data - 40.0) / 260.0, 0.0, 1.0)[..., None])
    return dense


def painted(overlay) -> np.ndarray:
    """What the overlay's item paints, one image pixel per screen-plane pixel: (rows, cols, 4)
    premultiplied BGRA bytes (Qt's ARGB32 in memory), through its own paint (mirroring included)."""
    item = overlay.image
    rect = item.boundingRect()
    cols, rows = int(rect.width()), int(rect.height())
    image = QImage(cols, rows, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    item.paint(painter, None)
    painter.end()
    return np.frombuffer(image.constBits(), np.uint8, count=rows * cols * 4).reshape(rows, cols, 4).copy()


def on_screen(view, volume, values: np.ndarray) -> np.ndarray:
    """``values`` (D, H, W) at each screen pixel of ``view``'s plane through the crosshair, voxel by
    voxel through `Plane.to_voxel` (not the strided views the overlay draws from)."""
    rows, cols = view.plane.shape(volume)
    through = view.voxel()
    return np.array([[values[view.plane.to_voxel(volume, r, c, through)] for c in range(cols)] for r in range(rows)])


def views_under_test(window):
    """The depth view and the sagittal side view (its plane reads the map across rows: strided)."""
    depth, sagittal = window.views.masks[0], window.views.masks[2]
    assert depth.view.plane.name == "axial" and sagittal.view.plane.name == "sagittal"
    return depth, sagittal


def test_filled_outline_and_heat_pixels_match_the_map(shown):
    window, volume, data, ball = shown["window"], shown["volume"], shown["data"], shown["ball"]
    session = window.session
    dense = ball_map(data)
    finish_dense_run(session, dense, job=101)
    session.set_mask(on=True, mode="filled", opacity=0.5)
    mask = dense.masks(slice(None))[..., 0]
    assert mask.any() and (mask == ball).mean() > 0.99
    for overlay in views_under_test(window):
        assert overlay.image.isVisible()
        pixels = painted(overlay)
        expected = on_screen(overlay.view, volume, mask)
        assert expected.sum() > 10, overlay.view.plane.name
        alpha = pixels[..., 3]
        np.testing.assert_array_equal(alpha > 0, expected, err_msg=overlay.view.plane.name)
        assert set(np.unique(alpha[expected])) == {round(255 * 0.5)}
        red, green, blue = pixels[expected][:, 2], pixels[expected][:, 1], pixels[expected][:, 0]
        assert (red > 100).all() and (green < 60).all() and (blue < 60).all()  # the first class is red

    session.set_mask(mode="outline")
    for overlay in views_under_test(window):
        expected = on_screen(overlay.view, volume, mask)
        edge = expected & ~binary_erosion(expected, border_value=1)
        alpha = painted(overlay)[..., 3]
        np.testing.assert_array_equal(alpha > 0, edge, err_msg=overlay.view.plane.name)
        assert (alpha[edge] == 255).all()  # outlines are opaque
        assert edge.sum() < expected.sum()

    session.set_mask(mode="heat", opacity=1.0)
    for overlay in views_under_test(window):
        levels = on_screen(overlay.view, volume, dense.probabilities[..., 0]).astype(int)
        alpha = painted(overlay)[..., 3].astype(int)
        np.testing.assert_array_equal(alpha == 0, levels == 0, err_msg=overlay.view.plane.name)
        order = np.argsort(levels.ravel(), kind="stable")
        assert (np.diff(alpha.ravel()[order]) >= 0).all()  # alpha grows with the probability
        assert alpha[levels == 255].min() == 255
    session.set_mask(mode="filled", opacity=0.45)


def test_uncertainty_mode_draws_the_passes_sd(shown):
    """The uncertainty mode draws a finished run's per-pixel sd over its passes (`dense_sd`)
    through the heat colours, transparent where the passes agree; a run of one pass shows
    nothing and its legend says how to get a spread."""
    from app.uncertainty.combine import SpreadMap

    window, volume, data = shown["window"], shown["volume"], shown["data"]
    session = window.session
    dense = ball_map(data)
    run = finish_dense_run(session, dense, job=107)
    sd = np.where(shown["ball"], 0.25, 0.0)[..., None]  # the passes disagree inside the ball
    spread = SpreadMap(*data.shape, 1)
    spread.put(np.arange(data.shape[0]), sd)
    run.prediction.dense_sd = spread
    session.set_mask(on=True, mode="uncertainty", opacity=1.0)
    assert window.views.mask_legend.lines()[0] == "sd of the passes" and window.views.mask_legend.heat
    for overlay in views_under_test(window):
        levels = on_screen(overlay.view, volume, spread.values[..., 0]).astype(int)
        assert (levels > 0).sum() > 5, overlay.view.plane.name
        alpha = painted(overlay)[..., 3]
        np.testing.assert_array_equal(alpha > 0, levels > 0, err_msg=overlay.view.plane.name)

    run.prediction.dense_sd = None
    session.set_mask(mode="heat")
    session.set_mask(mode="uncertainty")
    assert window.views.mask_legend.lines()[0].startswith("no spread")
    assert not any(overlay.image.isVisible() for overlay in views_under_test(window))
    session.set_mask(mode="filled", opacity=0.45)


def test_softmax_classes_get_their_own_colours():
    """A 3-class softmax with the background at 0: each pixel coloured by its argmax class, the
    background transparent (MaskPixels alone, no window)."""
    from app.ui.views.mask_pixels import PALETTE, MaskPixels, rgb

    rng = np.random.default_rng(1)
    plane = rng.integers(0, 256, size=(9, 7, 3)).astype(np.uint8)
    dense = DenseMap(plane[None], "softmax", ("background", "liver", "spleen"), background=0)
    pixels = MaskPixels().render(plane, dense, "filled", 1.0)
    winner = plane.argmax(axis=2)
    for k, color in ((1, PALETTE[0]), (2, PALETTE[1])):
        r, g, b = rgb(color)
        assert (pixels[winner == k] == (0xFF000000 | r << 16 | g << 8 | b)).all()
    assert (pixels[winner == 0] == 0).all()
    background = np.zeros_like(plane)
    background[..., 0] = 255
    assert MaskPixels().render(background, dense, "filled", 1.0) is None  # nothing shows: nothing to look up or blend


def test_m_toggles_the_overlay_and_the_view_changes(shown):
    window, bot, ball = shown["window"], shown["bot"], shown["ball"]
    session = window.session
    finish_dense_run(session, ball_map(shown["data"]), job=102)
    depth_view = window.views.depth_view
    _, h, w = session.crosshair()
    assert ball[session.index, h, w]
    row, col = depth_view.plane.to_screen(shown["volume"], session.crosshair())
    at = view_point(depth_view, row + 0.5, col + 0.5)

    def colour_at_crosshair_pixel():
        bot.wait(20)
        image = depth_view.graphics.viewport().grab().toImage()
        return image.pixelColor(at.x() + 3, at.y() + 3)  # beside the crosshair's dashes, still in the ball

    assert session.mask.on and window.actions_by_name["mask"].isChecked()
    shown_colour = colour_at_crosshair_pixel()
    bot.keyClick(window, Qt.Key.Key_M)
    assert not session.mask.on and not window.actions_by_name["mask"].isChecked()
    assert not any(overlay.image.isVisible() for overlay in window.views.masks)
    assert window.views.mask_legend.lines() == []
    hidden_colour = colour_at_crosshair_pixel()
    assert hidden_colour.red() == hidden_colour.green() == hidden_colour.blue()  # the grey (white) ball
    assert shown_colour.green() < hidden_colour.green() - 40 and shown_colour.red() > shown_colour.green() + 40  # tinted red
    bot.keyClick(window, Qt.Key.Key_M)
    assert session.mask.on and all(overlay.image.isVisible() for overlay in window.views.masks)


def test_legend_names_classes_with_their_volumes_and_the_axis_says_mm2(shown, tmp_path):
    window, volume, data = shown["window"], shown["volume"], shown["data"]
    session = window.session
    two = DenseMap.empty((*data.shape, 2), "sigmoid", ("ball", "bar"))
    two.put(np.arange(volume.depth), np.stack([data > BALL_HU, (data > 100) & (data < BALL_HU)], axis=-1).astype(np.float32))
    finish_dense_run(session, two, job=103)
    voxel_mm3 = float(np.prod(volume.spacing))
    counts = [int((data > BALL_HU).sum()), int(((data > 100) & (data < BALL_HU)).sum())]
    lines = window.views.mask_legend.lines()
    assert lines[0] == "mask ≥ 0.50"
    assert lines[1:] == [f"{name}  {count * voxel_mm3 / 1000:.2f} mL" for name, count in zip(("ball", "bar"), counts)]
    axis = plotted(shown["bot"], window).getPlotItem().getAxis("left")
    assert axis.labelText == "area (mm²)"
    session.set_mask(mode="heat")
    assert window.views.mask_legend.lines()[0] == "probability" and window.views.mask_legend.heat
    window.views.mask_legend.grab().save(str(tmp_path / "legend.png"))
    session.set_mask(mode="filled")
    # a classifier beside it: scores on the left axis 0…1, the areas on an axis of their own
    plot = window.score_plot
    areas = next(run for run in session.runs if run.unit == "mm²")
    classifier = session.begin_run(104, dataclasses.replace(session.settings, strategy="temporal"))  # another key: it replaces nothing
    session.finish_run(classifier, Prediction(np.full((volume.depth, 1), 0.5, np.float32), None, "temporal", "built-in:temporal", "", "none", "CPU", 1))
    plotted(shown["bot"], window)
    assert axis.labelText == "score" and plot.areas.shown and plot.areas.axis.labelText == "area (mm²)"
    assert all(plot.areas.holds(curve) for curve in plot.curves[areas]) and not any(plot.areas.holds(c) for c in plot.curves[classifier])
    low, high = plot.vb.viewRange()[1]
    assert low < 0 and 1 < high < 1.2, "the classifier's 0…1 fills its axis"
    assert plot.areas.view.viewRange()[1][1] >= float(np.nanmax(areas.scores)) > 1
    window.grab().save(str(tmp_path / "areas_beside_scores.png"))
    session.remove_run(classifier)
    plotted(shown["bot"], window)
    assert axis.labelText == "area (mm²)" and not plot.areas.shown and not any(plot.areas.holds(c) for c in plot.curves[areas])
    assert plot.vb.viewRange()[1][1] >= float(np.nanmax(areas.scores))


def test_export_mask_follows_the_runs(shown, tmp_path):
    """File › Export mask is enabled with a finished map; it writes through the core's `write_mask`
    (the source's voxel grid, read back with nibabel)."""
    window, volume = shown["window"], shown["volume"]
    session = window.session
    session.clear_runs()
    assert not window.actions_by_name["export_mask"].isEnabled()
    dense = ball_map(shown["data"])
    finish_dense_run(session, dense, job=105)
    assert window.actions_by_name["export_mask"].isEnabled()
    target = tmp_path / "mask.nii.gz"
    import nibabel as nib

    written = nib.load(window.export_mask(target))
    assert written.shape[:3] == nib.load(volume.source).shape[:3]
    assert np.allclose(written.affine, nib.load(volume.source).affine)
    from app.segmentation.mask_export import source_voxel_order

    np.testing.assert_array_equal(np.asarray(written.dataobj), source_voxel_order(volume, dense.label_map()))
    assert abs(int(np.asarray(written.dataobj).sum()) - int(shown["ball"].sum())) <= 0.05 * int(shown["ball"].sum())  # the ball, up to its rim


def test_the_worker_relay_hands_the_engines_map_on():
    """`_MapRelay`: the engine's one map handed on with the slices it gained (at most every
    interval, the rest on `flush`), never copied."""
    from app.ui.worker.inference_thread import _MapRelay

    handed: list[tuple[np.ndarray, DenseMap]] = []
    relay = _MapRelay(lambda indices, dense: handed.append((indices, dense)))
    rng = np.random.default_rng(2)
    blocks = rng.random((6, 5, 4, 1)).astype(np.float32)
    dense = DenseMap.empty(blocks.shape, "sigmoid", ("lesion",))
    for start in (0, 2, 4):  # as the engine fills its map and calls on_map
        indices = np.arange(start, start + 2)
        dense.put(indices, blocks[indices])
        relay(indices, dense)
    relay.flush()
    assert np.concatenate([indices for indices, _ in handed]).tolist() == [0, 1, 2, 3, 4, 5]
    assert all(d is dense for _, d in handed) and dense.filled.all()
    np.testing.assert_array_equal(dense.probabilities, np.rint(blocks * 255).astype(np.uint8))


@pytest.mark.parametrize(("flag", "expected"), [(None, (True, "filled")), ("outline", (True, "outline")), ("off", (False, "filled"))])
def test_render_draws_the_mask_as_its_flag_says(tmp_path, flag, expected):
    """``slicewise render --mask MODE``: the session it draws holds the overlay's mode (a dense run's
    map is then drawn by the same window as in the viewer)."""
    from app.cli import build_parser
    from app.ui.render import fill_session

    path = write_nifti(tmp_path / "small.nii.gz", depth=6, height=12, width=10)
    argv = ["render", str(path), "--out", str(tmp_path / "x.png"), *(["--mask", flag] if flag else [])]
    session = fill_session(build_parser().parse_args(argv))
    assert (session.mask.on, session.mask.mode) == expected


def test_a_large_map_is_counted_off_the_gui_thread(shown, monkeypatch):
    """Over `COUNT_HERE` values, the legend says "counting…" until the helper thread is done."""
    from app.ui.views import mask_legend

    window, bot, volume, data = shown["window"], shown["bot"], shown["volume"], shown["data"]
    monkeypatch.setattr(mask_legend, "COUNT_HERE", 0)
    dense = ball_map(data)
    release = threading.Event()
    mask_legend._COUNTER.submit(release.wait, 10)  # the helper busy: the count waits its turn
    try:
        finish_dense_run(window.session, dense, job=106)
        legend = window.views.mask_legend
        assert legend.lines()[1] == "ball  counting…"
    finally:
        release.set()
    expected = f"ball  {int(dense.masks(slice(None)).sum()) * float(np.prod(volume.spacing)) / 1000:.2f} mL"
    bot.waitUntil(lambda: legend.lines()[1:] == [expected], timeout=10_000)


def test_a_streaming_map_reaches_the_views_through_the_controller(shown):
    """The worker's ``sigMap`` (the job's map and the slices it gained) puts the map on the
    streaming run: the overlay shows it before the run ends, the legend says it is scoring; a
    superseded job's map is dropped."""
    from tests.ui_helpers import slow_worker

    window, bot, data = shown["window"], shown["bot"], shown["data"]
    session, worker = window.session, window.inference.worker
    session.clear_runs()
    slow_worker(window, 0.05)
    window.set_strategy("slice")
    job = window.run_prediction()
    run = session.run_for_job(job)
    dense = ball_map(data)
    worker.sigMap.emit(job - 1, np.array([0, 1]), dense)  # an older job's: not this run's
    assert run.dense is None
    worker.sigMap.emit(job, np.arange(data.shape[0]), dense)
    assert run.dense is dense and not run.finished and session.mask_run() is run
    assert all(overlay.image.isVisible() for overlay in window.views.masks)
    assert window.views.mask_legend.lines()[0].endswith("(scoring…)")
    bot.waitUntil(lambda: run.finished, timeout=60_000)
    assert window.views.mask_legend.lines()[0] == "mask ≥ 0.50"
