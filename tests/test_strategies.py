"""Each strategy gives the seed article's numbers, computed by hand with Keras, for the seed's
architectures saved to .keras and loaded as a user's model — without the seed's per-slice loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app import preprocessing
from app.errors import ModelError
from app.tools.seed_models import seed_embedding_model, seed_slice_model, seed_temporal_model
from app.strategies import get_strategy
from app.volume import Volume

D, H, W, C = 10, 64, 64, 3


@pytest.fixture(scope="module")
def seed_tensor() -> np.ndarray:
    """The seed article's tensor, one volume of it: ``(depth, height, width, channels)``."""
    return torch.rand(D, H, W, C, generator=torch.Generator().manual_seed(0)).numpy()


def saved(model, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path


def test_slice_matches_seed_loop(engine, seed_tensor, tmp_path):
    model = seed_slice_model(H, W, C)
    # the seed's Example 1, verbatim in spirit: one predict call per slice
    expected = np.stack([model.predict(seed_tensor[d][None], verbose=0)[0] for d in range(D)])
    loaded = engine.load(saved(model, tmp_path, "slice"))
    prediction = engine.run(Volume.from_tensor(seed_tensor), get_strategy("slice"), loaded, batch_size=4)
    assert prediction.scores.shape == (D, 1)
    np.testing.assert_allclose(prediction.scores, expected, rtol=1e-4, atol=1e-5)
    assert prediction.volume_score is None
    assert prediction.normalize == "none"


@pytest.mark.parametrize("length", [5, 4])
def test_temporal_windows_centred_on_each_slice(engine, seed_tensor, tmp_path, length):
    model = seed_temporal_model(length, H * W * C)
    half = length // 2
    windows = [np.clip(np.arange(d - half, d - half + length), 0, D - 1) for d in range(D)]
    by_hand = np.stack([seed_tensor[idx].reshape(length, -1) for idx in windows])
    expected = model.predict(by_hand, verbose=0)
    loaded = engine.load(saved(model, tmp_path, f"temporal{length}"))
    prediction = engine.run(Volume.from_tensor(seed_tensor), get_strategy("temporal"), loaded, batch_size=3)
    np.testing.assert_allclose(prediction.scores, expected, rtol=1e-4, atol=1e-5)


def test_temporal_score_depends_on_neighbours(engine, seed_tensor, tmp_path):
    """Changing slice 5 changes the scores of its neighbours within the window, and no others.

    (The seed's Conv1D + MaxPooling1D(2) reads only the first 4 steps of a 5-window, so the
    window centred on slice 3 ends on a step the model drops.)"""
    loaded = engine.load(saved(seed_temporal_model(5, H * W * C), tmp_path, "neighbours"))
    strategy = get_strategy("temporal")
    before = engine.run(Volume.from_tensor(seed_tensor), strategy, loaded).scores[:, 0]
    changed = seed_tensor.copy()
    changed[5] = 1.0 - changed[5]
    after = engine.run(Volume.from_tensor(changed), strategy, loaded).scores[:, 0]
    moved = np.flatnonzero(~np.isclose(before, after, rtol=1e-6, atol=1e-7))
    assert moved.tolist() == [4, 5, 6, 7]


def test_temporal_per_step_model_in_one_pass(engine, seed_tensor):
    """The built-in temporal model maps a sequence of any length to per-step scores."""
    strategy = get_strategy("temporal")
    builtin = engine.builtin(strategy)
    assert builtin.spec.input_shape[0] is None and builtin.spec.output_shape == (None, 1)
    volume = Volume.from_tensor(seed_tensor[..., :1] * 400)
    prediction = engine.run(volume, strategy, batch_size=2)
    import keras

    x = torch.nn.functional.interpolate(torch.from_numpy(seed_tensor[..., :1] * 400).permute(0, 3, 1, 2), size=(64, 64)).permute(0, 2, 3, 1)
    x = preprocessing.fit(builtin.normalize, x)(x)
    expected = keras.ops.convert_to_numpy(builtin.keras_model(x[None].numpy(), training=False))[0]
    np.testing.assert_allclose(prediction.scores, expected, rtol=1e-4, atol=1e-5)


def test_embedding_pooled_volume_and_per_slice(engine, seed_tensor, tmp_path):
    model = seed_embedding_model(H * W * C)
    # the seed's Example 3: pool over depth, flatten, dense
    expected_volume = model.predict(seed_tensor.mean(axis=0).reshape(1, -1), verbose=0)[0]
    expected_slices = model.predict(seed_tensor.reshape(D, -1), verbose=0)
    loaded = engine.load(saved(model, tmp_path, "embedding"))
    prediction = engine.run(Volume.from_tensor(seed_tensor), get_strategy("embedding"), loaded, batch_size=4)
    np.testing.assert_allclose(prediction.volume_score, expected_volume, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prediction.scores, expected_slices, rtol=1e-4, atol=1e-5)


def test_multi_output_model_gives_k_scores(engine, seed_tensor, tmp_path):
    loaded = engine.load(saved(seed_temporal_model(4, H * W * C, outputs=4), tmp_path, "four"))
    prediction = engine.run(Volume.from_tensor(seed_tensor), get_strategy("temporal"), loaded)
    assert prediction.scores.shape == (D, 4) and np.isfinite(prediction.scores).all()


def test_model_is_fitted_to_a_volume_of_another_size(engine, tmp_path):
    """A 64×64×3 model on a 1-channel 100×80 volume: slices resized and channels repeated."""
    model = seed_slice_model(H, W, C)
    loaded = engine.load(saved(model, tmp_path, "fit"))
    volume = torch.rand(6, 100, 80, 1, generator=torch.Generator().manual_seed(1))
    prediction = engine.run(Volume.from_tensor(volume), get_strategy("slice"), loaded)
    resized = torch.nn.functional.interpolate(volume.permute(0, 3, 1, 2), size=(H, W), mode="bilinear", antialias=True)
    by_hand = resized.permute(0, 2, 3, 1).expand(-1, -1, -1, C).contiguous().numpy()
    np.testing.assert_allclose(prediction.scores, model.predict(by_hand, verbose=0), rtol=1e-4, atol=1e-5)


def test_model_that_does_not_fit_names_both_shapes(engine, tmp_path):
    loaded = engine.load(saved(seed_slice_model(H, W, C), tmp_path, "misfit"))
    volume = Volume.from_tensor(torch.zeros(4, 32, 32, 2))
    with pytest.raises(ModelError, match=r"3 channels.*has 2"):
        engine.run(volume, get_strategy("slice"), loaded)
    with pytest.raises(ModelError, match=r"temporal strategy needs .*sequence.*takes \(64, 64, 3\)"):
        engine.run(Volume.from_tensor(torch.zeros(4, 64, 64, 3)), get_strategy("temporal"), loaded)


def test_normalisation_is_applied_and_recorded(engine, seed_tensor, tmp_path):
    model = seed_slice_model(H, W, C)
    loaded = engine.load(saved(model, tmp_path, "norm"))
    volume = seed_tensor * 1000 - 500
    prediction = engine.run(Volume.from_tensor(volume), get_strategy("slice"), loaded, normalize="minmax")
    expected = model.predict((volume - volume.min()) / (volume.max() - volume.min()), verbose=0)
    np.testing.assert_allclose(prediction.scores, expected, rtol=1e-4, atol=1e-4)
    assert prediction.normalize == "minmax"


@pytest.mark.parametrize("name", ["slice", "temporal", "embedding"])
def test_builtin_models_score_every_slice(engine, name):
    volume = Volume.from_tensor(torch.randn(7, 90, 70, generator=torch.Generator().manual_seed(2)) * 100)
    prediction = engine.run(volume, get_strategy(name), batch_size=3)
    assert prediction.scores.shape == (7, 1) and np.isfinite(prediction.scores).all()
    assert ((prediction.scores >= 0) & (prediction.scores <= 1)).all()
    assert prediction.device.startswith(("CPU", "GPU"))


def test_streaming_batches_and_cancel(engine):
    volume = Volume.from_tensor(torch.zeros(10, 64, 64))
    seen = []
    engine.run(volume, get_strategy("slice"), batch_size=4, on_batch=lambda done, total, idx, block: seen.append((done, total, idx.tolist())))
    assert seen == [(1, 3, [0, 1, 2, 3]), (2, 3, [4, 5, 6, 7]), (3, 3, [8, 9])]
    from app.errors import Cancelled

    calls = []
    with pytest.raises(Cancelled):
        engine.run(volume, get_strategy("slice"), batch_size=4, on_batch=lambda *a: calls.append(a), cancelled=lambda: len(calls) >= 1)
    assert len(calls) == 1


def test_nonfinite_voxels_are_reported_not_scored(engine):
    data = torch.rand(8, 64, 64, generator=torch.Generator().manual_seed(3)) * 300
    data[2, 5, 5] = float("nan")
    data[6, 0, 0] = float("inf")
    clean = engine.run(Volume.from_tensor(torch.where(torch.isfinite(data), data, torch.zeros(()))), get_strategy("slice"))
    prediction = engine.run(Volume.from_tensor(data), get_strategy("slice"))
    assert prediction.nonfinite_slices == [2, 6]
    assert np.isnan(prediction.scores[[2, 6]]).all()
    others = [0, 1, 3, 4, 5, 7]
    np.testing.assert_allclose(prediction.scores[others], clean.scores[others], rtol=1e-5)
