"""The embedding strategy scores each slice from the pooled slab of slices centred on it: the
numbers equal the model run whole on each slab (or on the slab's pooled pixels), computed by
hand with Keras, for every pooling, slab size and the volume's ends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from app.errors import ModelError, SlicewiseError
from app.strategies import get_strategy
from app.strategies.embedding import EmbeddingStrategy, configured, slab_bounds
from app.tools.seed_models import seed_embedding_model
from app.volume import Volume

D, H, W = 9, 12, 10


@pytest.fixture(scope="module")
def volume() -> Volume:
    return Volume.from_tensor(torch.rand(D, H, W, 1, generator=torch.Generator().manual_seed(4)))


def split_model(pool: str = "mean", named: bool = True):
    """A small sequence model of the strategy's three parts: encoder, pool, head."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    encoder = keras.Sequential([keras.Input((H, W, 1)), layers.Conv2D(4, 3, activation="relu"), layers.GlobalMaxPooling2D(), layers.Dense(6)], name="enc")
    head = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu"), layers.Dense(2)], name="head" if named else "top")
    slices = keras.Input((None, H, W, 1))
    embedded = layers.TimeDistributed(encoder, name="encoder")(slices)
    pooled = (layers.GlobalAveragePooling1D if pool == "mean" else layers.GlobalMaxPooling1D)(name="pool")(embedded)
    return keras.Model(slices, head(pooled))


def loaded(engine, model, tmp_path, name="m"):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return engine.load(path)


def slabs(slab: int):
    """``[lo, hi)`` of each slice's slab, by hand: (slab-1)//2 before, the rest after, cut to the volume."""
    before = (slab - 1) // 2
    return [(max(d - before, 0), min(d - before + slab, D)) for d in range(D)]


@pytest.mark.parametrize("slab", [1, 3, 4, 7, 30])
def test_split_model_equals_the_whole_model_on_each_slab(engine, volume, tmp_path, slab):
    model = split_model()
    prediction = engine.run(volume, EmbeddingStrategy(slab), loaded(engine, model, tmp_path), batch_size=4)
    x = volume.data.numpy()
    expected = np.concatenate([model(x[None, lo:hi], training=False).numpy() for lo, hi in slabs(slab)])
    np.testing.assert_allclose(prediction.scores, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prediction.volume_score, model(x[None], training=False).numpy()[0], rtol=1e-4, atol=1e-5)


def test_slab_bounds_at_the_ends():
    lo, hi = slab_bounds(torch.arange(D), 4, D)
    assert list(zip(lo.tolist(), hi.tolist())) == slabs(4)


def test_max_pool_of_the_model_itself(engine, volume, tmp_path):
    model = split_model("max")
    prediction = engine.run(volume, EmbeddingStrategy(3, "max"), loaded(engine, model, tmp_path))
    x = volume.data.numpy()
    expected = np.concatenate([model(x[None, lo:hi], training=False).numpy() for lo, hi in slabs(3)])
    np.testing.assert_allclose(prediction.scores, expected, rtol=1e-4, atol=1e-5)


def test_attention_pool_weights_slices_by_their_agreement_with_the_slab_mean(engine, volume, tmp_path):
    model = split_model()
    prediction = engine.run(volume, EmbeddingStrategy(5, "attention"), loaded(engine, model, tmp_path))
    encoder, head = model.get_layer("encoder").layer, model.get_layer("head")
    e = encoder(volume.data.numpy(), training=False).numpy().astype(np.float64)

    def attend(rows):
        q = rows.mean(axis=0)
        w = np.exp(rows @ q / np.sqrt(rows.shape[1]) - (rows @ q / np.sqrt(rows.shape[1])).max())
        return (w / w.sum()) @ rows

    pooled = np.stack([attend(e[lo:hi]) for lo, hi in slabs(5)]).astype(np.float32)
    np.testing.assert_allclose(prediction.scores, head(pooled, training=False).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prediction.volume_score, head(attend(e)[None].astype(np.float32)).numpy()[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_flat_model_scores_the_slab_pooled_pixels(engine, volume, tmp_path, pool):
    model = seed_embedding_model(H * W)
    prediction = engine.run(volume, EmbeddingStrategy(3, pool), loaded(engine, model, tmp_path), batch_size=2)
    flat = volume.data.numpy().reshape(D, -1)
    reduce = np.mean if pool == "mean" else np.max
    pooled = np.stack([reduce(flat[lo:hi], axis=0) for lo, hi in slabs(3)])
    np.testing.assert_allclose(prediction.scores, model.predict(pooled, verbose=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(prediction.volume_score, model.predict(reduce(flat, axis=0)[None], verbose=0)[0], rtol=1e-4, atol=1e-5)


def test_slab_of_one_is_each_slice_alone(engine, volume, tmp_path):
    model = seed_embedding_model(H * W)
    prediction = engine.run(volume, EmbeddingStrategy(1), loaded(engine, model, tmp_path))
    np.testing.assert_allclose(prediction.scores, model.predict(volume.data.numpy().reshape(D, -1), verbose=0), rtol=1e-4, atol=1e-5)


def test_progress_counts_encoder_and_head_batches(engine, volume, tmp_path):
    seen = []
    engine.run(volume, EmbeddingStrategy(3), loaded(engine, split_model(), tmp_path), batch_size=4, on_batch=lambda *a: seen.append((a[0], a[1], len(a[2]))))
    assert [s[0] for s in seen] == list(range(1, 8)) and {s[1] for s in seen} == {7}  # 3 encoder + 3 head batches + the volume
    assert [s[2] for s in seen] == [0, 0, 0, 4, 4, 1, 0]  # scores arrive with the head batches


def test_settings_are_recorded(engine, volume, tmp_path):
    prediction = engine.run(volume, EmbeddingStrategy(5, "max"), loaded(engine, split_model(), tmp_path))
    assert any("slab of 5 slices" in note and "max-pooled" in note for note in prediction.notes)
    assert EmbeddingStrategy(5, "max").options == {"slab": 5, "pool": "max"}


def test_sequence_model_without_the_named_parts_is_refused(engine, volume, tmp_path):
    with pytest.raises(ModelError, match=r"layers named encoder, pool, head.*encoder, pool, top"):
        engine.run(volume, EmbeddingStrategy(), loaded(engine, split_model(named=False), tmp_path))


@pytest.mark.parametrize("slab", [0, -2, 2.5, True])
def test_bad_slab_is_refused(slab):
    with pytest.raises(SlicewiseError, match="slab"):
        EmbeddingStrategy(slab)


def test_options_only_for_the_embedding_strategy():
    with pytest.raises(SlicewiseError, match="embedding"):
        configured(get_strategy("slice"), slab=3)
    with pytest.raises(SlicewiseError, match="pooling"):
        EmbeddingStrategy(3, "median")
    assert configured(get_strategy("embedding"), pool="max").options == {"slab": 3, "pool": "max"}


def test_cli_slab_and_lesion_free_demo(tmp_path, cli):
    slicewise = cli  # the commands in this process: the program's own exit is tested in test_cli
    done = slicewise("demo", "--out", tmp_path / "d", "--seed", "3", "--depth", "16", "--lesions", "0")
    assert done.returncode == 0, done.stderr
    labels = np.loadtxt(tmp_path / "d" / "labels.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert labels.shape == (16, 2) and not labels[:, 1].any()
    image = tmp_path / "d" / "phantom.nii.gz"
    done = slicewise("predict", image, "--strategy", "embedding", "--slab", "5", "--pool", "attention", "--out", tmp_path / "s.csv")
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "s.csv.json").read_text())
    assert "slab of 5 slices" in meta["volumes"][0]["runs"][0]["notes"][0]
    done = slicewise("predict", image, "--strategy", "slice", "--slab", "5", "--out", tmp_path / "x.csv")
    assert done.returncode == 2 and "--slab" in done.stderr and not (tmp_path / "x.csv").exists()
    done = slicewise("predict", image, "--strategy", "embedding", "--slab", "0", "--out", tmp_path / "x.csv")
    assert done.returncode == 2 and "slab" in done.stderr
