"""Each strategy gives the seed article's numbers, computed by hand with Keras, for the seed's
architectures saved to .keras and loaded as a user's model — without the seed's per-slice loop."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from app import preprocessing
from app.channels import parse_recipe
from app.errors import ModelError, SlicewiseError
from app.inference.engine import BUILTIN_ON_NON_CT
from app.strategies import get_strategy
from app.tools.seed_models import (
    seed_embedding_model,
    seed_slice_model,
    seed_temporal_model,
)
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
    # the seed's Example 3: pool over depth, flatten, dense; each slice: the mean of the slab of
    # three slices centred on it (cut at the volume's ends)
    expected_volume = model.predict(seed_tensor.mean(axis=0).reshape(1, -1), verbose=0)[0]
    slabs = np.stack([seed_tensor[max(d - 1, 0) : d + 2].mean(axis=0).reshape(-1) for d in range(D)])
    expected_slices = model.predict(slabs, verbose=0)
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
    engine.run(volume, get_strategy("slice"), batch_size=4, on_batch=lambda done, total, idx, block, sd: seen.append((done, total, idx.tolist(), sd)))
    assert seen == [(1, 3, [0, 1, 2, 3], None), (2, 3, [4, 5, 6, 7], None), (3, 3, [8, 9], None)]
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


# -- channel recipes: each against the same slices stacked by hand and model(x) called directly --


def keras_call(model, x: np.ndarray) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(model(x.astype(np.float32), training=False))


def small_ct(depth: int = 7, size: int = 16, seed: int = 4) -> np.ndarray:
    """A CT-like grey volume in Hounsfield units, ``(D, H, W)``."""
    return (torch.rand(depth, size, size, generator=torch.Generator().manual_seed(seed)) * 3000 - 1000).numpy()


def neighbors_by_hand(volume: np.ndarray, k: int) -> np.ndarray:
    """The 2.5D input built directly: channel j of slice d is slice clip(d - k + j)."""
    depth = len(volume)
    return np.stack([np.stack([volume[min(max(d - k + j, 0), depth - 1)] for j in range(2 * k + 1)], axis=-1) for d in range(depth)])


@pytest.mark.parametrize("k", [1, 2])
def test_neighbors_recipe_is_the_25d_input_built_by_hand(engine, tmp_path, k):
    channels = 2 * k + 1
    model = seed_slice_model(16, 16, channels)
    loaded = engine.load(saved(model, tmp_path, f"n{k}"))
    volume = small_ct()
    expected = keras_call(model, neighbors_by_hand(volume, k))
    for spec in ("neighbors", f"neighbors:{k}"):  # K from the model's C = 2K+1, or given
        prediction = engine.run(Volume.from_tensor(volume), get_strategy("slice"), loaded, channels=spec, batch_size=3)
        np.testing.assert_allclose(prediction.scores, expected, rtol=1e-4, atol=1e-4)
        assert prediction.channels == f"neighbors:{k}"  # recorded with its K
    # the edge slices repeat: slice 0's first channels are slice 0 itself
    assert np.array_equal(neighbors_by_hand(volume, k)[0, ..., 0], volume[0])


def test_neighbors_recipe_after_normalisation_and_in_a_sequence(engine, tmp_path):
    """minmax is fitted on the volume and applied to the stacked channels: the same as stacking
    normalised slices; the temporal strategy's windows of 2.5D steps match too."""
    volume = small_ct(depth=6)
    normalised = (volume - volume.min()) / (volume.max() - volume.min())
    stacked = neighbors_by_hand(normalised, 1)
    slice_model = seed_slice_model(16, 16, 3)
    prediction = engine.run(
        Volume.from_tensor(volume), get_strategy("slice"), engine.load(saved(slice_model, tmp_path, "n")), normalize="minmax", channels="neighbors"
    )
    np.testing.assert_allclose(prediction.scores, keras_call(slice_model, stacked), rtol=1e-4, atol=1e-4)

    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    sequence = keras.Sequential([keras.Input((3, 16, 16, 3)), layers.Flatten(), layers.Dense(2)])
    windows = np.stack([stacked[np.clip(np.arange(d - 1, d + 2), 0, 5)] for d in range(6)])
    prediction = engine.run(
        Volume.from_tensor(volume), get_strategy("temporal"), engine.load(saved(sequence, tmp_path, "seq")), normalize="minmax", channels="neighbors", batch_size=4
    )
    np.testing.assert_allclose(prediction.scores, keras_call(sequence, windows), rtol=1e-4, atol=1e-4)


def test_windows_recipe_is_one_window_per_channel(engine, tmp_path):
    windows = [(40, 80), (80, 200), (600, 2800)]
    model = seed_slice_model(16, 16, 3)
    loaded = engine.load(saved(model, tmp_path, "w"))
    volume = small_ct()
    volume[0, 0, 0] = 45.0  # inside the brain window
    by_hand = np.stack([np.clip((volume - (c - w / 2)) / w, 0, 1) for c, w in windows], axis=-1)
    spec = "windows:40,80;80,200;600,2800"
    prediction = engine.run(Volume.from_tensor(volume), get_strategy("slice"), loaded, channels=spec, batch_size=4)
    np.testing.assert_allclose(prediction.scores, keras_call(model, by_hand), rtol=1e-4, atol=1e-4)
    assert prediction.channels == spec and prediction.normalize == "none"
    assert 0 < by_hand[0, 0, 0, 0] < 1 and by_hand[..., 2].max() < 1  # each window really differs


def test_replicate_recipe_copies_the_grey_slice(engine, tmp_path):
    model = seed_slice_model(16, 16, 3)
    volume = small_ct()
    prediction = engine.run(Volume.from_tensor(volume), get_strategy("slice"), engine.load(saved(model, tmp_path, "r")), channels="replicate")
    np.testing.assert_allclose(prediction.scores, keras_call(model, np.repeat(volume[..., None], 3, axis=-1)), rtol=1e-4, atol=1e-4)
    assert prediction.channels == "replicate"


def test_builtin_models_record_replicate(engine):
    prediction = engine.run(Volume.from_tensor(torch.zeros(3, 64, 64)), get_strategy("slice"))
    assert prediction.channels == "replicate" and engine.builtin(get_strategy("slice")).channels == "replicate"


@pytest.mark.parametrize(
    "channels, model_channels, volume_channels, normalize, message",
    [
        ("neighbors", 4, 1, None, r"odd number of channels C = 2K\+1 ≥ 3.*takes 4"),
        ("neighbors:2", 3, 1, None, r"neighbors:2 channel recipe makes 5 channels per slice; the model takes 3"),
        ("windows:40,80;600,2800", 3, 1, None, r"makes 2 channels per slice; the model takes 3"),
        ("neighbors:1", 3, 3, None, r"from a grey volume; this volume has 3 channels"),
        ("windows:40,80;80,200;600,2800", 3, 1, "window:40,400", r"maps intensities itself"),
    ],
)
def test_recipes_that_cannot_fill_the_model_say_why(engine, tmp_path, channels, model_channels, volume_channels, normalize, message):
    loaded = engine.load(saved(seed_slice_model(16, 16, model_channels), tmp_path, "m"))
    volume = Volume.from_tensor(torch.zeros(4, 16, 16, volume_channels))
    with pytest.raises(SlicewiseError, match=message):
        engine.run(volume, get_strategy("slice"), loaded, channels=channels, normalize=normalize)


@pytest.mark.parametrize(
    "spec, canonical",
    [("replicate", "replicate"), ("Neighbours", "neighbors"), ("neighbors:2", "neighbors:2"), ("windows: 40,80 ; 600,2800", "windows:40,80;600,2800")],
)
def test_recipe_specs(spec, canonical):
    assert parse_recipe(spec).spec == canonical


@pytest.mark.parametrize("spec", ["copy", "neighbors:0", "neighbors:x", "windows:", "windows:40", "windows:40,-5", "windows:40,80;nan,3"])
def test_bad_recipe_specs(spec):
    with pytest.raises(SlicewiseError, match="channel recipe"):
        parse_recipe(spec)


def test_channel_source_builds_only_the_slices_asked_for():
    volume = torch.arange(5 * 2 * 2, dtype=torch.float32).reshape(5, 2, 2, 1)
    source = parse_recipe("neighbors:1").source(volume, None)
    assert source.shape == (5, 2, 2, 3) and len(source) == 5
    part = source[3:5]
    assert part.shape == (2, 2, 2, 3) and part.data_ptr() % 64 == 0
    assert torch.equal(part[1, ..., 2], volume[4, ..., 0]) and torch.equal(part[0, ..., 0], volume[2, ..., 0])
    assert source[5:9].shape == (0, 2, 2, 3)


def gapped(volume: Volume) -> Volume:
    """The same volume, marked as having slices that are not evenly spaced."""
    names = {f.name for f in dataclasses.fields(volume)}
    if "uniform_spacing" in names:
        return dataclasses.replace(volume, uniform_spacing=False)

    class Gapped(Volume):
        uniform_spacing = False

    return Gapped(**{f.name: getattr(volume, f.name) for f in dataclasses.fields(volume) if f.init})


def test_temporal_and_neighbors_note_uneven_spacing(engine, tmp_path):
    even = Volume.from_tensor(torch.zeros(5, 64, 64))
    uneven = gapped(even)
    def spacing_notes(prediction) -> list[str]:  # the built-in models also say zeros are not CT
        return [note for note in prediction.notes if note != BUILTIN_ON_NON_CT]

    assert spacing_notes(engine.run(even, get_strategy("temporal"))) == []
    notes = spacing_notes(engine.run(uneven, get_strategy("temporal")))
    assert len(notes) == 1 and "not evenly spaced" in notes[0]
    assert spacing_notes(engine.run(uneven, get_strategy("slice"))) == []
    loaded = engine.load(saved(seed_slice_model(64, 64, 3), tmp_path, "n"))
    assert "neighbors" in engine.run(uneven, get_strategy("slice"), loaded, channels="neighbors").notes[0]
