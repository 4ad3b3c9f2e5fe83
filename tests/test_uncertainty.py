"""Uncertainty (app.uncertainty): MC dropout, test-time augmentation and ensembles, through the
engine and the CLI, on tiny models built here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.errors import ModelError, SlicewiseError
from app.uncertainty import Uncertainty, mean_sd
from app.uncertainty.augment import parse_augmentations
from app.uncertainty.combine import SpreadMap, reduce_passes
from app.uncertainty.method import from_options, parse
from app.volume import Volume

SIZE = 16


def _volume(depth: int = 12, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume.from_tensor(torch.from_numpy(rng.random((depth, SIZE, SIZE), dtype=np.float32)))


def _flip_invariant(seed: int = 0):
    """Per-pixel 1×1 convolution, then a global max: flips and circular shifts change nothing."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Conv2D(4, 1, activation="relu"), keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(1, activation="sigmoid")])


def _dropout_bn(rate: float = 0.5):
    """Conv → BatchNormalization (moving statistics far from any batch's) → mean → Dropout → linear head.

    The head is linear after the dropout, so the mean over dropout masks tends to the
    deterministic score exactly (inverted dropout keeps the expectation)."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(6, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(rate, name="drop")(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    gamma, beta, _, _ = model.get_layer("bn").get_weights()
    model.get_layer("bn").set_weights([gamma, beta, np.full(6, 0.7, np.float32), np.full(6, 0.05, np.float32)])
    return model


def _loaded(engine, model, tmp_path, name: str):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return engine.load(path)


def _run(engine, volume, model, uncertainty=None, batch_size=5):
    from app.strategies import get_strategy

    return engine.run(volume, get_strategy("slice"), model, normalize="none", batch_size=batch_size, uncertainty=uncertainty)


def _near_deterministic(mean: np.ndarray, sd: np.ndarray, deterministic: np.ndarray, n: int) -> bool:
    """Every slice's mean within 5 standard errors of the deterministic score."""
    return bool(np.all(np.abs(mean - deterministic) <= 5 * sd / np.sqrt(n) + 1e-5))


# -- TTA --------------------------------------------------------------------------------------


def test_tta_of_a_flip_invariant_model_has_sd_exactly_zero(engine, tmp_path):
    model = _loaded(engine, _flip_invariant(), tmp_path, "invariant")
    volume = _volume()
    bare = _run(engine, volume, model)
    tta = _run(engine, volume, model, parse("tta:flip-lr,flip-ap,shift:3"))
    assert tta.spread is not None and tta.spread.shape == tta.scores.shape
    assert np.all(tta.spread == 0)
    np.testing.assert_array_equal(tta.scores, bare.scores)
    assert tta.uncertainty["method"] == "tta" and tta.uncertainty["n"] == 4
    assert tta.uncertainty["augmentations"] == ["identity", "flip-lr", "flip-ap", "shift:3"]


def test_tta_of_a_lateral_model_spreads(engine, tmp_path):
    """A model that weighs the left half: flip-lr changes its scores, so the spread is not 0."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Cropping2D(((0, 0), (0, SIZE // 2)))(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(x))
    model = _loaded(engine, keras.Model(inputs, outputs), tmp_path, "lateral")
    tta = _run(engine, _volume(), model, parse("tta:flip-lr"))
    assert np.mean(tta.spread > 0) > 0.9


def test_tta_maps_dense_outputs_back_before_averaging():
    """Passes on a per-pixel model: the flipped and shifted maps come back onto the original
    pixels, so a pixelwise model spreads by 0; without the inverse they would disagree.  (A dense
    plan's per-pixel sd map and area spread: tests/test_uncertainty_dense.py, through the engine.)"""
    import keras
    import tensorflow as tf

    from app.strategies.adapt import SliceShape
    from app.strategies.base import SliceBatches, Step
    from app.uncertainty.passes import Passes

    keras.utils.set_random_seed(0)
    dense = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Conv2D(2, 1, activation="sigmoid")])

    class Loaded:  # the fields Passes reads of a LoadedModel
        keras_model, name = dense, "dense"

    plan = SliceBatches(4, SliceShape(SIZE, SIZE, 1), 4)
    passes = Passes(parse("tta:flip-lr,flip-ap,shift:5"), Loaded, plan, 4, lambda m: (lambda t: m(t, training=False)), tf.convert_to_tensor)
    x = torch.from_numpy(np.random.default_rng(0).random((4, SIZE, SIZE, 1), dtype=np.float32))
    outputs = passes.call(x)
    assert len(outputs) == 4 and outputs[1].shape == (4, SIZE, SIZE, 2)
    mean = passes.read(outputs, Step(x, np.arange(4)), lambda y, step: y)
    np.testing.assert_allclose(mean, dense(x.numpy()).numpy(), atol=1e-6)
    assert float(np.max(passes.spread)) < 1e-6  # every slice's sd over the passes
    assert float(np.max(np.std([outputs[0], np.flip(outputs[0], 2)], axis=0))) > 1e-3  # a flip not undone would show


def test_augmentations_invert_exactly():
    x = torch.arange(2 * 5 * 7 * 3, dtype=torch.float32).reshape(2, 5, 7, 3)
    for augmentation in parse_augmentations(["flip-lr", "flip-ap", "shift:2"]):
        moved = augmentation.apply(x)
        assert not torch.equal(moved, x)
        np.testing.assert_array_equal(augmentation.invert(moved.numpy()), x.numpy())


@pytest.mark.parametrize("bad", ["flip", "shift:0", "shift:x", "rotate:90"])
def test_unknown_augmentations_are_refused(bad):
    with pytest.raises(SlicewiseError, match="augmentation"):
        parse(f"tta:{bad}")


# -- ensembles --------------------------------------------------------------------------------


def test_ensemble_of_one_model_twice_has_sd_zero_and_the_same_mean(engine, tmp_path):
    model = _loaded(engine, _flip_invariant(1), tmp_path, "one")
    volume = _volume()
    bare = _run(engine, volume, model)
    twice = Uncertainty("ensemble", paths=(model.source, model.source)).with_members([model, model])
    run = _run(engine, volume, model, twice)
    np.testing.assert_array_equal(run.scores, bare.scores)
    assert np.all(run.spread == 0)
    assert [m["sha256"] for m in run.uncertainty["members"]] == [model.sha256] * 2


def test_ensemble_of_two_models_is_the_mean_of_their_runs(engine, tmp_path):
    a, b = _loaded(engine, _flip_invariant(1), tmp_path, "a"), _loaded(engine, _flip_invariant(2), tmp_path, "b")
    volume = _volume()
    run_a, run_b = _run(engine, volume, a), _run(engine, volume, b)
    pair = Uncertainty("ensemble", paths=(a.source, b.source)).with_members([a, b])
    run = _run(engine, volume, a, pair)
    np.testing.assert_allclose(run.scores, (run_a.scores + run_b.scores) / 2, rtol=1e-6)
    np.testing.assert_allclose(run.spread, np.abs(run_a.scores - run_b.scores) / 2, rtol=1e-5, atol=1e-7)


def test_ensemble_members_must_be_fitted_alike(engine, tmp_path):
    import keras

    a = _loaded(engine, _flip_invariant(1), tmp_path, "a")
    other = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(1)])
    b = _loaded(engine, other, tmp_path, "small")
    with pytest.raises(ModelError, match="not fitted like"):
        _run(engine, _volume(), a, Uncertainty("ensemble", paths=("a", "b")).with_members([a, b]))


# -- MC dropout -------------------------------------------------------------------------------


def test_mc_dropout_spreads_and_its_mean_tends_to_the_deterministic_score(engine, tmp_path):
    model = _loaded(engine, _dropout_bn(), tmp_path, "dropout")
    volume = _volume()
    deterministic = _run(engine, volume, model).scores
    few = _run(engine, volume, model, Uncertainty("mc-dropout", passes=4, seed=1))
    many = _run(engine, volume, model, Uncertainty("mc-dropout", passes=400, seed=1))
    assert np.mean(few.spread > 0) > 0.9 and np.mean(many.spread > 0) > 0.9
    assert _near_deterministic(many.scores, many.spread, deterministic, 400)
    assert np.mean(np.abs(many.scores - deterministic)) < np.mean(np.abs(few.scores - deterministic))
    assert many.uncertainty == {"method": "mc-dropout", "n": 400, "seed": 1, "sd": "population standard deviation over the passes"}
    again = _run(engine, volume, model, Uncertainty("mc-dropout", passes=4, seed=1))
    np.testing.assert_array_equal(again.scores, few.scores)  # the seed fixes the masks
    other = _run(engine, volume, model, Uncertainty("mc-dropout", passes=4, seed=2))
    assert not np.array_equal(other.scores, few.scores)


def test_the_spread_streams_with_its_batch(engine, tmp_path):
    """Each batch hands on its slices' sd with their mean (the viewer's band grows with the curve)."""
    from app.strategies import get_strategy

    model = _loaded(engine, _dropout_bn(), tmp_path, "dropout")
    streamed = []
    done = engine.run(_volume(), get_strategy("slice"), model, batch_size=3, uncertainty=Uncertainty("mc-dropout", passes=4, seed=1),
                      on_batch=lambda done, total, indices, block, sd: streamed.append((indices.copy(), block.copy(), sd)))  # fmt: skip
    assert len(streamed) > 1 and all(sd is not None and sd.shape == block.shape for _, block, sd in streamed)
    for indices, block, sd in streamed:
        np.testing.assert_array_equal(block, done.scores[indices])
        np.testing.assert_array_equal(sd, done.spread[indices])
    plain = []
    engine.run(_volume(), get_strategy("slice"), model, batch_size=3, on_batch=lambda *args: plain.append(args[4]))
    assert plain and all(sd is None for sd in plain)


def test_mc_dropout_leaves_batch_normalization_in_inference_mode(engine, tmp_path):
    model = _loaded(engine, _dropout_bn(), tmp_path, "bn")
    volume = _volume()
    stats = [w.copy() for w in model.keras_model.get_layer("bn").get_weights()]
    deterministic = _run(engine, volume, model).scores
    mc = _run(engine, volume, model, Uncertainty("mc-dropout", passes=400, seed=0), batch_size=12)
    for before, after in zip(stats, model.keras_model.get_layer("bn").get_weights()):
        np.testing.assert_array_equal(before, after)  # moving statistics untouched
    assert _near_deterministic(mc.scores, mc.spread, deterministic, 400)


def test_batch_normalization_in_training_mode_would_be_caught():
    """The check above fails when BatchNormalization runs on batch statistics: the same
    always-on rebuild, told to switch BN on too, lands far from the deterministic scores."""
    import keras

    from app.uncertainty.dropout import MCModel

    model = _dropout_bn()
    x = np.random.default_rng(0).random((12, SIZE, SIZE, 1), dtype=np.float32)
    deterministic = model(x, training=False).numpy()
    n = 400
    wrong = MCModel(model, 0, switch=(keras.layers.Dropout, keras.layers.BatchNormalization)).keras_model
    passes = wrong(np.tile(x, (n, 1, 1, 1)), training=False).numpy().reshape(n, 12, 1)
    mean, sd = mean_sd(passes)
    assert not _near_deterministic(mean, sd, deterministic, n)
    right = MCModel(model, 0).keras_model
    mean, sd = mean_sd(right(np.tile(x, (n, 1, 1, 1)), training=False).numpy().reshape(n, 12, 1))
    assert _near_deterministic(mean, sd, deterministic, n)


def test_mc_dropout_reaches_dropout_in_a_nested_model(engine, tmp_path):
    import keras

    keras.utils.set_random_seed(4)
    inner = keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Conv2D(4, 3), keras.layers.SpatialDropout2D(0.5), keras.layers.GlobalAveragePooling2D()], name="inner")
    inputs = keras.Input((SIZE, SIZE, 1))
    outer = keras.Model(inputs, keras.layers.Dense(1)(inner(inputs)))
    model = _loaded(engine, outer, tmp_path, "nested")
    run = _run(engine, _volume(), model, Uncertainty("mc-dropout", passes=6))
    assert np.mean(run.spread > 0) > 0.9


def test_mc_dropout_refuses_a_model_without_dropout(tmp_path, capsys):
    from app.cli import main

    _flip_invariant().save(tmp_path / "plain.keras")
    np.save(tmp_path / "v.npy", _volume(4).data[..., 0].numpy())
    code = main(["predict", str(tmp_path / "v.npy"), "--model", str(tmp_path / "plain.keras"), "--mc-dropout", "5", "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and "dropout" in err.splitlines()[0]
    assert not (tmp_path / "o.csv").exists()


def test_cli_writes_mean_and_sd_columns_and_the_method(tmp_path, capsys):
    import csv

    from app.cli import main

    _dropout_bn().save(tmp_path / "drop.keras")
    np.save(tmp_path / "v.npy", _volume(6).data[..., 0].numpy())
    out = tmp_path / "o.csv"
    assert main(["predict", str(tmp_path / "v.npy"), "--model", str(tmp_path / "drop.keras"), "--mc-dropout", "8", "--mc-seed", "7", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[3:] == ["score", "score_sd"]
    assert all(float(row["score_sd"]) > 0 for row in rows)
    record = json.loads((tmp_path / "o.csv.json").read_text())["runs"][0]["uncertainty"]
    assert record["method"] == "mc-dropout" and record["n"] == 8 and record["seed"] == 7 and record["sd_columns"] == ["score_sd"]


def test_one_method_at_a_time():
    with pytest.raises(SlicewiseError, match="one uncertainty method"):
        from_options(mc_dropout=5, tta="flip-lr")
    with pytest.raises(SlicewiseError, match="2 to"):
        from_options(mc_dropout=1)
    assert parse("mc-dropout:12@3") == Uncertainty("mc-dropout", passes=12, seed=3)
    assert parse(parse("tta:flip-lr,shift:2").spec()) == parse("tta:flip-lr,shift:2")


# -- combining passes -------------------------------------------------------------------------


def test_mean_sd_of_identical_passes_is_exact():
    value = np.float32(0.1)
    mean, sd = mean_sd([np.full(3, value)] * 7)
    assert mean.dtype == np.float32 and np.all(mean == value) and np.all(sd == 0)


def test_running_mean_sd_matches_mean_sd_and_is_exact_on_identical_passes():
    from app.uncertainty.combine import RunningMeanSd

    blocks = np.random.default_rng(4).random((7, 3, 5), dtype=np.float32)
    running = RunningMeanSd()
    for block in blocks:
        running.add(block)
    for got, want in zip(running.result(), mean_sd(blocks)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    same = RunningMeanSd()
    for _ in range(9):
        same.add(np.full(4, np.float32(0.1)))
    mean, sd = same.result()
    assert np.all(mean == np.float32(0.1)) and np.all(sd == 0)


def test_spread_of_areas_is_taken_per_pass_and_the_pixel_sd_map_is_kept():
    passes = [np.zeros((2, 4, 4, 1), np.float32), np.ones((2, 4, 4, 1), np.float32)]
    passes[1][1] = 0  # slice 1: both passes agree
    mean, sd = reduce_passes(passes, lambda m: (m > 0.5).sum(axis=(1, 2, 3)).astype(np.float32))
    np.testing.assert_array_equal(mean, [8, 0])
    np.testing.assert_array_equal(sd, [8, 0])
    _, pixel = mean_sd(passes)
    spread = SpreadMap(3, 4, 4, 1)
    spread.put(np.array([0, 2]), pixel)
    np.testing.assert_allclose(spread.slice_sd(0), pixel[0], atol=1 / SpreadMap.SCALE)
    assert np.all(spread.slice_sd(2) == 0) and np.isnan(spread.slice_sd(1)).all()


def test_cli_ensemble_scores_the_mean_of_its_members(tmp_path, capsys):
    import csv

    from app.cli import main

    for seed in (1, 2):
        _flip_invariant(seed).save(tmp_path / f"m{seed}.keras")
    np.save(tmp_path / "v.npy", _volume(5).data[..., 0].numpy())
    volume, members = str(tmp_path / "v.npy"), f"{tmp_path / 'm1.keras'},{tmp_path / 'm2.keras'}"
    singles = []
    for seed in (1, 2):
        assert main(["predict", volume, "--model", str(tmp_path / f"m{seed}.keras"), "--out", str(tmp_path / f"s{seed}.csv")]) == 0
        singles.append(np.array([float(r["score"]) for r in csv.DictReader((tmp_path / f"s{seed}.csv").open())]))
    assert main(["predict", volume, "--ensemble", members, "--out", str(tmp_path / "e.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "e.csv").open()))
    np.testing.assert_allclose([float(r["score"]) for r in rows], (singles[0] + singles[1]) / 2, rtol=1e-6)
    record = json.loads((tmp_path / "e.csv.json").read_text())["runs"][0]["uncertainty"]
    assert record["method"] == "ensemble" and [m["source"] for m in record["members"]] == members.split(",")
    capsys.readouterr()
    assert main(["predict", volume, "--ensemble", members, "--model", str(tmp_path / "m1.keras")]) == 2
    assert "leave --model out" in capsys.readouterr().err


def test_export_puts_sd_columns_after_the_scores_of_several_runs():
    from app.export import csv_text
    from app.prediction import Prediction

    volume = _volume(3)
    common = dict(volume_score=None, model_source="m.keras", model_sha256="", normalize="none", device="CPU", batch_size=32, classes=("a", "b"))
    plain = Prediction(scores=np.zeros((3, 2), np.float32), strategy="slice", **common)
    spread = Prediction(scores=np.ones((3, 2), np.float32), strategy="temporal", spread=np.full((3, 2), 0.25, np.float32), uncertainty={"method": "tta", "n": 2}, **common)
    header, first = csv_text([(volume, [plain, spread])]).splitlines()[:2]
    assert header.split(",")[3:] == ["score_slice_a", "score_slice_b", "score_temporal_a", "score_temporal_b", "score_sd_temporal_a", "score_sd_temporal_b"]
    assert first.split(",")[-2:] == ["0.25", "0.25"]
