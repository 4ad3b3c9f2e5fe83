"""``embedding``: the seed article's Example 3 — depth pooled, flattened, into dense layers.

The volume score is the model on the depth-mean of the (fitted, normalised) slices.  So that
the plot has a curve for this strategy too, each slice alone (a one-slice pool) is scored as well.
"""

from __future__ import annotations

from app.strategies.base import ModelSpec, Plan, SliceBatches, Strategy, score_vector, slice_input

SLICE = (32, 32, 1)


class EmbeddingStrategy(Strategy):
    name = "embedding"
    title = "Depth-pooled embedding (dense)"
    summary = "slices pooled over depth into one feature vector, scored by dense layers"
    default_normalize = "window:60,200"
    slice_hint = SLICE

    def build_model(self):
        import keras
        from keras import layers

        keras.utils.set_random_seed(3)
        return keras.Sequential(
            [
                keras.Input((SLICE[0] * SLICE[1] * SLICE[2],)),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="relu"),
                layers.Dense(1, activation="sigmoid"),
            ],
            name="embedding_dense",
        )

    def plan(self, volume_shape, spec: ModelSpec, batch_size: int) -> Plan:
        shape = slice_input(volume_shape, spec, self.name)
        score_vector(spec, self.name)
        return SliceBatches(volume_shape[0], shape, batch_size, pool=True)
