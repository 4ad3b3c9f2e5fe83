"""Model files are code: safe mode refuses what would run, and the opt-in is explicit."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from app.errors import ModelError


def lambda_model(marker) -> keras.Model:
    """A model whose Lambda layer writes ``marker`` whenever it runs."""
    inputs = keras.Input((4,))
    write_marker = eval(f"lambda x: (open({str(marker)!r}, 'w').write('ran'), x)[1]")  # no closure: Keras stores bytecode
    payload = layers.Lambda(write_marker)(inputs)
    return keras.Model(inputs, layers.Dense(1)(payload))


def test_lambda_layer_refused_and_payload_not_run(engine, tmp_path):
    marker = tmp_path / "payload_ran"
    lambda_model(marker).save(tmp_path / "lambda.keras")
    marker.unlink(missing_ok=True)
    with pytest.raises(ModelError, match=r"lambda\.keras: .*safe mode.*--unsafe-model"):
        engine.load(tmp_path / "lambda.keras")
    assert not marker.exists()
    engine.load(tmp_path / "lambda.keras", unsafe=True)  # the user's explicit opt-in
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
