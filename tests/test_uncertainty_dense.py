"""Uncertainty methods on segmentation runs: each pass blended apart, the map their mean, the
per-pixel sd in ``dense_sd`` and the sd of each pass's areas in ``spread`` (tiny dense models)."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
from keras import layers

from app.segmentation.dense_map import LEVELS
from app.strategies import get_strategy
from app.uncertainty import Uncertainty
from app.uncertainty.combine import SpreadMap
from tests.test_segmentation import engine, loaded, per_pixel, threshold_model, volume_of  # noqa: F401 - engine: a fixture

SLICE = get_strategy("slice")
SHAPE = (5, 20, 24)  # a 16 × 16 window slides over it: tiles are blended


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(1).random(SHAPE).astype(np.float32)


def _run(engine, volume, model, uncertainty=None):  # noqa: F811 - engine: the fixture
    return engine.run(volume, SLICE, model, normalize="none", batch_size=3, uncertainty=uncertainty)


def _ensemble(*models) -> Uncertainty:
    return Uncertainty("ensemble", paths=tuple(f"m{i}.keras" for i in range(len(models)))).with_members(list(models))


def test_tta_of_a_flip_invariant_dense_model_has_sd_zero_and_the_bare_map(engine, noise):  # noqa: F811
    model = loaded(per_pixel((16, 16, 1), classes=2, seed=4))  # per pixel: flips change nothing
    volume = volume_of(noise)
    bare = _run(engine, volume, model)
    run = _run(engine, volume, model, Uncertainty("tta", augmentations=("flip-lr", "flip-ap")))
    np.testing.assert_array_equal(run.dense.probabilities, bare.dense.probabilities)
    np.testing.assert_array_equal(run.scores, bare.scores)
    assert isinstance(run.dense_sd, SpreadMap) and run.dense_sd.values.shape == bare.dense.probabilities.shape
    assert run.dense_sd.filled.all() and not run.dense_sd.values.any()
    assert run.spread.shape == run.scores.shape and np.all(run.spread == 0)


def test_ensemble_of_one_dense_model_twice_has_sd_zero(engine, noise):  # noqa: F811
    model = loaded(threshold_model(0.5, shape=(16, 16, 1)))
    volume = volume_of(noise)
    bare = _run(engine, volume, model)
    run = _run(engine, volume, model, _ensemble(model, model))
    np.testing.assert_array_equal(run.dense.probabilities, bare.dense.probabilities)
    np.testing.assert_array_equal(run.scores, bare.scores)
    assert not run.dense_sd.values.any() and np.all(run.spread == 0)


def test_ensemble_of_two_dense_models_is_the_mean_of_their_maps(engine, noise):  # noqa: F811
    a, b = loaded(threshold_model(0.4, shape=(16, 16, 1))), loaded(threshold_model(0.6, shape=(16, 16, 1)))
    volume = volume_of(noise)
    run_a, run_b = _run(engine, volume, a), _run(engine, volume, b)
    run = _run(engine, volume, a, _ensemble(a, b))
    pa, pb = (r.dense.probabilities.astype(np.float32) / LEVELS for r in (run_a, run_b))
    mean = run.dense.probabilities.astype(np.float32) / LEVELS
    assert np.abs(mean - (pa + pb) / 2).max() <= 1.0 / LEVELS + 1e-6  # each map was rounded to uint8 once
    sd = run.dense_sd.values.astype(np.float32) / SpreadMap.SCALE
    assert np.abs(sd - np.abs(pa - pb) / 2).max() <= 1.0 / LEVELS + 1.0 / SpreadMap.SCALE
    # the sd of the areas is that of each member's own areas (not the area of the mean map)
    areas_a, areas_b = run_a.scores[:, 0], run_b.scores[:, 0]
    assert np.all(areas_a > areas_b)  # t = 0.4 keeps more pixels than t = 0.6 on every slice
    np.testing.assert_allclose(run.spread[:, 0], np.abs(areas_a - areas_b) / 2, rtol=1e-5)
    assert np.all(run.spread > 0)


def dropout_dense(shape=(None, None, 1)):
    """1×1 convolutions with a Dropout between them: a map whose pixels vary with the dropout mask."""
    keras.utils.set_random_seed(5)
    x = keras.Input(shape)
    y = layers.Conv2D(8, 1, activation="relu", kernel_initializer="ones", bias_initializer=keras.initializers.Constant(0.1))(x)
    y = layers.Dropout(0.5)(y)
    y = layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(0.5), bias_initializer=keras.initializers.Constant(-2.0))(y)
    return keras.Model(x, y, name="dropout_dense")


def test_mc_dropout_on_a_dense_model_spreads_per_pixel(engine, noise):  # noqa: F811
    run = _run(engine, volume_of(noise * 1.5), loaded(dropout_dense()), Uncertainty("mc-dropout", passes=6, seed=2))
    assert run.dense_sd.filled.all() and (run.dense_sd.values > 0).mean() > 0.5
    assert run.spread.shape == run.scores.shape and np.isfinite(run.spread).all()
    assert "dense_sd" in run.notes[-1]


def test_cli_mc_dropout_on_a_dense_model_writes_area_sd_columns(tmp_path, capsys, noise):
    from app.cli import main

    dropout_dense().save(tmp_path / "drop.keras")
    np.save(tmp_path / "v.npy", noise * 1.5)
    out = tmp_path / "o.csv"
    assert main(["predict", str(tmp_path / "v.npy"), "--model", str(tmp_path / "drop.keras"), "--mc-dropout", "6", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[3:] == ["area_mm2", "area_mm2_sd"]
    assert len(rows) == SHAPE[0] and any(float(row["area_mm2_sd"]) > 0 for row in rows)
    assert json.loads(out.with_name("o.csv.json").read_text())["runs"][0]["uncertainty"]["sd_columns"] == ["area_mm2_sd"]

    from app.review.results import load_results  # reviewed later (`slicewise review`): areas with their spread, not a third score

    results = load_results(out)
    assert results.runs[0]["columns"] == ["area_mm2"] and results.has_spread
    (restored,) = results.predictions(results.cases[0])
    assert restored.unit == "mm²" and restored.reduce == "area"
    np.testing.assert_allclose(restored.scores[:, 0], [float(r["area_mm2"]) for r in rows], rtol=1e-6)
    np.testing.assert_allclose(restored.spread[:, 0], [float(r["area_mm2_sd"]) for r in rows], rtol=1e-6)


def test_tta_refuses_a_channels_first_dense_model(engine, noise):  # noqa: F811
    from app.errors import ModelError

    x = keras.Input((1, None, None))
    model = loaded(keras.Model(x, layers.Conv2D(1, 1, activation="sigmoid", data_format="channels_first")(x), name="first"))
    with pytest.raises(ModelError, match="channels first"):
        _run(engine, volume_of(noise), model, Uncertainty("tta", augmentations=("flip-lr",)))


def test_tta_of_a_3d_dense_model_blends_each_pass_over_its_band_of_slices(engine):  # noqa: F811
    data = np.random.default_rng(2).random((9, 20, 24)).astype(np.float32)
    model = loaded(per_pixel((4, 16, 16, 1), classes=1, seed=6, conv=layers.Conv3D))  # windows overlap in depth too
    volume = volume_of(data)
    bare = _run(engine, volume, model)
    run = _run(engine, volume, model, Uncertainty("tta", augmentations=("flip-lr", "shift:3")))
    np.testing.assert_array_equal(run.dense.probabilities, bare.dense.probabilities)
    assert run.dense_sd.filled.all() and not run.dense_sd.values.any()


def logit_model(gain: float):
    """A 1×1 convolution giving logits (a linear last activation): the run turns them into sigmoid probabilities."""
    x = keras.Input((16, 16, 1))
    y = layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(gain), bias_initializer=keras.initializers.Constant(-gain / 2))(x)
    return keras.Model(x, y, name=f"logits{gain:g}")


def test_an_ensemble_of_logit_models_averages_probabilities_not_logits(engine, noise):  # noqa: F811
    a, b = loaded(logit_model(2.0)), loaded(logit_model(40.0))
    volume = volume_of(noise)
    run = _run(engine, volume, a, _ensemble(a, b))
    assert run.dense.from_logits
    x = noise[..., None].astype(np.float64)
    p = [1 / (1 + np.exp(-(g * x - g / 2))) for g in (2.0, 40.0)]
    mean = run.dense.probabilities.astype(np.float64) / LEVELS
    assert np.abs(mean - (p[0] + p[1]) / 2).max() <= 0.5 / LEVELS + 1e-4
    logit_mean = 1 / (1 + np.exp(-(21.0 * x - 10.5)))  # what averaging the logits would give
    assert np.abs(mean - logit_mean).max() > 0.05
