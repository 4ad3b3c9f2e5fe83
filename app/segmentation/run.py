"""A dense run: the plan, the map it fills, and the per-slice scores read from it.

`DenseRun` is all the engine needs to know about segmentation: it builds the `DensePlan` for a
model and volume, and `take` stores each batch's finished maps in the `DenseMap`, hands them to
``on_map`` and turns them into per-slice scores (`app.segmentation.reduce`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import ModelError
from app.segmentation import tiling
from app.segmentation.dense_map import DenseMap
from app.segmentation.detect import DenseSpec, dense_spec
from app.segmentation.plan import FITS, DensePlan, find_stride
from app.segmentation.reduce import UNITS, check_reduce, class_volumes, pixel_area_mm2, reduce_slices

if TYPE_CHECKING:
    from app.volume import Volume

Model = Any  # app.inference.models.LoadedModel
OnMap = Callable[[np.ndarray, DenseMap], None]  # the slices just finished, the run's map (holding them)


class DenseRun:
    """One dense model scoring one volume: see the module docstring."""

    def __init__(
        self,
        model: Model,
        spec: DenseSpec,
        volume: Volume,
        *,
        reduce: str = "area",
        threshold: float = 0.5,
        overlap: float = tiling.OVERLAP,
        fit: str = "tile",
        on_map: OnMap | None = None,
    ):
        if not 0.0 < threshold < 1.0:
            raise ModelError(f"--mask-threshold must lie between 0 and 1, not {threshold}")
        if fit not in FITS:
            raise ModelError(f"--fit must be one of {', '.join(FITS)}, not {fit!r}")
        self.model, self.spec, self.volume = model, spec, volume
        self.reduce, self.threshold = check_reduce(reduce), float(threshold)
        self.overlap, self.fit, self.on_map = tiling.check_overlap(overlap), fit, on_map
        self.plan: DensePlan | None = None
        d, h, w, _ = volume.shape
        self.map = DenseMap.empty(
            (d, h, w, spec.count), spec.kind, spec.classes, threshold=self.threshold, background=spec.background, from_logits=spec.from_logits
        )
        self._pixel_mm2 = pixel_area_mm2(volume.spacing)

    @property
    def channels(self) -> int | None:
        return self.spec.channels

    def make_plan(self, volume_shape: tuple[int, int, int, int], batch_size: int) -> DensePlan:
        spec = self.spec
        stride = spec.stride or (find_stride(self.model.keras_model, spec, self.model.backend) if None in spec.spatial else 1)
        self.plan = DensePlan(volume_shape, spec, batch_size, stride, self.overlap, self.fit)
        return self.plan

    def take(self, indices: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store finished slices, tell ``on_map`` (with the run's map, which now holds them: a
        viewer shows this one map as it fills, nothing copied), and return their scores."""
        self.map.put(indices, probabilities)
        if self.on_map is not None:
            self.on_map(indices, self.map)
        return indices, reduce_slices(self.map, indices, self.reduce, self._pixel_mm2)

    def reduce_block(self, probabilities: np.ndarray) -> np.ndarray:
        """The scores of a block of maps ``(n, H, W, K)`` not stored in the run's map (one pass of an
        uncertainty method): reduced exactly as `take` reduces, through the same uint8 levels."""
        block = DenseMap.empty(probabilities.shape, self.map.kind, self.map.classes, threshold=self.threshold, background=self.map.background)
        indices = np.arange(len(probabilities))
        block.put(indices, probabilities)
        return reduce_slices(block, indices, self.reduce, self._pixel_mm2)

    @property
    def unit(self) -> str:
        return UNITS[self.reduce]

    @property
    def score_classes(self) -> tuple[str, ...] | None:
        """Names of the score columns: the foreground classes; None for one unnamed foreground class
        (the column is then plain ``area_mm2`` or ``score``)."""
        names = tuple(self.spec.classes[k] for k in self.spec.foreground)
        return None if len(names) == 1 else names

    def prediction_fields(self) -> dict:
        """The `Prediction` fields of a dense run."""
        return {"dense": self.map, "reduce": self.reduce, "unit": self.unit, "segmentation": self.summary()}

    def summary(self) -> dict:
        """What the sidecar records about the run: kind, classes, threshold, tiling, reduce, and per
        class its voxels and volume in mL."""
        spec = self.spec
        return {
            "kind": spec.kind,
            "dims": spec.dims,
            "channels_first": spec.channels_first,
            "from_logits": spec.from_logits,
            "classes": list(spec.classes),
            "background": spec.classes[spec.background] if spec.background is not None else None,
            "threshold": self.threshold,
            "reduce": self.reduce,
            "unit": self.unit,
            "tiling": self.plan.tiling.describe() if self.plan is not None else None,
            "class_volumes": class_volumes(self.map, self.volume.spacing),
        }


def dense_run(model: Model, volume: Volume, strategy: str, **options) -> DenseRun | None:
    """A `DenseRun` when ``model`` gives maps (None for a classifier); only the slice strategy
    (2D and 3D models alike) runs dense models."""
    spec = dense_spec(model)
    if spec is None:
        return None
    if strategy != "slice":
        raise ModelError(f"{model.name} is a segmentation model ({spec.describe()}): run it with the slice strategy, not {strategy}")
    return DenseRun(model, spec, volume, **options)
