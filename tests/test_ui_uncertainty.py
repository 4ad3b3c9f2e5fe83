"""The viewer with an uncertainty method: the picker, the band around the curve, U and the spread in the review panel."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from tests.ui_helpers import SIGNAL_TIMEOUT_MS, open_volume, run, slow_worker


def _dropout_model(path):
    """Any slice size: convolution, mean, dropout, a sigmoid score."""
    import keras

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
         keras.layers.Dropout(0.5), keras.layers.Dense(1, activation="sigmoid")]
    )
    model.save(path)
    return path


def test_mc_dropout_run_draws_a_band_and_u_goes_to_the_most_uncertain_slice(qtbot, window, tmp_path, monkeypatch):
    from app.phantom import write_demo

    image, _ = write_demo(tmp_path, seed=3, depth=40)
    open_volume(qtbot, window, image)
    window.set_model(_dropout_model(tmp_path / "drop.keras"), check=False)
    monkeypatch.setattr(window.dialogs, "ask_int", lambda *args: 12)
    window.actions_by_name["uncertainty_mc-dropout"].trigger()  # Model › Uncertainty › MC dropout…, 12 passes
    assert window.session.settings.uncertainty == "mc-dropout:12"
    assert window.actions_by_name["uncertainty_mc-dropout"].isChecked()
    prediction = run(qtbot, window, "slice")
    assert prediction.spread is not None and prediction.uncertainty["n"] == 12
    scored = window.session.runs[-1]
    assert "MC dropout ×12" in scored.title
    bands = window.score_plot.bands[scored]
    assert len(bands) == 1 and not bands[0].path().isEmpty()
    top = bands[0].path().boundingRect()
    assert top.top() <= float(np.nanmin(prediction.scores - prediction.spread)) + 1e-6
    window.set_slice(0)
    qtbot.keyClick(window, Qt.Key.Key_U)
    expected = int(np.nanargmax(prediction.spread[:, 0]))
    assert window.current_slice() == expected
    assert f"slice {expected} spreads most" in window.statusBar().currentMessage()
    assert window.review.spread.text().startswith("mean sd ")
    window.score_plot.grab().save(str(tmp_path / "band.png"))
    window.score_plot.grab().save("/tmp/uncertainty_band.png")
    assert window.errors == []

    window.actions_by_name["uncertainty_none"].trigger()
    assert window.session.settings.uncertainty is None
    plain = run(qtbot, window, "slice")
    assert plain.spread is None and window.score_plot.bands[window.session.runs[-1]] == []
    window.set_slice(0)
    qtbot.keyClick(window, Qt.Key.Key_U)  # the newest run has no spread: stay, and say so
    assert window.current_slice() == 0 and "uncertainty method" in window.statusBar().currentMessage()


def test_the_band_grows_while_the_run_streams(qtbot, window, tmp_path):
    """Each batch brings its slices' sd with their mean: the band is drawn before the run ends."""
    from app.phantom import write_demo

    image, _ = write_demo(tmp_path, seed=4, depth=40)
    open_volume(qtbot, window, image)
    window.set_model(_dropout_model(tmp_path / "drop.keras"), check=False)
    window.session.update_settings(uncertainty="mc-dropout:6", batch_size=8)
    slow_worker(window, 0.25)  # five batches, each handed on a quarter of a second apart
    window.set_strategy("slice")
    window.run_prediction()
    qtbot.waitUntil(lambda: bool(window.session.runs) and window.session.runs[-1].spread is not None, timeout=SIGNAL_TIMEOUT_MS)
    streaming = window.session.runs[-1]
    qtbot.waitUntil(lambda: bool(window.score_plot.bands.get(streaming)) and not window.score_plot.bands[streaming][0].path().isEmpty(), timeout=SIGNAL_TIMEOUT_MS)
    assert not streaming.finished, "the band came with the batches, not with the run's end"
    scored = np.isfinite(streaming.scores[:, 0])
    assert 0 < scored.sum() < streaming.depth and np.isfinite(streaming.spread[scored]).all() and np.isnan(streaming.spread[~scored]).all()
    window.score_plot.grab().save(str(tmp_path / "band_streaming.png"))
    qtbot.waitUntil(lambda: streaming.finished, timeout=SIGNAL_TIMEOUT_MS)
    np.testing.assert_array_equal(streaming.spread, streaming.prediction.spread)
    assert window.errors == []


def test_a_model_without_dropout_is_refused_in_a_dialog(qtbot, window, tmp_path, monkeypatch):
    from app.phantom import write_demo

    image, _ = write_demo(tmp_path, seed=1, depth=12)
    open_volume(qtbot, window, image)
    monkeypatch.setattr(window.dialogs, "ask_int", lambda *args: 5)
    window.actions_by_name["uncertainty_mc-dropout"].trigger()
    count = len(window.errors)
    window.run_prediction()  # the built-in model has no dropout layer
    qtbot.waitUntil(lambda: len(window.errors) > count, timeout=60_000)
    assert "dropout" in window.errors[-1][1]


def test_picker_stores_tta_and_ensemble_and_refuses_a_bad_augmentation(window, monkeypatch, tmp_path):
    monkeypatch.setattr(window.dialogs, "ask_text", lambda *args: "flip-ap,shift:2")
    window.actions_by_name["uncertainty_tta"].trigger()
    assert window.session.settings.uncertainty == "tta:flip-ap,shift:2"
    assert window.session.settings.run_title().endswith("TTA flip-ap+shift:2")
    monkeypatch.setattr(window.dialogs, "ask_text", lambda *args: "rotate:90")
    window.actions_by_name["uncertainty_tta"].trigger()
    assert window.session.settings.uncertainty == "tta:flip-ap,shift:2"  # kept, with a dialog saying why
    assert "augmentation" in window.errors[-1][1] and window.actions_by_name["uncertainty_tta"].isChecked()
    paths = [str(tmp_path / "a.keras"), str(tmp_path / "b.keras")]
    monkeypatch.setattr(window.dialogs, "open_files", lambda *args: paths)
    window.actions_by_name["uncertainty_ensemble"].trigger()
    assert window.session.settings.uncertainty == "ensemble:" + ",".join(paths)
    assert window.session.settings.run_key() != window.session.update_settings(uncertainty=None).run_key()
