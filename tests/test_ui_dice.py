"""Dice against a reference mask in the viewer: File › Load reference mask loads a label map on
the volume's grid, the score plot draws the followed segmentation run's per-slice Dice as a dashed
curve on a right-hand 0…1 axis (gaps where neither mask has voxels), the review panel gives the
overall Dice per class; a reference on another grid is refused with `check_grid`'s message."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.io import load_volume
from app.segmentation.dice import check_grid, dice_scores
from app.session import Session
from app.ui.views.dice_curve import dice_values
from tests.test_ui_mask import ball_map, finish_dense_run
from tests.ui_helpers import SIGNAL_TIMEOUT_MS, module_window, open_volume, write_nifti

pytestmark = pytest.mark.gui


def write_reference(source, path, shift: int = 1, level: float = 220.0):
    """A label map on ``source``'s grid: its ball above ``level`` HU, moved ``shift`` voxels along x
    (so Dice is high but not 1, and varies per slice)."""
    image = nib.load(source)
    labels = np.roll(np.asarray(image.dataobj) > level, shift, axis=0).astype(np.uint8)
    nib.save(nib.Nifti1Image(labels, image.affine), path)
    return path


@pytest.fixture(scope="module")
def shown(request, tmp_path_factory):
    """A window on write_nifti's volume with a finished one-class segmentation run (the ball)."""
    folder = tmp_path_factory.mktemp("ui_dice")
    path = write_nifti(folder / "small.nii.gz")
    with module_window(request, folder / "settings.ini") as (window, bot):
        volume = open_volume(bot, window, path)
        run = finish_dense_run(window.session, ball_map(volume.data.numpy()[..., 0]), job=301)
        yield {"window": window, "bot": bot, "volume": volume, "run": run, "folder": folder, "path": path}


def load_reference(bot, window, path):
    window.load_reference(path)
    bot.waitUntil(lambda: not window.reference_loader.busy, timeout=SIGNAL_TIMEOUT_MS)


def test_the_dice_curve_is_dice_scores_per_slice(shown):
    window, bot, volume, run = shown["window"], shown["bot"], shown["volume"], shown["run"]
    reference_path = write_reference(shown["path"], shown["folder"] / "reference.nii.gz")
    load_reference(bot, window, reference_path)
    assert window.errors == []
    expected = dice_scores(run.dense, check_grid(load_volume(reference_path, axis=volume.axis), volume))
    plot = window.score_plot
    (curve,) = plot.dice.curves
    xs, ys = curve.getData()
    np.testing.assert_array_equal(xs, plot.xs())
    np.testing.assert_array_equal(ys, dice_values(expected["ball"]["per_slice"]))
    assert curve.opts["pen"].color().name() == plot.colors[run], "dashed in its run's colour"
    assert np.isnan(ys).any() and np.isfinite(ys).sum() >= 3  # gaps where neither mask has voxels
    item = plot.getPlotItem()
    assert item.getAxis("right").isVisible() and item.getAxis("right").labelText == "Dice"
    assert item.getAxis("right").linkedView() is plot.dice.view
    low, high = plot.dice.view.viewRange()[1]
    assert low < 0 < 1 < high < 1.1
    overall = expected["ball"]["dice"]
    assert 0.5 < overall < 1
    assert window.review.dice.text() == f"ball {overall:.3f}"
    assert window.actions_by_name["clear_reference"].isEnabled()
    # the Dice view lies under the plot's own: a click on the plot still scrubs
    target = 5 if window.session.index != 5 else 6
    middle = sum(plot.vb.viewRange()[1]) / 2  # away from the threshold line (its own drag)
    point = plot.mapFromScene(plot.vb.mapViewToScene(QPointF(float(plot.xs()[target]), middle)))
    bot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert window.session.index == target
    window.grab().save(str(shown["folder"] / "dice_window.png"))


def test_a_reference_on_another_grid_is_refused(shown):
    window, bot = shown["window"], shown["bot"]
    load_reference(bot, window, write_reference(shown["path"], shown["folder"] / "reference.nii.gz"))
    before, curves = window.session.reference, list(window.score_plot.dice.curves)
    other = write_nifti(shown["folder"] / "other.nii.gz", depth=20)
    window.errors.clear()
    load_reference(bot, window, other)
    ((title, message),) = window.errors
    assert title == "Cannot use reference mask"
    assert "not on the grid" in message and "other.nii.gz" in message
    assert window.session.reference is before and window.score_plot.dice.curves == curves


def test_clearing_the_reference_removes_the_curve(shown):
    window, bot = shown["window"], shown["bot"]
    load_reference(bot, window, write_reference(shown["path"], shown["folder"] / "reference.nii.gz"))
    assert window.score_plot.dice.curves
    window.clear_reference()
    assert window.session.reference is None and window.score_plot.dice.curves == []
    assert not window.score_plot.getPlotItem().getAxis("right").isVisible()
    assert window.review.dice.text() == "–"
    assert not window.actions_by_name["clear_reference"].isEnabled()
    assert all("Dice" not in label.text for _, label in window.score_plot.legend.items)


def test_session_dice_is_cached_per_run_and_follows_the_reference(tmp_path):
    """Qt-free: computed once per finished map, recomputed for a new reference; none without one."""
    path = write_nifti(tmp_path / "small.nii.gz")
    volume = load_volume(path)
    session = Session()
    from app.display import display_range

    session.show_volume(volume, display_range(volume))
    run = finish_dense_run(session, ball_map(volume.data.numpy()[..., 0]), job=1)
    assert session.dice(run) is None
    seen = []
    session.events.reference.connect(seen.append)
    session.set_reference(load_volume(write_reference(path, tmp_path / "a.nii.gz", shift=1)))
    first = session.dice(run)
    assert session.dice(run) is first
    session.set_reference(load_volume(write_reference(path, tmp_path / "b.nii.gz", shift=3)))
    second = session.dice(run)
    assert second is not first and second["ball"]["dice"] < first["ball"]["dice"]
    session.set_reference(None)
    assert session.dice(run) is None and len(seen) == 3 and seen[-1] is None
