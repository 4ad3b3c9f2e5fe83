"""Dense (segmentation) models: maps on the volume's own voxel grid, and what is read from them.

`DenseMap` is the one shape every part agrees on: the engine fills it batch by batch, the
viewer overlays it, exports write it back in the source file's voxel order.
"""

from app.segmentation.dense_map import KINDS, REDUCTIONS, DenseMap

__all__ = ["KINDS", "REDUCTIONS", "DenseMap"]
