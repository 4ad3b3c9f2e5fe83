"""``slicewise review``: a three-case cohort scored by the built-in model, opened as a worklist;
cases open with their stored scores (the model is never called), Ctrl+→ / Ctrl+← step through
them, decisions are kept, and the adjudication view jumps to where readers disagree."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.io import load_volume
from app.review.readers import ReaderLabels
from app.review.results import load_results
from app.review.worklist import CohortReview
from tests.review_cohort import write_cohort
from tests.ui_helpers import close, make_window, wait_for


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, engine):
    return write_cohort(tmp_path_factory.mktemp("review") / "cohort", engine)


@pytest.fixture
def reviewing(qtbot, tmp_path, monkeypatch, cohort):
    """A window in review mode for reader alice; the engine's run refuses to be called."""
    from app.inference.engine import Engine
    from app.ui.review_mode import ReviewMode

    for path in [*cohort.parent.glob("*.labels*.csv"), *cohort.parent.glob("*.decisions.*.json")]:
        path.unlink()  # each test starts without readers
    calls = []
    monkeypatch.setattr(Engine, "run", lambda *args, **kwargs: calls.append(args) or pytest.fail("the model was called"))
    win = make_window(qtbot, tmp_path, monkeypatch)
    mode = ReviewMode(win, CohortReview(load_results(cohort), "alice"))
    qtbot.waitUntil(lambda: mode.worklist.cohort.text() != "")
    yield win, mode, calls
    close(qtbot, win)


def _open(qtbot, win, start):
    wait_for(qtbot, win, win.sigVolumeShown, start)
    qtbot.waitUntil(lambda: bool(win.session.finished_runs()))


def test_worklist_opens_a_case_with_its_stored_scores_and_no_model_call(qtbot, reviewing, cohort):
    win, mode, calls = reviewing
    results = load_results(cohort)
    table = mode.worklist.table
    assert mode.worklist.proxy.rowCount() == 3
    first = mode.worklist.visible_rows()[0]
    assert results.cases[first].max_slice == max(c.max_slice for c in results.cases), "most suspicious first"
    table.setFocus()
    table.selectRow(0)
    _open(qtbot, win, lambda: qtbot.keyClick(table, Qt.Key.Key_Return))
    (run,) = win.session.finished_runs()
    case = results.cases[first]
    np.testing.assert_array_equal(run.prediction.scores, results.predictions(case)[0].scores)
    assert str(win.session.volume.source) == case.name and run.prediction.strategy == "slice"
    assert calls == [] and win.inference.worker._engine is None, "no TensorFlow, no model: the scores came from the results"
    assert win.errors == []


def test_ctrl_arrows_step_through_the_cohort_and_decisions_are_kept(qtbot, reviewing):
    win, mode, _ = reviewing
    order = mode.worklist.visible_rows()
    seen = []
    for _ in range(3):
        _open(qtbot, win, lambda: qtbot.keyClick(win, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier))
        seen.append(mode.worklist.current)
    assert seen == order
    mode.worklist.note.setText("lesion on slice 6")
    qtbot.keyClick(win, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)  # reject
    decision = mode.review.status(order[2]).decision
    assert (decision.decision, decision.note, decision.reader) == ("reject", "lesion on slice 6", "alice")
    assert "reject (you)" in mode.worklist.model.index(order[2], mode.worklist.model.columns.index("decision")).data()
    _open(qtbot, win, lambda: qtbot.keyClick(win, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier))
    assert mode.worklist.current == order[1]
    win.session.label_slice("1", 4)  # labels go to the reader's own file
    assert ReaderLabels.for_reader(win.session.volume, "alice").labels == {4: "1"}
    mode.worklist.filter.setText(mode.review.case(order[0]).path.name)
    assert mode.worklist.proxy.rowCount() == 1


def test_adjudication_lists_disagreements_and_jumps_to_the_slice(qtbot, reviewing, cohort):
    win, mode, _ = reviewing
    case = mode.review.case(1)
    volume = load_volume(case.path)
    ReaderLabels.for_reader(volume, "bob").update({3: "1", 5: "0"})
    ReaderLabels.for_reader(volume, "carol").update({3: "0", 5: "0"})
    mode.review.refresh()
    mode.tabs.setCurrentWidget(mode.adjudication)
    tree = mode.adjudication.list
    assert tree.topLevelItemCount() == 1 and tree.topLevelItem(0).text(1) == "slice 3"
    _open(qtbot, win, lambda: mode.adjudication._jump(tree.topLevelItem(0)))
    assert mode.worklist.current == 1 and win.session.index == 3
    column = mode.worklist.model.columns.index("κ")
    assert mode.worklist.model.index(1, column).data() == "0.00"  # bob and carol: 1 of 2 slices alike, κ 0
    mode.dock.grab().save(str(cohort.parent / "adjudication.png"))


def test_a_segmentation_cohorts_case_opens_with_its_mask(qtbot, tmp_path, monkeypatch, engine):
    """A cohort of ``--model builtin:lesion`` keeps each volume's mask (the sidecar names it): the
    case opens with the mask on its views and its volume in the legend, the model never called."""
    import json

    import nibabel as nib

    from app import export
    from app.inference.engine import Engine
    from app.phantom import make_phantom
    from app.segmentation.mask_export import write_mask
    from app.strategies import get_strategy
    from app.ui.review_mode import ReviewMode

    path = tmp_path / "case.nii.gz"
    nib.save(make_phantom(seed=30_001, depth=24, size=64, lesions=2).image, path)
    volume = load_volume(path)
    prediction = engine.run(volume, get_strategy("slice"), engine.load("builtin:lesion"))
    out = export.write_predictions(tmp_path / "lesions.csv", [(volume, prediction)])[0]
    (tmp_path / "masks").mkdir()
    write_mask(tmp_path / "masks" / "case.nii.gz", volume, prediction.dense)
    sidecar = json.loads(export.sidecar_path(out).read_text())
    sidecar["volumes"][0]["mask"] = "masks/case.nii.gz"  # as a cohort's report names it
    export.sidecar_path(out).write_text(json.dumps(sidecar))
    expected = prediction.dense.label_map()
    assert expected.any()

    monkeypatch.setattr(Engine, "run", lambda *args, **kwargs: pytest.fail("the model was called"))
    win = make_window(qtbot, tmp_path, monkeypatch)
    try:
        mode = ReviewMode(win, CohortReview(load_results(out), "alice"))
        _open(qtbot, win, lambda: mode.open_case(0))
        (run,) = win.session.finished_runs()
        assert run.dense is not None and run.unit == "mm²" and run.key.model == "builtin:lesion"
        np.testing.assert_array_equal(run.dense.label_map(), expected)
        win.session.set_slice(int(np.argmax(expected.sum(axis=(1, 2)))))
        qtbot.waitUntil(lambda: len(win.views.mask_legend.lines()) == 2)
        assert win.views.mask_legend.lines()[1].startswith("lesion ")
        assert win.errors == []
    finally:
        close(qtbot, win)
