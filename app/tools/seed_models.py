"""The seed article's three architectures, as reference models for the tests and the benchmark.

Example 2 is corrected: its Conv1D runs along depth (a sequence of flattened slices), not over
the flattened pixels with depth as channels.  Importing this module imports Keras: only the
tests and the benchmark do.
"""

from __future__ import annotations

import keras
from keras import layers


def seed_slice_model(height: int, width: int, channels: int) -> keras.Model:
    """Example 1: a 2D CNN on one slice."""
    keras.utils.set_random_seed(11)
    return keras.Sequential(
        [
            keras.Input((height, width, channels)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, activation="relu"),
            layers.Dense(1),
        ]
    )


def seed_temporal_model(length: int, features: int, outputs: int = 1) -> keras.Model:
    """Example 2, corrected: Conv1D over a sequence of ``length`` flattened slices along depth."""
    keras.utils.set_random_seed(12)
    return keras.Sequential(
        [
            keras.Input((length, features)),
            layers.Conv1D(32, 3, activation="relu"),
            layers.MaxPooling1D(2),
            layers.Flatten(),
            layers.Dense(10, activation="relu"),
            layers.Dense(outputs),
        ]
    )


def seed_embedding_model(features: int) -> keras.Model:
    """Example 3: dense layers on the depth-pooled, flattened volume."""
    keras.utils.set_random_seed(13)
    return keras.Sequential(
        [
            keras.Input((features,)),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="relu"),
            layers.Dense(1),
        ]
    )


def user_cnn(height: int = 256, width: int = 256) -> keras.Model:
    """A slice classifier of the size users bring (three strided convolutions, about 25k
    weights, 256 x 256 input): its compute, not Slicewise's hand-over, sets a run's time."""
    keras.utils.set_random_seed(14)
    return keras.Sequential(
        [
            keras.Input((height, width, 1)),
            layers.Conv2D(16, 3, strides=2, activation="relu"),
            layers.Conv2D(32, 3, strides=2, activation="relu"),
            layers.Conv2D(64, 3, strides=2, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(1, activation="sigmoid"),
        ],
        name="user_cnn",
    )


def user_unet(size: int = 128, levels: int = 4, base: int = 8) -> keras.Model:
    """A user-sized 2D U-Net: ``levels`` poolings, ``base`` filters doubling per level, a fixed
    ``size`` × ``size`` × 1 input and a one-class sigmoid map (as the public brain U-Nets)."""
    keras.utils.set_random_seed(7)
    x = inputs = keras.Input((size, size, 1))
    skips = []
    for level in range(levels):
        x = layers.Conv2D(base << level, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(base << level, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(base << levels, 3, padding="same", activation="relu")(x)
    for level in reversed(range(levels)):
        x = layers.Conv2DTranspose(base << level, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = layers.Conv2D(base << level, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(base << level, 3, padding="same", activation="relu")(x)
    return keras.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid")(x), name="user_unet")
