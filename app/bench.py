"""Speed figures, measured side by side in one run: ``python -m app.bench [--quick] [--json FILE]``.

Each figure is a ratio of two times taken in the same process (or fresh processes started one
after the other), so it holds on a noisy machine; both raw times are printed with it.  No test
asserts a time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str
    raw: dict[str, float]

    def line(self) -> str:
        raw = "  ".join(f"{k}={v:.4g}" for k, v in self.raw.items())
        return f"{self.name} {self.value:.3g} {self.unit}  (target {self.target}; {raw})"


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (the least disturbed by the machine)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def seed_loop_speedup(engine, repeats: int) -> Figure:
    """The seed article's Example 1 (one ``predict`` per slice) against the ``slice`` strategy."""
    import keras
    from keras import layers

    from app.inference.models import LoadedModel, spec_of
    from app.strategies import get_strategy
    from app.volume import Volume

    batch, depth, height, width, channels = 4, 10, 64, 64, 3
    tensor = torch.rand(batch, depth, height, width, channels, generator=torch.Generator().manual_seed(0))
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((height, width, channels)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(10, activation="relu"),
            layers.Dense(1),
        ]
    )

    def seed_loop():
        return np.stack([np.stack([model.predict(tensor[b, d].numpy()[None], verbose=0) for d in range(depth)]) for b in range(batch)])

    loaded = LoadedModel(model, "seed-example-1", "", "none", spec_of(model))
    volumes = [Volume.from_tensor(tensor[b]) for b in range(batch)]
    strategy = get_strategy("slice")

    def slicewise():
        return [engine.run(v, strategy, loaded).scores for v in volumes]

    seed_loop(), slicewise()  # warm both
    t_seed, t_ours = best_of(seed_loop, repeats), best_of(slicewise, repeats)
    return Figure("seed_loop_speedup", t_seed / t_ours, "x", ">= 50", {"seed_loop_s": t_seed, "slicewise_s": t_ours})


def vs_bare_call(engine, repeats: int, depth: int = 300) -> Figure:
    """The ``slice`` strategy on a 300-slice volume at the model's input size, against one bare
    traced ``model(x)`` call on the same batch, already normalised and in TensorFlow."""
    from app import preprocessing
    from app.strategies import get_strategy
    from app.volume import Volume

    strategy = get_strategy("slice")
    model = engine.builtin(strategy)
    height, width, channels = model.spec.input_shape
    volume = Volume.from_tensor(torch.randn(depth, height, width, channels, generator=torch.Generator().manual_seed(1)) * 300)
    tf = engine.runtime.tf
    prepared = tf.constant(preprocessing.fit(model.normalize, volume.data)(volume.data).numpy())
    bare = tf.function(lambda x: model.keras_model(x, training=False), input_signature=[tf.TensorSpec((None, height, width, channels), tf.float32)], autograph=False)

    def bare_call():
        return bare(prepared).numpy()

    def slicewise():
        return engine.run(volume, strategy, model, batch_size=depth).scores

    bare_call(), slicewise()
    t_bare, t_ours = best_of(bare_call, repeats), best_of(slicewise, repeats)
    return Figure("vs_bare_call", t_ours / t_bare, "x", "<= 1.1", {"slicewise_s": t_ours, "bare_call_s": t_bare})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller volumes")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    from app.inference import Engine

    engine = Engine()
    repeats = 3 if args.quick else 7
    figures = []
    for measure in (seed_loop_speedup, vs_bare_call):
        figure = measure(engine, repeats)
        print(figure.line(), flush=True)
        figures.append(figure)
    if args.json:
        from pathlib import Path

        from app.atomic import write_atomic

        write_atomic(Path(args.json), json.dumps([asdict(f) for f in figures], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
