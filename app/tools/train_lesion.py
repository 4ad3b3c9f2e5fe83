"""The built-in segmentation model ``builtin:lesion``: where the phantoms' lesions are, voxel by voxel.

``python -m app.tools.train_demo --strategies lesion`` trains it (a small 2D U-Net, fully
convolutional: any slice size that is a multiple of 4) on the phantoms' ``lesion_mask``, at the
phantoms' native resolution, and writes ``resources/models/lesion.keras`` and ``lesion.json``;
``--evaluate`` reports its Dice against ``lesion_mask`` on phantoms training never saw.

The slice CNN's own lesion-map output is trained on its 16 × 16 grid only (a training aid for the
slice score): too coarse for a mask, so the map model is a model of its own.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from app import preprocessing
from app.io import load_volume
from app.phantom import lesion_mask, write_demo

NORMALIZE = "window:60,200"
TRAIN_SEEDS = range(0, 40)
EVALUATION_SEEDS = range(20_000, 20_005)  # never trained on: the worst Dice of these is reported
DICE_FLOOR = 0.7
EPOCHS = 12
NAME = "lesion"


def build_model():
    """A 2D U-Net of two poolings, 8-16-32 filters: ``(None, None, 1)`` → ``(None, None, 1)`` sigmoid."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    x = inputs = keras.Input((None, None, 1))
    skips = []
    for filters in (8, 16):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    for filters, skip in zip((16, 8), reversed(skips)):
        x = layers.UpSampling2D(2)(x)
        x = layers.Concatenate()([x, skip])
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="lesion")(x)
    return keras.Model(inputs, outputs, name="lesion_unet")


def case(seed: int, folder: Path, depth: int = 64) -> tuple[np.ndarray, np.ndarray, object]:
    """Normalised slices ``(D, H, W, 1)``, the lesion mask ``(D, H, W)`` on the same grid (both read
    back through the app's loader), and the volume."""
    image, _ = write_demo(folder / f"seed{seed}", seed=seed, depth=depth)
    path = image.with_name("mask.nii.gz")
    nib.save(lesion_mask(seed=seed, depth=depth), path)
    volume = load_volume(image)
    x = preprocessing.fit(NORMALIZE, volume.data)(volume.data).numpy()
    return x, load_volume(path).data.numpy()[..., 0] > 0.5, volume


def soft_dice_bce(y_true, y_pred):
    """Binary cross-entropy plus (1 - soft Dice) over the batch: the Dice term keeps the small
    lesions from being drowned by the background."""
    import keras.ops as ops
    from keras.losses import binary_crossentropy

    inter = ops.sum(y_true * y_pred)
    dice = (2.0 * inter + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
    return ops.mean(binary_crossentropy(y_true, y_pred)) + (1.0 - dice)


def train(out: Path) -> dict:
    """Train the lesion model; write ``out/lesion.keras``; return what its JSON records."""
    import keras

    started, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        xs, ys = [], []
        for seed in TRAIN_SEEDS:
            x, mask, _ = case(seed, Path(tmp), depth=48)
            shows = mask.any(axis=(1, 2))
            keep = shows | (np.arange(len(shows)) % 4 == 0)  # every slice with a lesion, a quarter of the others
            xs.append(x[keep])
            ys.append(mask[keep, ..., None].astype(np.float32))
    x, y = np.concatenate(xs), np.concatenate(ys)
    model = build_model()
    steps = EPOCHS * -(-len(x) // 16)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=soft_dice_bce)
    model.fit(x, y, batch_size=16, epochs=EPOCHS, shuffle=True, verbose=2)
    path = out / f"{NAME}.keras"
    plain = build_model()  # the weights alone: no compile config naming the custom loss (safe mode refuses it)
    plain.set_weights(model.get_weights())
    plain.save(path)
    return {
        "task": "where the synthetic lesions are, voxel by voxel (app.phantom.lesion_mask)",
        "normalize": NORMALIZE,
        "channels": "replicate",
        "classes": ["lesion"],
        "activation": "sigmoid",
        "stride": 4,
        "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop],
        "train_slices": int(len(x)),
        "epochs": EPOCHS,
        "train_seconds": round(time.perf_counter() - started, 1),
        "train_cpu_seconds": round(time.process_time() - cpu, 1),
    }


def evaluate(engine, model) -> tuple[list[tuple[int, float]], bool]:
    """Dice of the model's mask against ``lesion_mask`` on each evaluation seed; and whether the
    worst meets `DICE_FLOOR`."""
    from app.segmentation.dice import dice
    from app.strategies import STRATEGIES

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in EVALUATION_SEEDS:
            _, mask, volume = case(seed, Path(tmp))
            prediction = engine.run(volume, STRATEGIES["slice"], model)
            results.append((seed, float(dice(prediction.dense.label_map() > 0, mask))))
    return results, min(d for _, d in results) >= DICE_FLOOR
