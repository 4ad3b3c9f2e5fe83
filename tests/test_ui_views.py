"""The three linked views, the left/right convention, window/level and the voxel readout, driven
with the mouse and keys (pytest-qt, offscreen) on small real NIfTI files."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from tests.ui_helpers import (
    MARKER_VALUE,
    click_view,
    close,
    double_click,
    drag,
    hover_view,
    make_window,
    open_volume,
    view_point,
    wheel,
    write_marked_nifti,
    write_nifti,
)

pytestmark = pytest.mark.gui

RADIOLOGICAL = {"axial": ("A", "P", "R", "L"), "coronal": ("S", "I", "R", "L"), "sagittal": ("S", "I", "A", "P")}
NEUROLOGICAL = {"axial": ("A", "P", "L", "R"), "coronal": ("S", "I", "L", "R"), "sagittal": ("S", "I", "A", "P")}


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("ui_views")
    return {
        "small": write_nifti(folder / "small.nii.gz"),  # (d, h, w) = (24, 48, 40), spacing 2.5, 1.1, 0.9 mm
        "other": write_nifti(folder / "other.nii.gz", depth=17, height=32, width=36, spacing=(1.0, 1.0, 3.0), seed=1),
        "marked": write_marked_nifti(folder / "marked.nii.gz"),
    }


def data_of(volume) -> np.ndarray:
    return volume.data.numpy()[..., 0]


def ortho(window) -> None:
    window.actions_by_name["layout_ortho"].trigger()
    assert window.session.layout == "ortho"


def crosshair_at(view) -> tuple[float, float]:
    """(row, col) of the screen pixel the view's crosshair lines run through."""
    return view.crosshair.point()


def test_three_views_are_remembered(qtbot, window, tmp_path, monkeypatch, volumes):
    views = window.views
    assert window.session.layout == "single" and window.actions_by_name["layout_single"].isChecked()
    open_volume(qtbot, window, volumes["small"])
    assert not views.side.isVisible() and not views.depth_view.crosshair.isVisible()
    ortho(window)
    assert views.side.isVisible() and all(v.isVisible() for v in views.side_views)
    assert all(v.crosshair.isVisible() for v in views.views)
    assert window.actions_by_name["layout_ortho"].isChecked()
    again = make_window(qtbot, tmp_path, monkeypatch)  # the same settings file
    try:
        assert again.session.layout == "ortho" and again.actions_by_name["layout_ortho"].isChecked()
        assert again.session.radiological and again.actions_by_name["radiological"].isChecked()
    finally:
        close(qtbot, again)
    window.actions_by_name["layout_single"].trigger()
    assert window.session.layout == "single" and not views.side.isVisible()


def test_clicks_in_each_view_move_the_others(qtbot, window, volumes):
    volume = open_volume(qtbot, window, volumes["small"])
    ortho(window)
    qtbot.wait(50)  # the splitter lays out the side views
    data = data_of(volume)
    depth_view, (coronal, sagittal) = window.views.depth_view, window.views.side_views
    session, plot, spin = window.session, window.score_plot, window.scrubber.spin
    assert (depth_view.plane.name, coronal.plane.name, sagittal.plane.name) == ("axial", "coronal", "sagittal")
    assert session.index == 12 and session.point == (24, 20)

    def views_show(d: int, h: int, w: int) -> None:
        assert session.crosshair() == (d, h, w)
        assert spin.value() == d and window.scrubber.slider.value() == d and plot.cursor.value() == pytest.approx(d)
        np.testing.assert_array_equal(depth_view.image.image, data[d, :, ::-1])  # radiological: right on the left
        np.testing.assert_array_equal(coronal.image.image, data[::-1, h, ::-1])  # superior on top
        np.testing.assert_array_equal(sagittal.image.image, data[::-1, :, w])  # anterior on the left
        for view in window.views.views:
            assert crosshair_at(view) == view.plane.to_screen(volume, (d, h, w))

    views_show(12, 24, 20)
    # the depth view: the in-plane point moves (the side views change); the slice stays
    click_view(qtbot, depth_view, 10, 5)  # screen column 5 is voxel column 40 - 1 - 5
    views_show(12, 10, 34)
    assert crosshair_at(depth_view) == (10, 5)
    # the coronal view (rows: depth, superior on top): the slice moves, and the column
    click_view(qtbot, coronal, 3, 30)
    views_show(24 - 1 - 3, 10, 40 - 1 - 30)
    # the sagittal view (columns: rows of the depth slice, anterior on the left): slice and row
    click_view(qtbot, sagittal, 18, 41)
    views_show(24 - 1 - 18, 41, 9)
    # a left drag in a side view scrubs through the slices under the mouse
    drag(qtbot, sagittal.graphics.viewport(), view_point(sagittal, 2.5, 41.5), view_point(sagittal, 20.5, 41.5), steps=8)
    views_show(24 - 1 - 20, 41, 9)
    # keys still scrub the depth slice; the side views' crosshair follows
    qtbot.keyClick(window, Qt.Key.Key_Right)
    views_show(4, 41, 9)
    # the wheel over a side view steps its own slices (the point), not the depth
    wheel(coronal.graphics, 120)
    views_show(4, 42, 9)
    wheel(sagittal.graphics, -240)
    views_show(4, 42, 7)
    assert window.errors == []


def test_each_view_at_true_aspect_with_its_letters(qtbot, window, volumes):
    volume = open_volume(qtbot, window, volumes["small"])
    ortho(window)
    for radiological, expected in ((True, RADIOLOGICAL), (False, NEUROLOGICAL)):
        window.actions_by_name["radiological" if radiological else "neurological"].trigger()
        assert window.session.radiological is radiological
        for view in window.views.views:
            row_mm, col_mm = view.plane.pixel_mm(volume)
            assert view.view.state["aspectLocked"] == pytest.approx(col_mm / row_mm)
            assert view.graphics.letters == expected[view.plane.name]
            assert view.graphics.title == view.plane.name
    coronal = window.views.side_views[0]
    assert coronal.plane.pixel_mm(volume) == pytest.approx((2.5, 0.9)), "coronal of an axial volume: depth down, columns across"
    # on screen, a voxel's width and height keep their proportions in mm
    a, b, c = (view_point(coronal, r, col) for r, col in ((0, 0), (0, 10), (10, 0)))
    assert (c.y() - a.y()) / (b.x() - a.x()) == pytest.approx(2.5 / 0.9, rel=0.05)


def test_side_views_show_views_of_the_one_tensor(qtbot, window, volumes):
    volume = open_volume(qtbot, window, volumes["small"])
    ortho(window)
    window.session.set_voxel(7, 30, 11)
    for view in window.views.views:
        np.testing.assert_array_equal(view.image.image, view.plane.image(volume, (7, 30, 11)))
    np.testing.assert_array_equal(window.views.side_views[1].image.image, data_of(volume)[::-1, :, 11])
    for view in window.views.views:  # each a window into the volume's tensor, not a copy
        assert np.shares_memory(view.image.image, volume.data.numpy())
    window.session.set_voxel(8, 31, 12)  # the tensor holds still: each view reads it again
    for view in window.views.views:
        np.testing.assert_array_equal(view.image.image, view.plane.image(volume, (8, 31, 12)))


def test_radiological_and_neurological_on_an_asymmetric_phantom(qtbot, window, tmp_path, monkeypatch, volumes):
    volume = open_volume(qtbot, window, volumes["marked"])
    view = window.views.depth_view
    width = volume.shape[2]

    def marker_columns() -> np.ndarray:
        return np.nonzero(view.image.image > MARKER_VALUE - 1)[1]

    def drawn_bright(row: int, col: int) -> bool:
        """Whether the view draws screen pixel (row, col) of its image white (the marker)."""
        frame = view.graphics.viewport().grab().toImage()
        return frame.pixelColor(view_point(view, row + 0.5, col + 0.5)).lightness() > 200

    assert window.session.radiological, "radiological by default"
    assert marker_columns().min() > width / 2, "the patient's left is on the screen's right"
    assert view.graphics.letters == ("A", "P", "R", "L")
    # hovering the marker reports its true voxel: its value is MARKER_VALUE + its x index
    rows, cols = np.nonzero(view.image.image > MARKER_VALUE - 1)
    row, col = int(rows[0]), int(cols[0])
    assert drawn_bright(row, col) and not drawn_bright(row, width - 1 - col), "drawn where the image has it"
    hover_view(qtbot, view, row, col)
    d, h, w = window.session.readout_voxel()
    value = float(volume.data[d, h, w, 0])
    assert value == view.image.image[row, col] and value - MARKER_VALUE == w < width / 2
    assert f"voxel ({d}, {h}, {w})" in window.status_line.readout.text() and f"value {value:.6g}" in window.status_line.readout.text()

    window.actions_by_name["neurological"].trigger()
    assert marker_columns().max() < width / 2, "neurological: the patient's left on the screen's left"
    assert drawn_bright(row, width - 1 - col) and not drawn_bright(row, col)
    assert view.graphics.letters == ("A", "P", "L", "R")
    hover_view(qtbot, view, row, width - 1 - col)  # the same voxel, now mirrored on screen
    assert window.session.readout_voxel() == (d, h, w)
    assert f"value {value:.6g}" in window.status_line.readout.text()
    again = make_window(qtbot, tmp_path, monkeypatch)  # remembered
    try:
        assert not again.session.radiological and again.actions_by_name["neurological"].isChecked()
        open_volume(qtbot, again, volumes["marked"])
        assert np.nonzero(again.views.depth_view.image.image > MARKER_VALUE - 1)[1].max() < width / 2
    finally:
        close(qtbot, again)
    window.actions_by_name["radiological"].trigger()
    assert marker_columns().min() > width / 2


def test_window_level_boxes_presets_and_right_drag(qtbot, window, volumes):
    from app.display import CT_PRESETS

    open_volume(qtbot, window, volumes["small"])
    ortho(window)
    display, session = window.views.display, window.session

    def all_views_at(levels) -> None:
        assert session.levels == pytest.approx(levels)
        for view in window.views.views:
            assert tuple(view.image.levels) == pytest.approx(levels)
        center, width = (levels[0] + levels[1]) / 2, levels[1] - levels[0]
        assert display.level.value() == pytest.approx(center, abs=0.05) and display.width.value() == pytest.approx(width, abs=0.05)

    def type_into(box, text: str) -> None:
        box.setFocus()
        box.selectAll()
        qtbot.keyClicks(box, text)
        qtbot.keyClick(box, Qt.Key.Key_Return)

    type_into(display.level, "100")
    type_into(display.width, "300")
    all_views_at((-50.0, 250.0))
    for i, name in enumerate(CT_PRESETS, start=1):
        window.actions_by_name[f"preset_{i}"].trigger()
        center, width = CT_PRESETS[name]
        all_views_at((center - width / 2, center + width / 2))
    window.actions_by_name["preset_1"].trigger()
    all_views_at((0.0, 80.0))  # brain 40 / 80
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.AltModifier)  # the keys, 1-5 being labels
    all_views_at((-600.0 - 750.0, -600.0 + 750.0))  # lung -600 / 1500
    assert window.session.labels == {}
    window.actions_by_name["preset_1"].trigger()
    histogram_levels = display.histogram.item.getLevels()
    assert tuple(histogram_levels) == pytest.approx((0.0, 80.0))

    # right drag on the image: to the right widens the window; up and down move the level
    view = window.views.depth_view
    viewport = view.graphics.viewport()

    def right_drag(dx: int, dy: int) -> tuple[float, float]:
        """(change of level, change of width) of a right drag by (dx, dy) pixels from the centre."""
        before = session.levels
        start = viewport.rect().center()
        drag(qtbot, viewport, start, start + QPoint(dx, dy), Qt.MouseButton.RightButton)
        (lo0, hi0), (lo1, hi1) = before, session.levels
        return (lo1 + hi1) / 2 - (lo0 + hi0) / 2, (hi1 - lo1) - (hi0 - lo0)

    moved, widened = right_drag(80, 0)
    assert widened > 0 and moved == pytest.approx(0, abs=1e-6)
    moved, widened = right_drag(-40, 0)
    assert widened < 0
    up, widened = right_drag(0, -60)
    assert up != 0 and widened == pytest.approx(0, abs=1e-6)
    down, _ = right_drag(0, 60)
    assert np.sign(down) == -np.sign(up)
    for other in window.views.views:
        assert tuple(other.image.levels) == pytest.approx(session.levels)
    assert session.index == 12 and session.point == (24, 20), "a right drag does not move the crosshair"


def test_letters_stay_inside_the_view_when_zoomed(qtbot, window, volumes):
    open_volume(qtbot, window, volumes["small"])
    ortho(window)
    qtbot.wait(50)  # the splitters lay the views out
    for view in window.views.views:
        before = view.graphics.letter_rects()
        view.view.scaleBy((0.02, 0.02))  # zoom in 50 times
        for _ in range(3):
            wheel(view.graphics, 120, Qt.KeyboardModifier.ControlModifier)
        qtbot.wait(10)
        rect = view.graphics.viewport().rect()
        for text, box, old in zip(view.graphics.letters, view.graphics.letter_rects(), before):
            assert text and rect.contains(box), (text, box, rect)
            assert box == old, "pinned to the view, not to the image"
        frame = view.graphics.viewport().grab().toImage()  # drawn there, over the zoomed image
        top = view.graphics.letter_rects()[0]
        assert any(frame.pixelColor(x, y).name() != frame.pixelColor(top.left(), top.top()).name()
                   for x in range(top.left(), top.right()) for y in range(top.top(), top.bottom())), "the top letter is drawn"
        double_click(qtbot, view.graphics.viewport(), view.graphics.viewport().rect().center())
    window.resize(900, 700)
    qtbot.wait(20)
    for view in window.views.views:
        for box in view.graphics.letter_rects():
            assert view.graphics.viewport().rect().contains(box)


def test_double_click_resets_the_zoom(qtbot, window, volumes):
    open_volume(qtbot, window, volumes["small"])
    view = window.views.depth_view
    home = np.array(view.view.viewRange())
    view.view.scaleBy((0.1, 0.1))
    assert not np.allclose(home, view.view.viewRange())
    double_click(qtbot, view.graphics.viewport(), view.graphics.viewport().rect().center())
    np.testing.assert_allclose(view.view.viewRange(), home, atol=1e-6)


def test_readout_follows_scrubbing_and_a_new_volume(qtbot, window, volumes):
    from app.status import readout_text

    volume = open_volume(qtbot, window, volumes["small"])
    view = window.views.depth_view
    hover_view(qtbot, view, 20, 10)
    w = 40 - 1 - 10
    assert window.status_line.readout.text() == readout_text(volume, 12, 20, w)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.status_line.readout.text() == readout_text(volume, 13, 20, w)
    assert f"value {float(volume.data[13, 20, w, 0]):.6g}" in window.status_line.readout.text()
    wheel(view.graphics, 240)
    assert window.current_slice() == 15
    assert window.status_line.readout.text() == readout_text(volume, 15, 20, w)
    qtbot.keyClick(window, Qt.Key.Key_End)
    assert window.status_line.readout.text() == readout_text(volume, 23, 20, w)
    old = window.status_line.readout.text()
    other = open_volume(qtbot, window, volumes["other"])
    assert window.status_line.readout.text() == readout_text(other, *window.session.crosshair()) != old
    assert window.session.crosshair() == (17 // 2, 32 // 2, 36 // 2)


def test_side_views_tint_the_depth_axis_by_the_followed_runs_scores(qtbot, window, volumes):
    """The score tint: each side view's strip along its depth axis holds the followed run's score
    per slice (in the view's own order), and two lines mark the scored range; off, no strip."""
    from tests.ui_helpers import run

    volume = open_volume(qtbot, window, volumes["small"])
    ortho(window)
    window.session.set_score_tint(True)
    prediction = run(qtbot, window, "slice")
    scores = prediction.scores[:, 0].astype(np.float32)
    for tint in window.views.tints:
        qtbot.waitUntil(lambda tint=tint: tint.strip.isVisible() and tint.strip.image is not None, timeout=2000)
        plane = tint.view.plane
        along = tint.strip.image.ravel()
        flipped = plane.flip_vertical if plane.vertical == 0 else plane.flip_horizontal
        np.testing.assert_allclose(along, scores[::-1] if flipped else scores, rtol=1e-6)
        assert len(along) == volume.depth
        assert all(line.isVisible() for line in tint.ends)
        assert sorted(line.value() for line in tint.ends) == [0, volume.depth]  # every slice scored
    window.session.set_score_tint(False)
    qtbot.waitUntil(lambda: not any(t.strip.isVisible() for t in window.views.tints), timeout=2000)
    assert all(line.isVisible() for t in window.views.tints for line in t.ends)  # the range stays marked
