"""Segmentation models through the engine: tiny dense models built here, maps checked voxel by voxel."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch
from keras import layers

from app.errors import ModelError
from app.inference import Engine
from app.inference.models import LoadedModel, spec_of
from app.segmentation import tiling
from app.segmentation.dense_map import LEVELS
from app.segmentation.detect import dense_layout, dense_spec
from app.strategies import get_strategy
from app.volume import Volume

SLICE = get_strategy("slice")


@pytest.fixture(scope="module")
def engine() -> Engine:
    engine = Engine(threads=1)
    engine.start()
    return engine


def loaded(model, meta: dict | None = None, classes=None) -> LoadedModel:
    """A Keras model built here, as the engine gets a user's file."""
    out = LoadedModel(model, f"{model.name}.keras", "", "none", spec_of(model), meta=meta or {}, whole=model).with_output(None)
    return out.with_classes(classes) if classes else out


def threshold_model(t: float, shape=(None, None, 1), gain: float = 200.0):
    """A 1×1 convolution whose sigmoid is ≥ 0.5 exactly where the voxel is ≥ t."""
    x = keras.Input(shape)
    y = layers.Conv2D(1, 1, activation="sigmoid", kernel_initializer=keras.initializers.Constant(gain), bias_initializer=keras.initializers.Constant(-gain * t))(x)
    return keras.Model(x, y, name="threshold")


def per_pixel(shape, classes: int = 2, activation: str = "sigmoid", seed: int = 0, conv=layers.Conv2D):
    """A per-voxel model (two 1×1 convolutions) of the given input shape, weights from ``seed``."""
    keras.utils.set_random_seed(seed)
    x = keras.Input(shape)
    y = conv(4, 1, activation="tanh", name="hidden")(x)
    y = conv(classes, 1, activation=activation, name="maps")(y)
    return keras.Model(x, y, name="per_pixel")


def same_weights(model, template):
    model.set_weights(template.get_weights())
    return model


def volume_of(data: np.ndarray, spacing=(2.0, 0.5, 0.8)) -> Volume:
    volume = Volume.from_tensor(torch.from_numpy(data.astype(np.float32)))
    affine = volume.affine.copy()
    affine[:3, :3] = affine[:3, :3] * np.array(spacing)[None, :]
    return Volume(volume.data, affine, "axial", volume.source, "", "float32")


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).random((6, 50, 70)).astype(np.float32)


def test_threshold_model_mask_is_exactly_the_voxels_above_t(engine, noise):
    volume = volume_of(noise)
    maps, batches = [], []
    prediction = engine.run(
        volume, SLICE, loaded(threshold_model(0.6)), batch_size=4, on_map=lambda i, p: maps.append((i, p)), on_batch=lambda *a: batches.append(a)
    )
    truth = noise >= 0.6
    assert np.array_equal(prediction.dense.label_map(), truth)
    assert prediction.reduce == "area" and prediction.unit == "mm²"
    np.testing.assert_allclose(prediction.scores[:, 0], truth.sum(axis=(1, 2)) * 0.5 * 0.8, rtol=1e-6)
    # streamed: every slice handed over once, in the run's one map (the prediction's), with the batch that finished it
    assert sorted(np.concatenate([i for i, _ in maps]).tolist()) == list(range(6))
    assert all(p is prediction.dense for _, p in maps)
    assert [len(b[2]) for b in batches] == [len(i) for i, _ in maps]
    seg = prediction.segmentation
    assert seg["kind"] == "sigmoid" and not seg["from_logits"] and seg["class_volumes"]["mask"]["voxels"] == int(truth.sum())
    assert seg["class_volumes"]["mask"]["volume_ml"] == pytest.approx(truth.sum() * 2.0 * 0.5 * 0.8 / 1000, rel=1e-5)


def test_reduce_max_and_mean(engine, noise):
    model = loaded(threshold_model(0.6, gain=1.0))
    p = 1 / (1 + np.exp(-(noise - 0.6)))
    top = engine.run(volume_of(noise), SLICE, model, reduce="max")
    mean = engine.run(volume_of(noise), SLICE, model, reduce="mean")
    assert top.unit == "" and top.reduce == "max"
    np.testing.assert_allclose(top.scores[:, 0], p.max(axis=(1, 2)), atol=1 / LEVELS)
    np.testing.assert_allclose(mean.scores[:, 0], p.mean(axis=(1, 2)), atol=1 / LEVELS)


def test_fixed_32_model_tiles_a_50x70_slice_without_seams(engine, noise):
    fixed = per_pixel((32, 32, 1))
    free = same_weights(per_pixel((None, None, 1)), fixed)
    tiled = engine.run(volume_of(noise), SLICE, loaded(fixed))
    whole = engine.run(volume_of(noise), SLICE, loaded(free))
    assert tiled.segmentation["tiling"]["window"] == [1, 32, 32]
    assert whole.segmentation["tiling"]["window"] == [1, 50, 70]
    difference = np.abs(tiled.dense.probabilities.astype(int) - whole.dense.probabilities.astype(int))
    assert difference.max() <= 1  # the blend of equal values is that value (to a rounding of the uint8 level)
    expected = np.asarray(free(noise[..., None], training=False))
    np.testing.assert_allclose(tiled.dense.probabilities / LEVELS, expected, atol=1 / LEVELS)


def test_windows_cover_the_grid_shifted_inwards_and_weights_are_gaussian():
    assert tiling.starts(70, 32, 0.25) == [0, 24, 38]
    assert tiling.starts(50, 32, 0.25) == [0, 18]
    assert tiling.starts(20, 32, 0.25) == [0]
    w = tiling.gaussian((32, 32))
    assert w.max() == 1.0 and w.min() > 0 and w[15:17, 15:17].min() == pytest.approx(1.0, abs=0.01)
    sigma = 32 / 8
    assert w[15, 0] / w[15, 15] == pytest.approx(np.exp(-0.5 * ((15.5 - 0) ** 2 - 0.5**2) / sigma**2), rel=1e-3)


def test_fixed_3d_model_sliding_window_equals_whole_volume(engine):
    data = np.random.default_rng(1).random((10, 20, 30)).astype(np.float32)
    fixed = per_pixel((4, 16, 16, 1), classes=1, conv=layers.Conv3D)
    free = same_weights(per_pixel((None, None, None, 1), classes=1, conv=layers.Conv3D), fixed)
    tiled = engine.run(volume_of(data), SLICE, loaded(fixed), batch_size=5)
    whole = engine.run(volume_of(data), SLICE, loaded(free))
    assert tiled.segmentation["dims"] == 3 and tiled.segmentation["tiling"]["window"] == [4, 16, 16]
    assert np.abs(tiled.dense.probabilities.astype(int) - whole.dense.probabilities.astype(int)).max() <= 1
    assert np.array_equal(tiled.dense.label_map(), whole.dense.label_map())


def test_softmax_three_classes_background_from_json(engine, noise):
    model = loaded(per_pixel((None, None, 1), classes=3, activation="softmax", seed=4), meta={"background": "air"}, classes=["bone", "air", "fat"])
    prediction = engine.run(volume_of(noise), SLICE, model)
    dense = prediction.dense
    assert dense.kind == "softmax" and dense.background == 1 and dense.foreground == (0, 2)
    assert prediction.classes == ("bone", "fat") and prediction.scores.shape == (6, 2)
    labels = dense.label_map()
    np.testing.assert_allclose(prediction.scores, np.stack([(labels == k).sum(axis=(1, 2)) for k in (0, 2)], axis=1) * 0.4, rtol=1e-6)
    p = np.asarray(model.keras_model(noise[..., None], training=False))
    top = np.sort(p, axis=-1)
    clear = top[..., -1] - top[..., -2] > 2 / LEVELS  # the uint8 levels may tie classes closer than that
    assert clear.mean() > 0.5 and np.array_equal(labels[clear], p.argmax(-1)[clear])
    assert set(prediction.segmentation["class_volumes"]) == {"bone", "fat"} and prediction.segmentation["background"] == "air"
    assert dense.probabilities.shape == (6, 50, 70, 3) and dense.background == 1 and dense.filled.all()


def test_linear_output_is_read_as_logits(engine, noise):
    model = loaded(threshold_model(0.6, gain=1.0))
    x = keras.Input((None, None, 1))
    logits = keras.Model(x, layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(1.0), bias_initializer=keras.initializers.Constant(-0.6))(x))
    a = engine.run(volume_of(noise), SLICE, model)
    b = engine.run(volume_of(noise), SLICE, loaded(logits))
    assert b.segmentation["from_logits"] and not a.segmentation["from_logits"]
    assert np.abs(a.dense.probabilities.astype(int) - b.dense.probabilities.astype(int)).max() <= 1


def test_channels_first_model_runs_transposed(engine, noise):
    keras.utils.set_random_seed(2)
    x = keras.Input((1, None, None))
    first = keras.Model(x, layers.Conv2D(2, 1, activation="sigmoid", data_format="channels_first")(x), name="first")
    x2 = keras.Input((None, None, 1))
    last = keras.Model(x2, layers.Conv2D(2, 1, activation="sigmoid")(x2))
    last.set_weights(first.get_weights())
    assert dense_layout((1, None, None), (2, None, None), True) == (True, 2)
    a = engine.run(volume_of(noise), SLICE, loaded(first))  # Keras transposes around TensorFlow's channels-last CPU kernels
    b = engine.run(volume_of(noise), SLICE, loaded(last))
    assert a.segmentation["channels_first"]
    assert np.abs(a.dense.probabilities.astype(int) - b.dense.probabilities.astype(int)).max() <= 1


def unet(levels: int = 2, shape=(None, None, 1)):
    keras.utils.set_random_seed(5)
    x = inputs = keras.Input(shape)
    skips = []
    for _ in range(levels):
        x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    for skip in reversed(skips):
        x = layers.Concatenate()([layers.UpSampling2D(2)(x), skip])
        x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid")(x), name="unet")


def test_fully_convolutional_unet_padded_to_its_stride_and_cropped(engine, noise):
    prediction = engine.run(volume_of(noise * 100 - 50), SLICE, loaded(unet(2)))
    assert prediction.segmentation["tiling"]["stride"] == 4
    assert prediction.segmentation["tiling"]["window"] == [1, 52, 72]
    assert prediction.dense.probabilities.shape == (6, 50, 70, 1)


def test_fit_resize_resamples_to_the_model_and_back(engine, noise):
    prediction = engine.run(volume_of(noise), SLICE, loaded(threshold_model(0.6, shape=(32, 32, 1))), fit="resize")
    assert prediction.segmentation["tiling"]["fit"] == "resize" and prediction.dense.probabilities.shape == (6, 50, 70, 1)
    with pytest.raises(ModelError, match="fit"):
        engine.run(volume_of(noise), SLICE, loaded(threshold_model(0.6)), fit="stretch")


def test_neighbor_channels_give_a_25d_model_its_slices(engine, noise):
    keras.utils.set_random_seed(0)
    x = keras.Input((None, None, 3))
    model = keras.Model(x, layers.Conv2D(1, 1, activation="sigmoid")(x))
    prediction = engine.run(volume_of(noise), SLICE, loaded(model), channels="neighbors:1")
    assert prediction.channels.startswith("neighbors") and prediction.dense.probabilities.shape == (6, 50, 70, 1)


def test_dense_model_refused_by_other_strategies(engine, noise):
    assert dense_spec(engine.builtin(SLICE)) is None  # a classifier
    with pytest.raises(ModelError, match="segmentation model"):
        engine.run(volume_of(noise), get_strategy("temporal"), loaded(threshold_model(0.5)))


def test_builtin_lesion_model_finds_the_phantoms_lesions(engine, tmp_path):
    import nibabel as nib

    from app.io import load_volume
    from app.phantom import lesion_mask, write_demo
    from app.segmentation.dice import dice

    image, _ = write_demo(tmp_path, seed=30_001, depth=24)
    nib.save(lesion_mask(seed=30_001, depth=24), tmp_path / "mask.nii.gz")
    volume, truth = load_volume(image), load_volume(tmp_path / "mask.nii.gz").data.numpy()[..., 0] > 0.5
    model = engine.load("builtin:lesion")
    assert model.source == "built-in:lesion" and model.normalize == "window:60,200"
    prediction = engine.run(volume, SLICE, model)
    assert prediction.classes is None and prediction.dense.classes == ("lesion",)
    assert truth.any() and float(dice(prediction.dense.label_map() > 0, truth)) > 0.7
    with pytest.raises(ModelError, match="builtin:lesion"):
        engine.load("builtin:nothing")

    from app.inference.models import RESOURCES

    as_file = engine.load(RESOURCES / "lesion.keras")  # the same file opened as a user's: its JSON's window applies
    assert as_file.source.endswith("lesion.keras") and as_file.normalize == "window:60,200"
    np.testing.assert_array_equal(engine.run(volume, SLICE, as_file).dense.label_map(), prediction.dense.label_map())
    assert engine.load("builtin:lesion", "zscore").normalize == engine.load(RESOURCES / "lesion.keras", "ZScore").normalize == "zscore"


def test_cancelled_between_batches(engine, noise):
    from app.errors import Cancelled

    seen = []
    with pytest.raises(Cancelled):
        engine.run(volume_of(noise), SLICE, loaded(threshold_model(0.5)), batch_size=2, on_map=lambda i, p: seen.append(i), cancelled=lambda: len(seen) > 0)
    assert len(seen) == 1


def test_mask_image_several_sigmoid_maps_and_probabilities(engine, noise):
    from app.segmentation.mask_export import mask_image

    volume = volume_of(noise)
    prediction = engine.run(volume, SLICE, loaded(per_pixel((None, None, 1), classes=2)))
    labels = mask_image(volume, prediction.dense)
    assert labels.shape == (6, 50, 70, 2) and labels.get_data_dtype() == np.uint8  # a from_tensor volume: its own source order
    assert np.array_equal(np.asarray(labels.dataobj), prediction.dense.masks(slice(None)).astype(np.uint8))
    probabilities = mask_image(volume, prediction.dense, probabilities=True)
    assert probabilities.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asarray(probabilities.dataobj), prediction.dense.probabilities / LEVELS, atol=1e-6)
