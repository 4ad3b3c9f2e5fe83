"""Model files are code: safe mode refuses what would run, and the opt-in is explicit."""

from __future__ import annotations

import keras
import pytest
import torch
from keras import layers

from app.errors import ModelError
from app.volume import Volume
from tests.bad_inputs import lambda_model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_refused_and_payload_not_run(engine, tmp_path, suffix):
    marker = tmp_path / "payload_ran"
    lambda_model(marker).save(tmp_path / f"lambda{suffix}")
    marker.unlink(missing_ok=True)
    with pytest.raises(ModelError, match=rf"lambda\{suffix}: refused by safe mode: it holds Python code .*Lambda layer 'lambda.*--unsafe-model"):
        engine.load(tmp_path / f"lambda{suffix}")
    assert not marker.exists()
    engine.load(tmp_path / f"lambda{suffix}", unsafe=True)  # the user's explicit opt-in
    assert marker.exists()


def test_not_a_model_file(engine, tmp_path):
    (tmp_path / "m.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match=r"m\.keras: cannot load Keras model"):
        engine.load(tmp_path / "m.keras")
    (tmp_path / "weights.txt").write_text("1 2 3")
    with pytest.raises(ModelError, match="not a Keras model file"):
        engine.load(tmp_path / "weights.txt")


def test_two_input_model_refused(engine, tmp_path):
    a, b = keras.Input((4,)), keras.Input((4,))
    keras.Model([a, b], layers.Dense(1)(layers.Concatenate()([a, b]))).save(tmp_path / "two.keras")
    with pytest.raises(ModelError, match="2 inputs"):
        engine.load(tmp_path / "two.keras")


@keras.saving.register_keras_serializable(package="hostile")
class MarkerLayer(layers.Layer):
    """A custom layer: building it from a file would run this code (and write the marker)."""

    marker = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if MarkerLayer.marker is not None:
            MarkerLayer.marker.write_text("ran")

    def call(self, x):
        return x


def test_custom_object_refused_even_when_registered(engine, tmp_path):
    """Keras' safe mode would build a registered custom class; Slicewise refuses it before Keras
    reads the file, so the class's code never runs."""
    inputs = keras.Input((4,))
    keras.Model(inputs, layers.Dense(1)(MarkerLayer()(inputs))).save(tmp_path / "custom.keras")
    MarkerLayer.marker = tmp_path / "payload_ran"
    try:
        with pytest.raises(ModelError, match=r"custom\.keras: refused by safe mode: it needs code from outside Keras.*'hostile>MarkerLayer' from module"):
            engine.load(tmp_path / "custom.keras")
        assert not MarkerLayer.marker.exists()
    finally:
        MarkerLayer.marker = None


def test_h5_reading_other_files_refused(engine, tmp_path):
    import h5py

    keras.Sequential([keras.Input((4,)), layers.Dense(1)]).save(tmp_path / "linked.h5")
    with h5py.File(tmp_path / "linked.h5", "a") as f:
        f["model_weights/elsewhere"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(ModelError, match=r"linked\.h5: refused by safe mode: it reads data from other files .*/etc/passwd"):
        engine.load(tmp_path / "linked.h5")


def test_plain_h5_model_loads(engine, tmp_path):
    keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(2, activation="softmax")]).save(tmp_path / "plain.h5")
    model = engine.load(tmp_path / "plain.h5")
    assert model.spec.input_shape == (8, 8, 1) and model.spec.output_shape == (2,)


def test_model_without_floating_output_refused(engine, tmp_path):
    keras.Sequential([keras.Input((4,)), layers.Discretization(bin_boundaries=[0.5])]).save(tmp_path / "bins.keras")
    with pytest.raises(ModelError, match=r"bins\.keras: model output is int\d+, not floating point \(input \(4,\) → output \(4,\)\)"):
        engine.load(tmp_path / "bins.keras")


def test_unsafe_opt_in_is_explicit_and_loud(tmp_path, capsys):
    """Without the flag the CLI refuses and the payload does not run; with it, a warning says so."""
    import numpy as np

    from app.cli import main

    marker = tmp_path / "payload_ran"
    lambda_model(marker, (8, 8, 1)).save(tmp_path / "trusted.keras")
    marker.unlink(missing_ok=True)
    np.save(tmp_path / "v.npy", np.zeros((2, 8, 8), np.float32))
    args = ["predict", str(tmp_path / "v.npy"), "--model", str(tmp_path / "trusted.keras"), "--out", str(tmp_path / "o.csv")]
    assert main(args) == 2
    assert "refused by safe mode" in capsys.readouterr().err and not marker.exists()
    assert main([*args, "--unsafe-model"]) == 0
    assert "warning: --unsafe-model: Keras safe mode is off" in capsys.readouterr().err
    assert marker.exists()


# -- several outputs, named classes -------------------------------------------------------------


def two_headed(path, as_dict: bool = False):
    """A slice model with a 3-class softmax head and a 1-score linear head."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 1))
    x = layers.Flatten()(inputs)
    heads = {"kind": layers.Dense(3, activation="softmax", name="kind")(x), "size": layers.Dense(1, name="size")(x)}
    model = keras.Model(inputs, heads if as_dict else [heads["kind"], heads["size"]])
    model.save(path)
    return model


def volume_8x8():
    import torch

    from app.volume import Volume

    data = torch.rand(5, 8, 8, generator=torch.Generator().manual_seed(8))
    return Volume.from_tensor(data), data.numpy()[..., None]


@pytest.mark.parametrize("as_dict", [False, True])
def test_model_with_several_outputs_scores_the_chosen_one(engine, tmp_path, as_dict):
    import numpy as np

    from app.inference.models import output_names
    from app.strategies import get_strategy

    model = two_headed(tmp_path / "heads.keras", as_dict)
    loaded = engine.load(tmp_path / "heads.keras")
    assert loaded.outputs == output_names(loaded.whole) == (("kind", "size") if not as_dict else tuple(sorted(("kind", "size"))))
    volume, x = volume_8x8()
    by_hand = model(x, training=False)
    by_hand = {"kind": by_hand["kind"] if as_dict else by_hand[0], "size": by_hand["size"] if as_dict else by_hand[1]}

    first = engine.run(volume, get_strategy("slice"), loaded)
    assert first.output == loaded.outputs[0] and first.output_names == loaded.outputs
    kind = engine.run(volume, get_strategy("slice"), loaded.with_output("kind"))
    np.testing.assert_allclose(kind.scores, np.asarray(by_hand["kind"]), rtol=1e-5, atol=1e-6)
    assert kind.activation == "softmax" and kind.output == "kind"
    np.testing.assert_allclose(kind.scores.sum(axis=1), 1, rtol=1e-5)  # the model's own softmax, nothing added
    size = engine.run(volume, get_strategy("slice"), engine.load(tmp_path / "heads.keras", output="size"))
    np.testing.assert_allclose(size.scores, np.asarray(by_hand["size"]), rtol=1e-5, atol=1e-6)
    assert size.activation == "linear" and size.scores.shape == (5, 1)
    with pytest.raises(ModelError, match=r"heads\.keras has no output 'volume'; its outputs: .*kind"):
        loaded.with_output("volume")
    by_run = engine.run(volume, get_strategy("slice"), loaded, output="size", classes=["length"])  # the same, chosen per run
    np.testing.assert_allclose(by_run.scores, size.scores)
    assert by_run.output == "size" and by_run.score_names == ["length"]


def test_class_names_from_the_json_beside_the_model_or_given(engine, tmp_path):
    import json

    from app.strategies import get_strategy

    two_headed(tmp_path / "heads.keras")
    (tmp_path / "heads.json").write_text(json.dumps({"classes": {"kind": ["none", "bleed", "tumour"]}}))
    loaded = engine.load(tmp_path / "heads.keras")
    assert loaded.output == "kind" and loaded.classes == ("none", "bleed", "tumour")
    assert loaded.with_output("size").classes is None
    volume, _ = volume_8x8()
    prediction = engine.run(volume, get_strategy("slice"), loaded)
    assert prediction.score_names == ["none", "bleed", "tumour"]
    assert engine.load(tmp_path / "heads.keras", classes="a, b ,c").classes == ("a", "b", "c")
    with pytest.raises(ModelError, match=r"2 class names \(a, b\) for an output 'kind' of 3 scores per slice"):
        engine.load(tmp_path / "heads.keras", classes="a,b")
    with pytest.raises(ModelError, match="each name must be different"):
        loaded.with_classes("a,a,b")
    (tmp_path / "heads.json").write_text(json.dumps({"classes": ["x", "y"]}))  # a list names the first output
    with pytest.raises(ModelError, match="2 class names"):
        engine.load(tmp_path / "heads.keras")
    (tmp_path / "heads.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"heads\.json: cannot read the model's metadata"):
        engine.load(tmp_path / "heads.keras")


# -- TensorFlow SavedModel folders --------------------------------------------------------------


def saved_module(path, inputs: int = 1, read_file: bool = False):
    """A SavedModel of a tf.Module: one (or two) inputs of 4×4×1 slices, two outputs."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal((16, 2), seed=(1, 2)))

        def score(self, x):
            logits = tf.reshape(x, (-1, 16)) @ self.w
            if read_file:
                logits += tf.cast(tf.strings.length(tf.io.read_file(str(path) + "/saved_model.pb")), tf.float32) * 0
            return {"logits": logits, "probs": tf.nn.softmax(logits)}

    module = Scorer()
    spec = tf.TensorSpec([None, 4, 4, 1], tf.float32)
    if inputs == 1:
        function = tf.function(module.score, input_signature=[spec])
    else:
        function = tf.function(lambda a, b: module.score(a + b), input_signature=[spec, tf.TensorSpec([None, 4, 4, 1], tf.float32, name="b")])
    tf.saved_model.save(module, str(path), signatures={"serving_default": function})
    return module


def test_saved_model_folder_scores_through_its_endpoint(engine, tmp_path):
    import numpy as np
    import torch

    from app.strategies import get_strategy
    from app.volume import Volume

    module = saved_module(tmp_path / "legacy")
    loaded = engine.load(tmp_path / "legacy", output="probs")
    assert loaded.outputs == ("logits", "probs") and loaded.spec.input_shape == (4, 4, 1)
    assert len(loaded.sha256) == 64 and loaded.activation is None  # a graph does not say
    data = torch.rand(6, 4, 4, generator=torch.Generator().manual_seed(9))
    prediction = engine.run(Volume.from_tensor(data), get_strategy("slice"), loaded, batch_size=4)
    expected = module.score(data.numpy()[..., None])["probs"].numpy()
    np.testing.assert_allclose(prediction.scores, expected, rtol=1e-5, atol=1e-6)
    assert prediction.output == "probs" and prediction.model_source == str(tmp_path / "legacy")


def test_keras_export_folder_scores(engine, tmp_path):
    import numpy as np
    import torch

    from app.strategies import get_strategy
    from app.volume import Volume

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4, 4, 1)), layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.export(tmp_path / "exported", verbose=False)
    data = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(10))
    prediction = engine.run(Volume.from_tensor(data), get_strategy("slice"), engine.load(tmp_path / "exported"))
    np.testing.assert_allclose(prediction.scores, model(data.numpy()[..., None]).numpy(), rtol=1e-5, atol=1e-6)


def test_saved_model_with_two_input_endpoint_refused_naming_its_signature(engine, tmp_path):
    saved_module(tmp_path / "pair", inputs=2)
    with pytest.raises(ModelError, match=r"pair: its endpoint serving_default\(a: float32 \(None, 4, 4, 1\), b: float32 \(None, 4, 4, 1\)\) → .*takes 2 tensors"):
        engine.load(tmp_path / "pair")


def test_saved_model_reading_files_refused_unless_trusted(engine, tmp_path):
    saved_module(tmp_path / "reader", read_file=True)
    with pytest.raises(ModelError, match=r"reader: refused: its TensorFlow graph reads or writes files .*ReadFile.*--unsafe-model"):
        engine.load(tmp_path / "reader")
    assert engine.load(tmp_path / "reader", unsafe=True).outputs == ("logits", "probs")


def test_folder_that_is_no_saved_model(engine, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty: a folder, but not a TensorFlow SavedModel"):
        engine.load(tmp_path / "empty")


def test_a_model_that_raises_is_a_model_error(engine):
    """The engine calls a traced model through its concrete function, traced on the first call:
    a model that cannot run still fails there, as a ModelError naming it, its input, the volume
    and the batch, then the reason."""
    import keras

    from app.inference.models import LoadedModel, spec_of
    from app.strategies import get_strategy

    class Broken(keras.Model):
        def call(self, x, training=False):
            raise ValueError("this model always fails")

    spec = spec_of(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]))
    volume = Volume.from_tensor(torch.rand(4, 8, 8))
    with pytest.raises(ModelError, match=r"^broken \(input \(8, 8, 1\)\) failed on the volume 4×8×8×1 \(slices × height × width × channels\) \(a batch of shape \(4, 8, 8, 1\)\): .*this model always fails"):
        engine.run(volume, get_strategy("slice"), LoadedModel(Broken(), "broken", "", "none", spec))
