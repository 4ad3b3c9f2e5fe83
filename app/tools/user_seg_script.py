"""The script a user would write instead of ``slicewise predict VOLUME --model UNET --normalize minmax
--out OUT.csv --mask-out MASK.nii.gz``: nibabel, tiles of the U-Net's input with 25 % overlap,
one ``model.predict``, the tiles averaged back, areas per axial slice and the mask as NIfTI.

``python -m app.tools.user_seg_script VOLUME UNET OUT.csv MASK.nii.gz``: the bench's
``seg_whole_job_vs_script`` times it against ``slicewise predict`` in fresh processes.
"""
import csv
import sys

import keras
import nibabel as nib
import numpy as np

volume, unet, out, mask_out = sys.argv[1:5]
image = nib.load(volume)
canonical = nib.as_closest_canonical(image)  # RAS: the third axis runs inferior to superior
data = canonical.get_fdata(dtype=np.float32)
data = (data - data.min()) / (data.max() - data.min())  # min-max
model = keras.models.load_model(unet, compile=False)
size = model.input_shape[1]
nx, ny, nz = data.shape


def starts(n):
    step = int(size * 0.75)
    return sorted({min(i * step, n - size) for i in range((n - size + step - 1) // step + 1)})


tiles, where = [], []
for z in range(nz):
    for x in starts(nx):
        for y in starts(ny):
            tiles.append(data[x : x + size, y : y + size, z])
            where.append((x, y, z))
probabilities = model.predict(np.stack(tiles)[..., None], batch_size=32, verbose=0)[..., 0]
total = np.zeros(data.shape, np.float32)
count = np.zeros(data.shape, np.float32)
for (x, y, z), p in zip(where, probabilities):
    total[x : x + size, y : y + size, z] += p
    count[x : x + size, y : y + size, z] += 1
mask = (total / count >= 0.5).astype(np.uint8)
pixel_mm2 = float(np.prod(canonical.header.get_zooms()[:2]))
with open(out, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["slice_index", "area_mm2"])
    writer.writerows((z, f"{mask[..., z].sum() * pixel_mm2:.6g}") for z in range(nz))
back = nib.orientations.ornt_transform(nib.io_orientation(canonical.affine), nib.io_orientation(image.affine))
saved = nib.Nifti1Image(nib.orientations.apply_orientation(mask, back), image.affine, image.header)
saved.set_data_dtype(np.uint8)
nib.save(saved, mask_out)
