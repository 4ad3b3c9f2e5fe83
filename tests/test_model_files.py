"""Model files are code: safe mode refuses what would run, and the opt-in is explicit."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from app.errors import ModelError
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
