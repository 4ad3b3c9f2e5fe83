"""`app.session.Session` and `app.runs` without Qt: each change announced once, slices clamped,
runs replaced only by a finished re-run, runs kept per way of slicing a file, regions above the
threshold, the readout voxel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.display import CT_PRESETS, display_range
from app.prediction import Prediction
from app.runs import RunKey, next_region, regions_above
from app.session import Session
from tests.ui_helpers import write_nifti


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> dict[str, object]:
    from app.io import load_volume

    folder = tmp_path_factory.mktemp("session")
    small = write_nifti(folder / "small.nii.gz", depth=10, height=14, width=12)
    other = write_nifti(folder / "other.nii.gz", depth=7, height=9, width=8, seed=3)
    return {
        "axial": load_volume(small, axis="axial"),
        "axial_again": load_volume(small, axis="axial"),
        "coronal": load_volume(small, axis="coronal"),
        "other": load_volume(other, axis="axial"),
    }


def show(session: Session, volume, focus_mm=None) -> None:
    session.show_volume(volume, display_range(volume), focus_mm)


class Recorder:
    """Every emission of every session event, as (event name, args)."""

    def __init__(self, session: Session):
        self.seen: list[tuple[str, tuple]] = []
        for name, event in vars(session.events).items():
            event.connect(lambda *args, name=name: self.seen.append((name, args)))

    def names(self) -> list[str]:
        return [name for name, _ in self.seen]

    def clear(self) -> None:
        self.seen.clear()


def prediction_for(volume, strategy: str = "slice", value: float = 0.5) -> Prediction:
    scores = np.full((volume.depth, 1), value, dtype=np.float32)
    return Prediction(scores, None, strategy, "built-in:" + strategy, "", "none", "CPU", 32)


def finished_run(session: Session, job: int, volume, **settings):
    if settings:
        session.update_settings(**settings)
    run = session.begin_run(job)
    session.finish_run(run, prediction_for(volume, session.settings.strategy))
    return run


@pytest.fixture
def session(volumes) -> Session:
    s = Session()
    show(s, volumes["axial"])
    return s


def test_each_change_is_announced_once_and_repeats_are_silent(session, volumes):
    seen = Recorder(session)
    calls = [
        (["slice", "crosshair"], lambda: session.set_slice(3)),
        (["crosshair"], lambda: session.set_point(2, 4)),
        (["levels"], lambda: session.set_levels(-10, 90)),
        (["colormap"], lambda: session.set_colormap("viridis")),
        (["radiological"], lambda: session.set_radiological(False)),
        (["layout"], lambda: session.set_layout("ortho")),
        (["settings"], lambda: session.update_settings(batch_size=8)),
        (["threshold"], lambda: session.set_threshold(0.7)),
        (["pointer"], lambda: session.set_pointer((0, (3, 2, 4)))),
    ]
    for names, call in calls:
        seen.clear()
        call()
        assert seen.names() == names, names
        seen.clear()
        call()  # the same value again: nothing changed, nothing said
        assert seen.names() == [], names
    assert session.index == 3 and session.point == (2, 4) and session.levels == (-10.0, 90.0)
    assert session.settings.batch_size == 8 and session.layout == "ortho" and not session.radiological
    seen.clear()
    session.set_voxel(3, 2, 4)  # already there
    assert seen.names() == []
    session.set_voxel(5, 2, 4)
    assert seen.names() == ["slice", "crosshair"]
    seen.clear()
    session.set_voxel(6, 7, 8)  # slice and point: the crosshair is announced once, after both moved
    assert seen.names() == ["slice", "crosshair"] and seen.seen[-1] == ("crosshair", ((6, 7, 8),))
    session.set_voxel(5, 2, 4)
    seen.clear()
    session.label_slice("1")
    session.label_slice("1")
    assert seen.names() == ["labels"] and session.labels == {5: "1"}
    session.label_slice(None)
    session.label_slice(None)
    assert seen.names() == ["labels", "labels"] and session.labels == {}
    with pytest.raises(ValueError, match="unknown layout"):
        session.set_layout("grid")


def test_set_slice_clamps_and_says_where_it_went(session, volumes):
    depth = volumes["axial"].depth
    assert session.index == depth // 2
    assert session.set_slice(-5) == 0 and session.index == 0
    assert session.set_slice(10_000) == depth - 1 and session.index == depth - 1
    assert session.step_slice(-3) == depth - 4
    assert session.first_slice() == 0 and session.last_slice() == depth - 1
    session.set_point(-4, 999)
    assert session.point == (0, volumes["axial"].shape[2] - 1)
    assert Session().set_slice(4) == 0  # no volume: nothing to move


def test_levels_presets_and_windows(session):
    session.apply_preset("brain")
    center, width = CT_PRESETS["brain"]
    assert session.levels == (center - width / 2, center + width / 2) == (0.0, 80.0)
    session.set_window(100, 0)  # a zero width is widened, never inverted
    low, high = session.levels
    assert high > low and (low + high) / 2 == pytest.approx(100)
    session.set_levels(5, 5)
    assert session.levels[1] > session.levels[0] == 5


def test_a_rerun_replaces_the_finished_run_only_when_it_finishes(session, volumes):
    volume = volumes["axial"]
    first = finished_run(session, 1, volume)
    seen = Recorder(session)
    again = session.begin_run(2)
    assert again.key == first.key and session.runs == [first, again]
    assert session.finished_runs() == [first] and session.run_for_job(2) is again
    session.add_scores(again, np.array([0, 1]), np.array([0.2, 0.9]))
    assert again.scores.shape == (volume.depth, 1) and np.isnan(again.scores[2:]).all()
    seen.clear()
    session.finish_run(again, prediction_for(volume, value=0.9))
    assert session.runs == [again] and again.finished
    assert seen.seen == [("runs", (first, "removed")), ("runs", (again, "finished"))]
    # another strategy is another run: both stay
    other = finished_run(session, 3, volume, strategy="temporal")
    assert session.runs == [again, other] and other.key == RunKey("temporal")


def test_removing_a_pending_rerun_keeps_the_finished_one(session, volumes):
    first = finished_run(session, 1, volumes["axial"])
    pending = session.begin_run(2)
    session.set_follow(first)
    session.remove_run(pending)
    assert session.runs == [first] and session.follow is first
    session.remove_run(first)
    assert session.runs == [] and session.follow is None
    # clear_runs keeps a run that is still scoring
    finished_run(session, 3, volumes["axial"])
    scoring = session.begin_run(4)
    session.clear_runs()
    assert session.runs == [scoring]


def test_run_keys_tell_settings_apart(session):
    base = session.settings.run_key()
    assert base == RunKey("slice", None, None, None, ())
    session.update_settings(model_path="/models/m.keras", normalize="zscore", slab=5)
    key = session.settings.run_key()
    assert key != base and key.options == (("slab", 5),)
    assert session.settings.run_title() == "slice · m.keras · zscore · slab 5"
    session.update_settings(batch_size=4)  # how fast, not what: the same run
    assert session.settings.run_key() == key


def test_runs_stay_with_the_way_a_file_was_sliced(volumes):
    session = Session()
    show(session, volumes["axial"])
    axial_run = finished_run(session, 1, volumes["axial"])
    pending = session.begin_run(2, session.settings)  # still scoring when the view changes: dropped
    assert pending in session.runs
    seen = Recorder(session)
    show(session, volumes["coronal"], session.focus_mm())
    assert session.runs == [] and session.volume is volumes["coronal"]
    coronal_run = finished_run(session, 3, volumes["coronal"], strategy="temporal")
    show(session, volumes["other"])
    assert session.runs == []
    seen.clear()
    show(session, volumes["axial_again"])  # the same file, re-read: its axial runs come back
    assert session.runs == [axial_run]
    assert ("runs", (axial_run, "added")) in seen.seen
    show(session, volumes["coronal"])
    assert session.runs == [coronal_run]


def test_show_volume_picks_the_slice(volumes):
    session = Session()
    axial, coronal = volumes["axial"], volumes["coronal"]
    show(session, axial)
    assert session.index == axial.depth // 2
    _, height, width, _ = axial.shape
    assert session.point == (height // 2, width // 2)
    session.set_slice(2)
    show(session, volumes["axial_again"])  # the same file reloaded the same way: same slice
    assert session.index == 2
    session.set_point(3, 4)
    focus = session.focus_mm()
    np.testing.assert_allclose(focus, axial.world(2, 3, 4))
    show(session, coronal, focus)  # re-sliced: the slice through the crosshair's world point
    positions = coronal.positions_mm
    assert abs(positions[session.index] - focus[coronal.depth_world_axis]) <= coronal.spacing[0] / 2 + 1e-6
    show(session, volumes["other"])
    assert session.index == volumes["other"].depth // 2 and session.labels == {}


def test_readout_follows_the_slice_under_a_still_mouse(session):
    assert session.readout_voxel() == session.crosshair()
    session.set_pointer((0, (session.index, 2, 3)))  # the mouse over the depth view
    session.set_slice(1)
    assert session.readout_voxel() == (1, 2, 3)  # scrubbing: same row and column, the new slice
    session.set_point(6, 7)
    assert session.readout_voxel() == (1, 2, 3)  # the point moves the side views, not this plane
    session.set_pointer((1, (4, 6, 5)))  # over the view that holds the row fixed
    session.set_point(9, 7)
    assert session.readout_voxel() == (4, 9, 5)
    session.set_pointer(None)
    assert session.readout_voxel() == (1, 9, 7) == session.crosshair()
    assert Session().readout_voxel() is None


def test_regions_above_and_next_region():
    values = np.array([0.1, 0.6, 0.7, 0.2, 0.9, np.nan, 0.8, 0.8], dtype=np.float32)
    assert regions_above(values, 0.5) == [(1, 2), (4, 4), (6, 7)]
    assert regions_above(values, 0.95) == []
    assert regions_above(np.full(3, np.nan), 0.5) == []
    assert next_region(values, 0.5, 0, +1) == (1, 2)
    assert next_region(values, 0.5, 1, +1) == (4, 4)
    assert next_region(values, 0.5, 4, +1) == (6, 7)
    assert next_region(values, 0.5, 6, +1) is None
    assert next_region(values, 0.5, 7, -1) == (6, 7)  # inside a region: back to its start first
    assert next_region(values, 0.5, 6, -1) == (4, 4)
    assert next_region(values, 0.5, 1, -1) is None


def test_jump_to_region_follows_the_chosen_run(session, volumes):
    volume = volumes["axial"]
    assert session.jump_to_region(+1) is None
    messages = []
    session.events.message.connect(messages.append)
    a = session.begin_run(1)
    scores_a = np.zeros((volume.depth, 1), np.float32)
    scores_a[[2, 3, 7], 0] = 0.9
    session.finish_run(a, Prediction(scores_a, None, "slice", "built-in", "", "none", "CPU", 32))
    session.update_settings(strategy="temporal")
    b = session.begin_run(2)
    scores_b = np.zeros((volume.depth, 1), np.float32)
    scores_b[[5], 0] = 0.9
    session.finish_run(b, Prediction(scores_b, None, "temporal", "built-in", "", "none", "CPU", 32))
    session.set_slice(0)
    assert session.followed_run() is b  # the newest finished run
    assert session.jump_to_region(+1) == (5, 5) and session.index == 5
    session.set_follow(a)
    session.set_slice(0)
    assert session.jump_to_region(+1) == (2, 3) and session.index == 2
    assert session.jump_to_region(+1) == (7, 7) and session.index == 7
    assert session.jump_to_region(+1) is None and session.index == 7
    assert "No region after slice 7" in messages[-1]
    assert session.jump_to_region(-1) == (2, 3)
    session.set_run_visible(b, False)
    session.set_follow(None)
    assert session.followed_run() is a  # a hidden run is not followed by default


def test_saliency_maps_are_kept_per_model_and_slice(session, volumes):
    from app.session import SaliencyMap

    found = SaliencyMap(np.zeros(volumes["axial"].shape[1:3], np.float32), "gradient × input")
    seen = Recorder(session)
    session.store_saliency(session.saliency_key(), 4, found)
    assert seen.seen == [("saliency", (4, found))]
    assert session.saliency_map(4) is found and session.saliency_map(3) is None
    session.update_settings(strategy="temporal")  # another model: its own maps
    assert session.saliency_map(4) is None
    session.set_saliency(opacity=3.0)
    assert session.saliency_opacity == 1.0


def test_show_volume_sets_levels_from_the_display_range(volumes):
    session = Session()
    seen = Recorder(session)
    volume = volumes["axial"]
    show(session, volume)
    assert session.levels == display_range(volume).levels
    names = seen.names()
    for name in ("volume", "levels", "slice", "crosshair", "pointer", "follow"):
        assert names.count(name) == 1, name
    assert names[0] == "volume"


def test_volume_summary_names_file_and_shape(volumes):
    from app.status import readout_text, slice_text, volume_summary

    volume = volumes["axial"]
    assert volume_summary(volume).startswith(f"{Path(volume.source).name}: 10 axial slices")
    assert slice_text(volume, 3).startswith("slice 3 / 9")
    x, y, z = volume.world(3, 4, 5)
    assert readout_text(volume, 3, 4, 5) == (
        f"voxel (3, 4, 5)  ·  ({x:.1f}, {y:.1f}, {z:.1f}) mm  ·  value {float(volume.data[3, 4, 5, 0]):.6g}"
    )


def test_mask_overlay_settings_are_announced_once_and_checked(session):
    from app.session import MASK_MODES, MaskOverlay

    assert session.mask == MaskOverlay() and session.mask.on and session.mask.mode == MASK_MODES[0]
    seen = Recorder(session)
    assert session.toggle_mask() is False
    session.set_mask(mode="outline", opacity=1.7)  # clamped
    session.set_mask(mode="outline")  # no change: silent
    assert session.mask == MaskOverlay(on=False, mode="outline", opacity=1.0)
    assert seen.seen == [("mask", (MaskOverlay(on=False),)), ("mask", (session.mask,))]
    with pytest.raises(ValueError, match="unknown mask mode 'contour'"):
        session.set_mask(mode="contour")
    session.set_mask(on=True, opacity=-1)
    assert session.mask.on and session.mask.opacity == 0.0


def test_a_streamed_map_fills_the_run_and_the_finished_map_replaces_it(session, volumes):
    """The engine's map, filling, is adopted at its first slices (a 3-class softmax with class 0
    the background); the legend's volumes count the mask's voxels; the prediction's map wins."""
    from app.segmentation.dense_map import DenseMap

    volume = volumes["axial"]
    depth, height, width, _ = volume.shape
    classifier = finished_run(session, 1, volume)
    run = session.begin_run(2, replace(session.settings, strategy="temporal"))
    assert session.mask_run() is None and classifier.dense is None
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(depth, height, width, 3)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=3, keepdims=True)
    seen = Recorder(session)
    streaming = DenseMap.empty((depth, height, width, 3), "softmax", ("0", "1", "2"), background=0)
    streaming.put(np.array([2, 3]), probabilities[2:4])  # as the engine stores a batch's slices
    session.add_map(run, np.array([2, 3]), streaming)
    assert seen.names() == ["dense"] and seen.seen[0][1][0] is run
    dense = run.dense
    assert dense is streaming and dense.probabilities.shape == (depth, height, width, 3) and dense.kind == "softmax" and dense.background == 0
    assert dense.filled.tolist() == [d in (2, 3) for d in range(depth)]
    np.testing.assert_array_equal(dense.probabilities[2:4], np.rint(probabilities[2:4] * 255).astype(np.uint8))
    assert session.mask_run() is run  # the newest run with a map, while it streams
    winner = dense.probabilities[2:4].argmax(axis=3)  # the stored (uint8) map's argmax, as `DenseMap.masks` takes it
    voxel_mm3 = float(np.prod(volume.spacing))
    assert run.volumes_ml(voxel_mm3) == [(str(k), pytest.approx((winner == k).sum() * voxel_mm3 / 1000)) for k in (1, 2)]

    final = DenseMap.empty((depth, height, width, 1), "sigmoid", ("lesion",), threshold=0.5)
    final.probabilities[4, :5, :6, 0] = 200  # 30 voxels at p ≈ 0.78
    final.probabilities[5, :2, :2, 0] = 100  # under the threshold
    prediction = replace(prediction_for(volume, "temporal"), dense=final, reduce="area", unit="mm²")
    session.finish_run(run, prediction)
    assert run.dense is final and run.unit == "mm²" and classifier.unit == ""
    assert run.volumes_ml(voxel_mm3) == [("lesion", pytest.approx(30 * voxel_mm3 / 1000))]
    session.set_follow(classifier)  # a followed run without a map: the newest run with one is shown
    assert session.mask_run() is run
    session.set_run_visible(run, False)
    assert session.mask_run() is None


@pytest.mark.parametrize(("kind", "count", "background"), [("sigmoid", 2, None), ("softmax", 3, 0), ("softmax", 2, 1)])
def test_mask_voxels_count_the_masks_dense_map_defines(kind, count, background):
    """Counted a class at a time over runs of slices, the same as `DenseMap.masks` (softmax ties
    to the lower class, as argmax), for consecutive and scattered slices."""
    from app.runs import mask_voxels
    from app.segmentation.dense_map import DenseMap

    rng = np.random.default_rng(count)
    values = rng.integers(0, 8, size=(40, 9, 7, count)).astype(np.uint8) * 36  # many ties
    dense = DenseMap(values, kind, tuple("abc"[:count]), background=background)
    expected = dense.masks(slice(None)).sum(axis=(1, 2))
    for indices in (np.arange(40), np.array([5, 2, 30, 31, 32, 39])):
        np.testing.assert_array_equal(mask_voxels(dense, indices), expected[indices])
