"""Occlusion sensitivity: on the shipped slice model it points at the phantom's lesions as Grad-CAM
does (the same lesion-mass check), for a Keras model and for its ONNX port; maps on the slice grid
in [0, 1], the method named with its patch and stride."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.errors import ModelError
from app.inference.occlusion import OcclusionComputer, saliency_computer
from app.inference.saliency import SaliencyComputer
from app.strategies import get_strategy
from app.volume import Volume
from tests.test_saliency import DILATION_PX, dilate, phantom, salient_share_inside  # noqa: F401 - phantom is a fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_occlusion_on_the_slice_model_looks_at_the_lesions(phantom, engine):  # noqa: F811
    volume, lesion, labels = phantom
    positives = np.flatnonzero(labels)
    computer = OcclusionComputer(engine, get_strategy("slice"))
    maps = computer.maps(volume, positives)
    assert computer.method == "occlusion (patch 8, stride 4)"  # the slice model's 64 × 64 input
    assert all(m.shape == volume.shape[1:3] and m.dtype == np.float32 and m.min() >= 0 and m.max() == 1 for m in maps.values())
    mask = dilate(lesion, DILATION_PX)
    share = salient_share_inside(maps, mask)
    rng = np.random.default_rng(0)
    random_share = salient_share_inside({int(i): rng.random(volume.shape[1:3]).astype(np.float32) for i in positives}, mask)
    peaks_inside = np.mean([mask[i].flat[np.argmax(m)] for i, m in maps.items()])
    print(f"occlusion: salient share inside the lesion mask (+{DILATION_PX} px): {share:.2f}, random map {random_share:.2f}; peaks inside {peaks_inside:.2f}")
    assert share >= 0.6 and random_share <= 0.2 and share >= 3 * random_share
    assert peaks_inside >= 0.8


def test_onnx_graph_and_its_keras_twin_get_the_same_occlusion_maps(engine, tmp_path):
    """Occlusion serves an ONNX model (its default saliency) and a Keras model alike: the same
    weights give the same maps; the weights read one 4 × 4 block, where the map peaks."""
    import keras
    import onnx
    from keras import layers

    from tests.onnx_models import nhwc_dense_graph

    size = 8
    weights = np.zeros((size, size, 1), np.float32)
    weights[2:6, 3:7] = 1.0
    kernel, bias = weights.reshape(-1, 1), np.array([-3.0], np.float32)
    onnx.save(nhwc_dense_graph(kernel, bias, size), tmp_path / "m.onnx")
    twin = keras.Sequential([keras.Input((size, size, 1)), layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    twin.layers[-1].set_weights([kernel, bias])
    twin.save(tmp_path / "m.keras")
    data = torch.full((3, size, size, 1), 0.1)
    data[:, 3:5, 4:6] = 1.0  # a bright spot inside the block
    volume = Volume.from_tensor(data)
    strategy = get_strategy("slice")
    port, keras_model = engine.load(tmp_path / "m.onnx"), engine.load(tmp_path / "m.keras")
    by_onnx = saliency_computer(engine, strategy, port, patch=2, stride=1)
    by_keras = saliency_computer(engine, strategy, keras_model, "occlusion", patch=2, stride=1)
    assert isinstance(by_onnx, OcclusionComputer) and isinstance(saliency_computer(engine, strategy, keras_model), SaliencyComputer)
    a, b = by_onnx.maps(volume, [0, 2]), by_keras.maps(volume, [0, 2])
    assert by_onnx.method == "occlusion (patch 2, stride 1)" and by_onnx.settings == {"patch": 2, "stride": 1}
    for index in (0, 2):
        np.testing.assert_allclose(a[index], b[index], atol=1e-4)
        row, col = np.unravel_index(np.argmax(a[index]), a[index].shape)
        assert 3 <= row < 5 and 4 <= col < 6 and a[index].max() == 1.0
        assert a[index][:, :2].max() == 0  # columns the weights never read (nor a patch reaching them)
    with pytest.raises(ModelError, match=r"m\.onnx: Grad-CAM needs a Keras model's gradients"):
        saliency_computer(engine, strategy, port, "gradcam")


def test_occlusion_of_a_sequence_model_occludes_the_slice_own_step(engine, tmp_path):
    """A temporal ONNX model (windows of 3 slices) that reads a block of the centre slice only: each
    slice's map is the block, from occluding that slice's own step in its window."""
    import onnx

    from tests.onnx_models import nhwc_dense_graph

    size = 8
    weights = np.zeros((3, size, size, 1), np.float32)
    weights[1, 1:4, 4:7] = 1.0  # the centre step
    onnx.save(nhwc_dense_graph(weights.reshape(-1, 1), np.array([-2.0], np.float32), size, steps=3), tmp_path / "seq.onnx")
    data = torch.full((5, size, size, 1), 0.1)
    data[:, 2:3, 5:6] = 1.0
    computer = saliency_computer(engine, get_strategy("temporal"), engine.load(tmp_path / "seq.onnx"), patch=2, stride=1)
    maps = computer.maps(Volume.from_tensor(data), [0, 2, 4])
    for m in maps.values():
        row, col = np.unravel_index(np.argmax(m), m.shape)
        assert 1 <= row < 4 and 4 <= col < 7 and m[:, :3].max() == 0
