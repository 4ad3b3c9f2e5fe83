"""Dense (segmentation) models: maps on the volume's own voxel grid, and what is read from them.

`DenseMap` is the one shape every part agrees on: the engine fills it batch by batch, the
viewer overlays it, exports write it back in the source file's voxel order.

- `detect`: a model's `DenseSpec` from its shapes and last activation (`dense_spec`);
- `tiling`, `plan`: windows (whole slices padded to the stride, Gaussian-blended tiles, 3D
  sliding windows, or resized slices) batched for the engine, their outputs put back on the grid;
- `run`: `DenseRun`, the engine's one hook (``Engine.run(..., on_map=…)``: the finished slices
  and the run's one `DenseMap`, which a viewer shows as it fills), and the `Prediction` fields ``dense``, ``reduce``,
  ``unit``, ``segmentation``;
- `reduce`: per-slice areas (mm²), max or mean, and per-class volumes (mL);
- `mask_export`: ``--mask-out`` (`source_voxel_order`, `write_mask`); `dice`: ``--reference-mask``.

Only `dense_map` is imported here, so that the viewer may import the package without torch.
"""

from app.segmentation.dense_map import KINDS, REDUCTIONS, DenseMap

__all__ = ["KINDS", "REDUCTIONS", "DenseMap"]
