"""Saliency maps: Grad-CAM of the shipped slice model points at the phantom's lesions (a random
map does not); the maps match the keras-io recipe and a hand-computed gradient × input; inputs
come through the strategy's own plan, so a slice asked for alone gets the map it gets among all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.errors import Cancelled, ModelError
from app.inference.models import LoadedModel, spec_of
from app.inference.saliency import SaliencyComputer
from app.io import load_volume
from app.phantom import write_demo
from app.strategies import get_strategy
from app.volume import Volume

SEED = 20_000  # a phantom the shipped models were not trained on (see test_demo_models)
LESION_HU = 20.0  # a voxel a lesion raised by this much is part of the lesion mask
DILATION_PX = 12  # 1.5 cells of the slice model's 16 × 16 Grad-CAM grid on a 128-pixel slice


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """The phantom, its per-slice lesion masks ``(D, H, W)`` and its labels."""
    folder = tmp_path_factory.mktemp("phantom")
    image, labels_csv = write_demo(folder / "with", seed=SEED)
    plain, _ = write_demo(folder / "without", seed=SEED, lesions=0)  # same anatomy and noise
    volume = load_volume(image)
    lesion = (volume.data - load_volume(plain).data)[..., 0] >= LESION_HU
    labels = np.loadtxt(labels_csv, delimiter=",", skiprows=1, dtype=int)[:, 1]
    return volume, lesion, labels


@pytest.fixture(scope="module")
def slice_saliency(engine):
    return SaliencyComputer(engine, get_strategy("slice"))


def dilate(mask: torch.Tensor, pixels: int) -> np.ndarray:
    return (F.max_pool2d(mask.float()[:, None], 2 * pixels + 1, 1, pixels)[:, 0] > 0).numpy()


def salient_share_inside(maps: dict[int, np.ndarray], mask: np.ndarray) -> float:
    """Mean over slices of the share of the map's salient part (values ≥ half its peak) in ``mask``."""
    shares = []
    for index, m in maps.items():
        salient = np.where(m >= 0.5 * m.max(), m, 0.0)
        shares.append(salient[mask[index]].sum() / salient.sum())
    return float(np.mean(shares))


def test_slice_model_looks_at_the_lesions(phantom, slice_saliency):
    volume, lesion, labels = phantom
    positives = np.flatnonzero(labels)
    maps = slice_saliency.maps(volume, positives)
    assert slice_saliency.method == "Grad-CAM (layer conv2d_2)"
    mask = dilate(lesion, DILATION_PX)
    share = salient_share_inside(maps, mask)
    rng = np.random.default_rng(0)
    random_maps = {int(i): rng.random(volume.shape[1:3]).astype(np.float32) for i in positives}
    random_share = salient_share_inside(random_maps, mask)
    peaks_inside = np.mean([mask[i].flat[np.argmax(m)] for i, m in maps.items()])
    print(f"salient share inside the lesion mask (+{DILATION_PX} px): {share:.2f}, random map {random_share:.2f}; peaks inside {peaks_inside:.2f}")
    assert share >= 0.6 and random_share <= 0.2 and share >= 3 * random_share
    assert peaks_inside >= 0.8


def test_maps_are_on_the_slice_grid_in_zero_to_one(phantom, engine):
    volume, _, labels = phantom
    index = int(np.flatnonzero(labels)[0])
    for name in ("slice", "temporal", "embedding"):
        computer = SaliencyComputer(engine, get_strategy(name))
        (m,) = computer.maps(volume, [index]).values()
        assert m.shape == volume.shape[1:3] and m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() == pytest.approx(1.0)
        assert computer.method.startswith("Grad-CAM" if computer.model.spec.input_shape != (1024,) else "gradient × input")


@pytest.mark.parametrize("name", ["slice", "temporal", "embedding"])
def test_a_slice_alone_gets_the_map_it_gets_among_all(engine, name):
    """Inputs are built from a few slices around the one asked for; a window or a whole-depth
    sequence, and the edges, come out as they do from the plan over the whole volume."""
    rng = np.random.default_rng(1)
    volume = Volume.from_tensor(torch.from_numpy(rng.normal(40, 60, size=(40, 48, 40)).astype(np.float32)))
    computer = SaliencyComputer(engine, get_strategy(name), batch_size=64 if name == "temporal" else 16)
    every = range(volume.depth) if name != "temporal" else [0, 1, 20, 38, 39]
    together = computer.maps(volume, every)
    for index in (0, 1, 20, 38, 39):
        (alone,) = computer.maps(volume, [index]).values()
        np.testing.assert_allclose(alone, together[index], atol=1e-4)


@pytest.fixture(scope="module")
def slab_model(engine):
    """The embedding strategy's own encoder + pool + head architecture (seeded weights)."""
    engine.start()
    from app.inference.models import spec_of

    model = get_strategy("embedding").build_model()
    return LoadedModel(model, "slab", "", "none", spec_of(model))


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_slab_model_alone_and_among_all(engine, slab_model, pool):
    from app.strategies.embedding import EmbeddingStrategy

    computer = SaliencyComputer(engine, EmbeddingStrategy(slab=5, pool=pool), slab_model)
    assert computer.method.startswith("Grad-CAM (layer conv2d") and "slab" in computer.method
    volume = Volume.from_tensor(torch.from_numpy(np.random.default_rng(4).random((30, 40, 36)).astype(np.float32)))
    together = computer.maps(volume, range(volume.depth))
    for index in (0, 1, 15, 29):
        (alone,) = computer.maps(volume, [index]).values()
        np.testing.assert_allclose(alone, together[index], atol=1e-4)
        assert alone.shape == (40, 36)


def test_slab_grad_cam_matches_one_tensorflow_pass_over_the_slab(engine, slab_model):
    """With mean pooling, the map of slice d equals Grad-CAM taken in one TensorFlow tape over
    its slab (encoder on every slab slice, mean, head), at slice d's own activations."""
    import keras
    import tensorflow as tf

    from app.strategies.embedding import EmbeddingStrategy, split_model

    computer = SaliencyComputer(engine, EmbeddingStrategy(slab=3, pool="mean"), slab_model)
    x = np.random.default_rng(5).random((9, 64, 64)).astype(np.float32)
    ours = computer.maps(Volume.from_tensor(torch.from_numpy(x)), [4])[4]
    parts = split_model(slab_model.keras_model)
    layers = [layer for layer in parts.encoder.layers if not isinstance(layer, keras.layers.InputLayer)]
    last_conv = max(i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D))
    h = tf.constant(x[3:6, :, :, None])
    with tf.GradientTape() as tape:
        for i, layer in enumerate(layers):
            h = layer(h)
            if i == last_conv:
                acts = h
        score = parts.head(tf.reduce_mean(h, axis=0, keepdims=True))[0, 0]
    grads = tape.gradient(score, acts)[1]  # slice 4 is the slab's middle one
    cam = tf.nn.relu(tf.einsum("hwc,c->hw", acts[1], tf.reduce_mean(grads, axis=(0, 1)))).numpy()
    assert cam.max() > 0
    reference = F.interpolate(torch.from_numpy(cam)[None, None], size=(64, 64), mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(ours, reference / reference.max(), atol=1e-4)


def keras_io_grad_cam(model, layer_name: str, x: np.ndarray) -> np.ndarray:
    """The recipe of keras-io examples/vision/grad_cam.py, on the model's own output."""
    import keras
    import tensorflow as tf

    grad_model = keras.Model(model.input, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        conv, preds = grad_model(x)
        score = preds[:, 0]
    grads = tape.gradient(score, conv)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    return tf.nn.relu(tf.einsum("bhwc,bc->bhw", conv, weights)).numpy()


def test_grad_cam_of_a_functional_model_matches_the_keras_io_recipe(engine):
    engine.start()
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    inputs = keras.Input((32, 32, 1))
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    b = layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(layers.MaxPooling2D(2)(a))
    pooled = layers.Concatenate()([layers.GlobalAveragePooling2D()(b), layers.GlobalMaxPooling2D()(b)])
    positive = keras.initializers.RandomUniform(0.0, 0.2)  # so that some channel weights are positive
    model = keras.Model(inputs, layers.Dense(1, activation="sigmoid", kernel_initializer=positive)(pooled))
    loaded = LoadedModel(model, "functional", "", "none", spec_of(model))
    volume = Volume.from_tensor(torch.from_numpy(np.random.default_rng(2).random((3, 32, 32)).astype(np.float32)))
    computer = SaliencyComputer(engine, get_strategy("slice"), loaded)
    assert computer.method == "Grad-CAM (layer last_conv)"
    ours = computer.maps(volume, range(3))
    reference = keras_io_grad_cam(model, "last_conv", volume.data.numpy())
    reference = F.interpolate(torch.from_numpy(reference)[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0].numpy()
    assert all(r.max() > 0 for r in reference)
    for k in range(3):  # the same map up to its scale (ours is the logit's, scaled to a peak of 1)
        np.testing.assert_allclose(ours[k], reference[k] / reference[k].max(), atol=1e-4)


def test_nested_sequential_model_finds_its_inner_convolution(engine):
    engine.start()
    import keras
    from keras import layers

    keras.utils.set_random_seed(6)
    features = keras.Sequential([layers.Conv2D(4, 3, padding="same", activation="relu", name="inner_conv"), layers.MaxPooling2D(2)], name="features")
    model = keras.Sequential([keras.Input((16, 16, 1)), features, layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
    computer = SaliencyComputer(engine, get_strategy("slice"), LoadedModel(model, "nested", "", "none", spec_of(model)))
    assert computer.method == "Grad-CAM (layer inner_conv)"
    volume = Volume.from_tensor(torch.rand(2, 24, 20))
    assert computer.maps(volume, [1])[1].shape == (24, 20)


def test_gradient_times_input_of_a_linear_model_is_its_weights_times_the_pixels(engine):
    """For ``y = w · x`` the attribution of pixel ``i`` is exactly ``w_i x_i``."""
    engine.start()
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((8 * 8,)), layers.Dense(1)])
    computer = SaliencyComputer(engine, get_strategy("slice"), LoadedModel(model, "linear", "", "none", spec_of(model)))
    assert computer.method == "gradient × input"
    x = np.random.default_rng(3).random((2, 8, 8)).astype(np.float32)
    maps = computer.maps(Volume.from_tensor(torch.from_numpy(x)), [0, 1])
    w = model.layers[-1].kernel.numpy()[:, 0].reshape(8, 8)
    for k in range(2):
        expected = np.abs(w * x[k])
        np.testing.assert_allclose(maps[k], expected / expected.max(), atol=1e-5)


def test_cancel_and_bad_slices(phantom, slice_saliency):
    volume, _, _ = phantom
    with pytest.raises(Cancelled):
        slice_saliency.maps(volume, range(volume.depth), cancelled=lambda: True)
    with pytest.raises(ModelError, match="slice 64 does not exist"):
        slice_saliency.maps(volume, [64])
    assert slice_saliency.maps(volume, []) == {}
