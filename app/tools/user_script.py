"""The script a user would write instead of ``slicewise predict VOLUME --strategy slice --out OUT``.

``python -m app.tools.user_script VOLUME OUT.csv``: the bench's ``whole_job_vs_script`` times it
against ``slicewise predict`` in fresh processes.  Same model, same window, same axial slices.
"""
import csv
import sys
from pathlib import Path

import keras
import nibabel as nib
import numpy as np
import tensorflow as tf

volume, out = sys.argv[1], sys.argv[2]
image = nib.as_closest_canonical(nib.load(volume))  # RAS: the third axis runs inferior to superior
data = image.get_fdata(dtype=np.float32)
slices = np.clip((np.moveaxis(data, 2, 0)[..., None] - (60 - 200 / 2)) / 200, 0, 1)  # window:60,200
model = keras.models.load_model(Path(__file__).parents[2] / "resources/models/slice.keras")  # the built-in slice model
x = tf.image.resize(slices, (64, 64))
scores = model.predict(x, batch_size=32, verbose=0)[:, 0]
with open(out, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["slice_index", "score"])
    writer.writerows((i, f"{s:.6g}") for i, s in enumerate(scores))
