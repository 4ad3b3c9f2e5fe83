"""``slice``: every slice is one 2D image; all slices go through the model in batches.

The seed article's Example 1 calls ``predict`` once per slice; here the slices go in chunks
through one traced ``model(x, training=False)``, which gives the same numbers far faster.
"""

from __future__ import annotations

from app.strategies.base import ModelSpec, Plan, SliceBatches, Strategy, score_vector, slice_input
from app.strategy_catalog import CATALOG

INPUT = (64, 64, 1)


class SliceStrategy(Strategy):
    name = "slice"
    title, summary = CATALOG["slice"]
    default_normalize = "window:60,200"

    def build_model(self):
        import keras
        from keras import layers

        keras.utils.set_random_seed(1)
        return keras.Sequential(
            [
                keras.Input(INPUT),
                layers.Conv2D(16, 3, activation="relu", padding="same"),
                layers.MaxPooling2D(2),
                layers.Conv2D(32, 3, activation="relu", padding="same"),
                layers.MaxPooling2D(2),
                layers.Conv2D(32, 3, activation="relu", padding="same"),
                layers.GlobalMaxPooling2D(),
                layers.Dense(16, activation="relu"),
                layers.Dense(1, activation="sigmoid"),
            ],
            name="slice_cnn",
        )

    def plan(self, volume_shape, spec: ModelSpec, batch_size: int) -> Plan:
        shape = slice_input(volume_shape, spec, self.name)
        score_vector(spec, self.name)
        return SliceBatches(volume_shape[0], shape, batch_size)
