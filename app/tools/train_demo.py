"""Train the three built-in demo models on synthetic phantoms: ``python -m app.tools.train_demo``.

Reproducible: fixed seeds for phantoms and weights, TensorFlow's deterministic ops.  Phantoms
are written as NIfTI and read back through the app's loader, normalised and fitted to the
models' 64 × 64 slices as at inference.  The training phantoms vary in body shape, noise,
depth (48, 64 or 80 slices) and lesions (size, contrast, position and count, from none to the
seed's own); one in eight has no lesion at all.  Writes ``resources/models/<strategy>.keras``
and updates ``<strategy>.json`` (preprocessing, input, training, held-out quality; keys it does
not know are kept).

``--evaluate`` scores the models in ``--out`` (by default the bundled ones) on phantoms from
seeds that training never sees and prints, per strategy, the mean and the worst per-slice ROC
AUC over the evaluation seeds, and the AUC with which the embedding strategy's volume score tells
phantoms with lesions from lesion-free ones; it exits with 1 if any figure is below its floor.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from app import preprocessing
from app.inference import Engine
from app.inference.models import RESOURCES, LoadedModel, spec_of
from app.io import load_volume
from app.phantom import lesion_mask, write_demo
from app.strategies import STRATEGIES, Strategy
from app.strategies.adapt import SliceShape, fit_slices
from app.strategies.embedding import SLAB, EmbeddingStrategy
from app.tools import train_lesion
from app.volume import Volume

TRAIN_SEEDS = range(128)
VALIDATION_SEEDS = range(10_000, 10_016)  # pick the slice CNN's epoch, reported in the JSONs
EVALUATION_SEEDS = range(20_000, 20_010)  # phantoms with lesions: per-slice AUC, each seed
LESION_FREE_SEEDS = range(20_010, 20_020)  # lesion-free phantoms for the volume score
DEPTHS = (48, 64, 80)
DEPTH = 64  # of the validation and evaluation phantoms (the generator's default)
NORMALIZE = "window:60,200"  # soft tissue 40 HU → 0.5, lesions +60…120 HU → 0.8…1
SLICE = SliceShape(64, 64, 1)  # all three built-in models take 64 × 64 slices
FLOORS = {"slice": 0.95, "temporal": 0.95, "embedding": 0.90}  # per-slice AUC, on every seed
VOLUME_FLOOR = 0.95  # embedding volume score: lesion vs lesion-free phantoms
EPOCHS = {"slice": 14, "temporal": 60, "embedding": 60}  # the last two on features: seconds
SEQUENCE = 16  # slices per training sequence (temporal, embedding)
MASK_GRID = (16, 16)  # the slice CNN's last convolution grid (64 / 4)
POSITIVE_WEIGHT = 2.0  # of lesion slices in the slice CNN's loss
WINDOWS = (1, SLAB, 7)  # slab sizes the embedding head is trained on (and whole sequences)


@dataclass(frozen=True)
class Case:
    """A phantom as the models see it: fitted slices ``(D, 64, 64, 1)`` and per-slice labels."""

    seed: int
    volume: Volume
    slices: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None  # (D, 16, 16): where a lesion shows, on the slice CNN's last grid


def training_variant(seed: int) -> tuple[int, int | None]:
    """Depth and lesion count of training phantom ``seed`` (None: the seed's own count)."""
    lesions = {0: 0, 1: 1, 2: 2}.get(seed % 8)
    return DEPTHS[seed % len(DEPTHS)], lesions


def phantom(seed: int, folder: Path, depth: int = DEPTH, lesions: int | None = None, size: int = 128, masks: bool = False) -> Case:
    """A phantom written as NIfTI and read back through the app's own loader, with its labels
    (and, if asked, its lesion mask, read back the same way so that it lies on the same grid)."""
    image, labels = write_demo(folder / f"seed{seed}-{lesions}", seed=seed, depth=depth, size=size, lesions=lesions)
    table = np.loadtxt(labels, delimiter=",", skiprows=1, dtype=np.int64)
    volume = load_volume(image)
    norm = preprocessing.fit(NORMALIZE, volume.data)
    grid = None
    if masks:
        path = image.with_name("mask.nii.gz")
        nib.save(lesion_mask(seed=seed, depth=depth, size=size, lesions=lesions), path)
        voxels = load_volume(path).data.permute(0, 3, 1, 2)
        grid = torch.nn.functional.adaptive_max_pool2d(voxels, MASK_GRID).permute(0, 2, 3, 1).numpy()
    return Case(seed, volume, fit_slices(norm(volume.data), SLICE).numpy(), table[:, 1].astype(np.float32), grid)


def training_set(folder: Path) -> list[Case]:
    return [phantom(seed, folder, *training_variant(seed), masks=True) for seed in TRAIN_SEEDS]


# -- training ----------------------------------------------------------------------------------------
#
# The slice model is trained first, end to end.  Its convolutions (three 3 × 3 layers, global max
# pool: 32 features per slice) are then the per-slice part of the other two models too, copied
# into them; each trains only what it adds on top, on the slices' features computed once:
# - temporal: the two Conv1D layers along depth and the output layer, on runs of slices;
# - embedding: the encoder's last dense layer (the 16-value embedding, started from the slice
#   model's) and the head, which learns the lesion fraction of mean-pooled windows of slices.


def features_model(slice_model):
    """The slice model up to its global pooling: ``(N, 64, 64, 1)`` → ``(N, 32)``."""
    import keras

    pool = next(layer for layer in slice_model.layers if type(layer).__name__ == "GlobalMaxPooling2D")
    return keras.Model(slice_model.inputs[0], pool.output)


def slice_features(slice_model, cases: list[Case]) -> list[np.ndarray]:
    extract = features_model(slice_model)
    return [np.concatenate([extract(c.slices[a : a + 64], training=False).numpy() for a in range(0, len(c.slices), 64)]) for c in cases]


def runs_of(values: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping runs of ``SEQUENCE`` slices (half overlapping) and their per-slice labels."""
    x, y = [], []
    for v, truth in zip(values, labels):
        for a in range(0, len(truth) - SEQUENCE + 1, SEQUENCE // 2):
            x.append(v[a : a + SEQUENCE])
            y.append(truth[a : a + SEQUENCE, None])
    return np.stack(x), np.stack(y)


def copy_convolutions(source, target) -> None:
    """Give ``target``'s convolutions (Conv2D, or Conv3D of depth 1) the slice model's weights."""
    convs = [layer for layer in source.layers if type(layer).__name__ == "Conv2D"]
    into = [layer for layer in target.layers if type(layer).__name__ in ("Conv2D", "Conv3D")]
    if len(convs) != len(into):
        raise SystemExit(f"cannot start {target.name} from the slice model: {len(into)} convolutions, not {len(convs)}")
    for conv, other in zip(convs, into):
        kernel, bias = conv.get_weights()
        shape = tuple(other.get_weights()[0].shape)
        other.set_weights([kernel.reshape(shape), bias])
        other.trainable = False


def fit(model, x, y, epochs: int, batch: int, rate: float = 2e-3, callbacks=(), weights=None) -> None:
    import keras

    steps = epochs * -(-len(x) // batch)
    schedule = keras.optimizers.schedules.CosineDecay(rate, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy")
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=list(callbacks), sample_weight=weights)


def train_slice(cases: list[Case], held_out: list[Case], seed: int = 0):
    """The slice CNN, end to end, with a second, training-only output: a 1 × 1 convolution on its
    last convolution's 16 × 16 grid that maps where the lesions show (the phantoms' masks).  That
    dense signal finds the lesions in a few epochs, where the slice label alone leaves the network
    on a plateau for many.  Keeps the weights of the epoch whose worst held-out phantom scores best."""
    import keras
    from keras import layers
    from sklearn.metrics import roc_auc_score

    keras.utils.set_random_seed(seed)
    model = STRATEGIES["slice"].build_model()

    class KeepBest(keras.callbacks.Callback):
        best, weights, epoch = (-1.0, -1.0), None, -1

        def on_epoch_end(self, epoch, logs=None):
            aucs = [roc_auc_score(c.labels, model(c.slices, training=False).numpy()[:, 0]) for c in held_out]
            print(f"  slice epoch {epoch + 1:2d}: loss {logs['loss']:.4f}, held-out AUC worst {min(aucs):.4f} mean {np.mean(aucs):.4f}", flush=True)
            if (min(aucs), np.mean(aucs)) > self.best:
                self.best, self.weights, self.epoch = (min(aucs), float(np.mean(aucs))), model.get_weights(), epoch

    last_conv = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"][-1]
    rare = float(np.log(0.01 / 0.99))  # starts at 1 % lesion cells, so the map does not first learn to silence the features
    where = layers.Conv2D(1, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(rare), name="where")(last_conv.output)
    x, y = np.concatenate([c.slices for c in cases]), np.concatenate([c.labels for c in cases])[:, None]
    grids = np.concatenate([c.masks for c in cases])
    keep = KeepBest()
    weights = np.where(y[:, 0] > 0.5, POSITIVE_WEIGHT, 1.0)  # a missed lesion costs more than a false alarm
    per_cell = np.ascontiguousarray(np.broadcast_to(weights[:, None, None], grids.shape[:3]))
    fit(keras.Model(model.inputs[0], [model.outputs[0], where]), x, [y, grids], EPOCHS["slice"], batch=32, callbacks=[keep], weights=[weights, per_cell])
    model.set_weights(keep.weights)
    print(f"slice: weights of epoch {keep.epoch + 1} of {EPOCHS['slice']} (held-out worst {keep.best[0]:.4f}, mean {keep.best[1]:.4f})", flush=True)
    return model


def train_temporal(slice_model, features: list[np.ndarray], cases: list[Case], seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    model = STRATEGIES["temporal"].build_model()
    copy_convolutions(slice_model, model)
    along_depth = model.layers[next(i for i, layer in enumerate(model.layers) if type(layer).__name__ == "Reshape") + 1 :]
    x = inputs = keras.Input((SEQUENCE, features[0].shape[1]))
    for layer in along_depth:
        x = layer(x)
    fit(keras.Model(inputs, x), *runs_of(features, [c.labels for c in cases]), EPOCHS["temporal"], batch=8)
    return model


def window_means(labels: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``labels`` ``(N, L, 1)`` over the ``size`` steps centred on each step, cut at the
    ends (as Keras' ``AveragePooling1D(size, 1, "same")`` and the strategy's slabs do)."""
    steps = labels.shape[1]
    sums = np.concatenate([np.zeros_like(labels[:, :1]), labels.cumsum(axis=1)], axis=1)
    lo = np.clip(np.arange(steps) - (size - 1) // 2, 0, steps)
    hi = np.clip(np.arange(steps) - (size - 1) // 2 + size, 0, steps)
    return (sums[:, hi] - sums[:, lo]) / (hi - lo)[None, :, None]


def train_embedding(slice_model, features: list[np.ndarray], cases: list[Case], seed: int = 0):
    """The head learns the fraction of pooled slices that show a lesion, from mean-pooled windows
    of several sizes and whole runs, so that it means the same for any slab and for the volume."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    model = STRATEGIES["embedding"].build_model()
    encoder = model.get_layer("encoder").layer
    copy_convolutions(slice_model, encoder)
    embed = encoder.layers[-1]  # Dense: features → embedding
    embed.set_weights(next(layer for layer in slice_model.layers if type(layer).__name__ == "Dense").get_weights())
    head = model.get_layer("head")
    inputs = keras.Input((SEQUENCE, features[0].shape[1]))
    embeddings = embed(inputs)
    outputs = [layers.TimeDistributed(head)(layers.AveragePooling1D(k, strides=1, padding="same")(embeddings)) for k in WINDOWS]
    outputs.append(head(layers.GlobalAveragePooling1D()(embeddings)))  # the whole run
    x, y = runs_of(features, [c.labels for c in cases])
    targets = [window_means(y, k) for k in WINDOWS] + [y.mean(axis=1)]
    fit(keras.Model(inputs, outputs), x, targets, EPOCHS["embedding"], batch=8)
    return model


def write_metadata(path: Path, updates: dict) -> None:
    """Update the model's JSON with ``updates``, keeping keys this script does not write."""
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.update(updates)
    path.write_text(json.dumps(meta, indent=2) + "\n")


# -- evaluation --------------------------------------------------------------------------------------


def slice_auc(engine: Engine, strategy: Strategy, model: LoadedModel | None, case: Case) -> float:
    """Per-slice ROC AUC of the strategy's scores on one phantom."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(case.labels, engine.run(case.volume, strategy, model).scores[:, 0]))


def volume_auc(engine: Engine, model: LoadedModel | None, with_lesions: list[Case], lesion_free: list[Case]) -> float:
    """ROC AUC of the embedding strategy's volume score: phantoms with lesions against lesion-free."""
    from sklearn.metrics import roc_auc_score

    strategy = EmbeddingStrategy()
    scores = [float(engine.run(c.volume, strategy, model).volume_score[0]) for c in [*with_lesions, *lesion_free]]
    return float(roc_auc_score([1] * len(with_lesions) + [0] * len(lesion_free), scores))


def load(engine: Engine, strategy: Strategy, folder: Path) -> LoadedModel | None:
    """The model in ``folder`` (None: the engine's built-in one, from resources/models)."""
    if folder.resolve() == RESOURCES.resolve():
        return None
    meta = json.loads((folder / f"{strategy.name}.json").read_text())
    return engine.load(folder / f"{strategy.name}.keras", meta["normalize"])


def evaluate(folder: Path, strategies: list[str]) -> int:
    """Print the evaluation table for the models in ``folder``; 1 if a floor is missed."""
    engine = Engine()
    engine.start()
    ok = True
    if train_lesion.NAME in strategies:
        shipped = folder.resolve() == RESOURCES.resolve()
        model = engine.load(f"builtin:{train_lesion.NAME}" if shipped else folder / f"{train_lesion.NAME}.keras", train_lesion.NORMALIZE)
        results, passed = train_lesion.evaluate(engine, model)
        ok &= passed
        listed = ", ".join(f"{seed}: {d:.3f}" for seed, d in results)
        print(f"lesion map: Dice against lesion_mask, worst {min(d for _, d in results):.3f} (floor {train_lesion.DICE_FLOOR:.2f}) on seeds {listed}")
        strategies = [s for s in strategies if s != train_lesion.NAME]
    if not strategies:
        print("every figure meets its floor" if ok else "some figure is below its floor")
        return 0 if ok else 1
    with tempfile.TemporaryDirectory() as tmp:
        cases = [phantom(seed, Path(tmp)) for seed in EVALUATION_SEEDS]
        print(f"per-slice ROC AUC on {len(cases)} phantoms, seeds {EVALUATION_SEEDS.start}-{EVALUATION_SEEDS.stop - 1} (never trained on)")
        print(f"{'strategy':10s} {'mean':>6s} {'worst':>6s} {'(seed)':>8s} {'floor':>6s}")
        for name in strategies:
            strategy = STRATEGIES[name]
            model = load(engine, strategy, folder)
            aucs = np.array([slice_auc(engine, strategy, model, case) for case in cases])
            worst = int(np.argmin(aucs))
            ok &= bool(aucs.min() >= FLOORS[name])
            print(f"{name:10s} {aucs.mean():6.3f} {aucs[worst]:6.3f} {f'({cases[worst].seed})':>8s} {FLOORS[name]:6.2f}")
        if "embedding" in strategies:
            free = [phantom(seed, Path(tmp), lesions=0) for seed in LESION_FREE_SEEDS]
            auc = volume_auc(engine, load(engine, STRATEGIES["embedding"], folder), cases, free)
            ok &= auc >= VOLUME_FLOOR
            print(
                f"embedding volume score: ROC AUC {auc:.3f} over {len(cases) + len(free)} phantoms "
                f"({len(cases)} with lesions, {len(free)} lesion-free, seeds {LESION_FREE_SEEDS.start}-{LESION_FREE_SEEDS.stop - 1}); floor {VOLUME_FLOOR:.2f}"
            )
    print("every figure meets its floor" if ok else "some figure is below its floor")
    return 0 if ok else 1


# -- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.train_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESOURCES, help="where the models are written or read (default: resources/models)")
    parser.add_argument(
        "--strategies",
        nargs="+",
        default=[*STRATEGIES, train_lesion.NAME],
        choices=[*STRATEGIES, train_lesion.NAME],
        help="models (lesion: the segmentation model)",
    )
    parser.add_argument("--evaluate", action="store_true", help="evaluate the models in --out on unseen phantoms instead of training")
    args = parser.parse_args(argv)
    if args.evaluate:
        return evaluate(args.out, args.strategies)
    if train_lesion.NAME in args.strategies:
        engine = Engine()
        engine.start()
        meta = train_lesion.train(args.out)
        write_metadata(args.out / f"{train_lesion.NAME}.json", meta)
        print(f"lesion     trained in {meta['train_seconds']:5.1f} s → {args.out / 'lesion.keras'}", flush=True)
        args.strategies = [s for s in args.strategies if s != train_lesion.NAME]
        if not args.strategies:
            return 0
    import keras
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    engine = Engine()
    engine.start()  # configure TensorFlow's threads before anything runs
    tf.config.experimental.enable_op_determinism()
    with tempfile.TemporaryDirectory() as tmp:
        started, cpu = time.perf_counter(), time.process_time()
        training = training_set(Path(tmp))
        held_out = [phantom(seed, Path(tmp)) for seed in VALIDATION_SEEDS]
        print(f"phantoms: {len(training)} training, {len(held_out)} held out ({time.perf_counter() - started:.1f} s)", flush=True)
        slice_model = None
        if "slice" not in args.strategies:  # the others start from the slice model already there
            slice_model = keras.saving.load_model(args.out / "slice.keras", safe_mode=True)
        features = None
        for name in [n for n in STRATEGIES if n in args.strategies]:  # slice first
            strategy = STRATEGIES[name]
            started, cpu = time.perf_counter(), time.process_time()
            if name == "slice":
                keras_model = slice_model = train_slice(training, held_out)
            else:
                features = features if features is not None else slice_features(slice_model, training)
                keras_model = (train_temporal if name == "temporal" else train_embedding)(slice_model, features, training)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
            path = args.out / f"{name}.keras"
            keras_model.save(path)
            model = LoadedModel(keras_model, str(path), "", NORMALIZE, spec_of(keras_model))
            aucs = [slice_auc(engine, strategy, model, case) for case in held_out]
            meta = {
                "strategy": name,
                "normalize": NORMALIZE,
                "slice_shape": None,
                "task": "slice shows a synthetic lesion (app.phantom)",
                "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop],
                "epochs": EPOCHS[name],
                "train_seconds": round(seconds, 1),
                "train_cpu_seconds": round(cpu_seconds, 1),
                "held_out_auc": round(float(np.mean(aucs)), 4),
                "held_out_worst_auc": round(float(np.min(aucs)), 4),
                "held_out_seeds": [VALIDATION_SEEDS.start, VALIDATION_SEEDS.stop],
            }
            if name != "slice":
                meta["convolutions"] = "the slice model's, frozen; the layers after them trained on its features"
            if name == "embedding":
                meta.update(slab=SLAB, pool="mean")
            write_metadata(path.with_suffix(".json"), meta)
            print(
                f"{name:10s} trained in {seconds:5.1f} s ({cpu_seconds:5.1f} s CPU)  held-out per-slice AUC "
                f"mean {meta['held_out_auc']:.4f} worst {meta['held_out_worst_auc']:.4f}  → {path}",
                flush=True,
            )
    print(f"CPU time of this process: {time.process_time():.1f} s on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
