"""Bad input in the window: every broken or hostile file, a model that does not fit and a failed
export each give a dialog that says what and why, and the open volume and its finished scores
stay as they were."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers
from PySide6.QtWidgets import QFileDialog

from tests.bad_inputs import EXPECTED, MARKER, lambda_model, write_corpus
from tests.ui_helpers import SIGNAL_TIMEOUT_MS, open_volume, run, write_nifti

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


@pytest.fixture
def scored(qtbot, window, tmp_path):
    """The window with a volume open, scored by the slice strategy, on slice 5."""
    volume = open_volume(qtbot, window, write_nifti(tmp_path / "good.nii.gz"))
    prediction = run(qtbot, window, "slice")
    window.set_slice(5)
    return window, volume, prediction


def assert_kept(window, volume, prediction) -> None:
    assert window.volume is volume and window.session.volume is volume
    assert window.windowTitle() == "Slicewise — good.nii.gz"
    assert window.current_slice() == 5 and window.scrubber.slider.value() == 5
    assert [r.prediction for r in window.session.runs] == [prediction]
    assert [r.prediction for r in window.score_plot.curves] == [prediction]
    assert window.views.stack.currentWidget() is not window.views.placeholder


def wait_for_dialog(qtbot, window, count: int) -> tuple[str, str]:
    qtbot.waitUntil(lambda: len(window.errors) == count + 1, timeout=SIGNAL_TIMEOUT_MS)
    return window.errors[-1]


def test_every_bad_file_gives_a_dialog_and_keeps_what_was_open(qtbot, scored, corpus):
    window, volume, prediction = scored
    folder, paths = corpus
    for item, reason in EXPECTED.items():
        if reason is None:
            continue
        count = len(window.errors)
        window.open_path(paths[item])
        title, text = wait_for_dialog(qtbot, window, count)
        assert title == "Cannot open volume", (item, text)
        assert paths[item].name in text and "Traceback" not in text, (item, text)
        assert_kept(window, volume, prediction)
    assert not (folder / MARKER).exists(), "a hostile file ran its payload"


def test_nan_voxels_are_reported_when_opened_and_when_scored(qtbot, window, corpus, tmp_path):
    _, paths = corpus
    open_volume(qtbot, window, paths["nan_inf_voxels"])
    assert "NaN/Inf voxels in 2 of 10 slices (3, 7)" in window.statusBar().currentMessage()
    window.set_slice(3)
    window.grab().save(str(tmp_path / "nan_slice.png"))  # look: the NaN voxel is a gap, the rest drawn
    prediction = run(qtbot, window, "slice")
    assert prediction.nonfinite_slices == [3, 7]
    assert "2 slices with NaN/Inf voxels left unscored" in window.statusBar().currentMessage()
    _, ys = window.score_plot.curves[window.session.runs[-1]][0].getData()
    assert np.isnan(ys[[3, 7]]).all() and np.isfinite(np.delete(ys, [3, 7])).all()


def test_model_that_does_not_fit_keeps_the_finished_scores(qtbot, scored, tmp_path):
    window, volume, prediction = scored
    inputs = keras.Input((4, 8, 8, 1))  # a 3D-volume model: no strategy gives it one slice
    keras.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling3D()(inputs))).save(tmp_path / "volume_model.keras")
    window.set_model(tmp_path / "volume_model.keras")
    qtbot.wait(50)
    assert not window.errors, "a model of another shape loads; it fails when run on a volume"
    count = len(window.errors)
    window.run_prediction()
    title, text = wait_for_dialog(qtbot, window, count)
    assert title == "Prediction failed"
    assert "volume_model.keras (input (4, 8, 8, 1)) does not fit the volume 24×48×40×1" in text
    assert_kept(window, volume, prediction)


def test_hostile_model_is_refused_without_running(qtbot, scored, tmp_path):
    window, volume, prediction = scored
    marker = tmp_path / "payload_ran"
    lambda_model(marker, (48, 40, 1)).save(tmp_path / "hostile.keras")
    marker.unlink(missing_ok=True)
    count = len(window.errors)
    window.set_model(tmp_path / "hostile.keras")
    title, text = wait_for_dialog(qtbot, window, count)
    assert title == "Cannot load model" and "hostile.keras: refused by safe mode" in text and "Lambda" in text
    assert window.session.settings.model_path is None and window.actions_by_name["builtin"].isChecked()
    assert not marker.exists()
    assert_kept(window, volume, prediction)


def test_failed_export_keeps_the_earlier_file(qtbot, scored, tmp_path, monkeypatch):
    window, volume, prediction = scored
    earlier = tmp_path / "scores.csv"
    earlier.write_text("earlier results\n")
    for target in (tmp_path / "missing_folder" / "scores.csv", tmp_path):  # no such folder; a folder, not a file
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, target=target, **kwargs: (str(target), "")))
        count = len(window.errors)
        window.export_predictions_dialog()
        title, text = wait_for_dialog(qtbot, window, count)
        assert title == "Cannot export predictions" and str(target) in text
    assert earlier.read_text() == "earlier results\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert_kept(window, volume, prediction)


def test_a_decoder_crash_gives_a_dialog_and_keeps_what_was_open(qtbot, scored, monkeypatch):
    """The JPEG 2000 decoder dies by a signal (on purpose, through the pool's test hook): the
    window names the file and the crash, and the open volume, its scores and labels stay."""
    from app.io import decode_pool
    from tests.damaged_dicom import BASES, base_path

    window, volume, prediction = scored
    window.session.set_labels({2: "1", 5: "0"})
    pool = decode_pool.get_pool()
    monkeypatch.setattr(pool, "hook", "segv")
    count = len(window.errors)
    window.open_path(base_path(BASES["j2k"]))
    title, text = wait_for_dialog(qtbot, window, count)
    assert title == "Cannot open volume"
    assert "MR_small_jp2klossless.dcm: the JPEG 2000 decoder crashed on frame 1 (signal 11): the file is damaged" in text
    assert window.skippable is None  # one file: nothing to skip
    assert_kept(window, volume, prediction)
    assert window.session.labels == {2: "1", 5: "0"}
    window.grab().save("/tmp/decoder_crash.png")


def test_a_damaged_series_offers_to_load_without_its_damaged_files(qtbot, scored, tmp_path, monkeypatch):
    """The dialog names the damaged file; its Retry button opens the other slices."""
    from PySide6.QtWidgets import QMessageBox

    from tests.damaged_dicom import write_damaged_series

    window, volume, prediction = scored
    folder, paths = write_damaged_series(tmp_path / "series")

    def critical(parent, title, text, buttons=None, default=None):
        window.errors.append((title, text))
        return QMessageBox.StandardButton.Close if buttons is None else QMessageBox.StandardButton.Retry  # the user picks Retry

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(critical))
    count = len(window.errors)
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as shown_signal:  # after the error and the retry
        window.open_path(folder)
    (shown,) = shown_signal.args
    title, text = window.errors[count]
    assert title == "Cannot open volume"
    assert f"series/{paths[3].name}: cannot decode JPEG 2000 pixel data (frame 1)" in text and "Retry: load the series without its damaged files" in text
    assert shown.depth == 5 and shown.source == folder and window.volume is shown
    assert any(f"skipped 1 damaged files ({paths[3].name})" in w for w in shown.warnings)
    window.grab().save("/tmp/skipped_damaged.png")
    with qtbot.waitSignal(window.sigVolumeShown, timeout=SIGNAL_TIMEOUT_MS) as resliced:  # another axis: loaded the same way
        window.scrubber.sigAxisRequested.emit("coronal")
    assert resliced.args[0].axis == "coronal" and sorted(resliced.args[0].shape[:3]) == [5, 36, 40]
