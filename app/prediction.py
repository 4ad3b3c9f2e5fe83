"""`Prediction`: one run's per-slice scores and where they came from (what export writes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from app.segmentation.dense_map import DenseMap
    from app.uncertainty.combine import SpreadMap


@dataclass
class Prediction:
    """Per-slice scores ``(depth, K)`` of one volume by one strategy and model, with provenance."""

    scores: np.ndarray
    volume_score: np.ndarray | None
    strategy: str
    model_source: str
    model_sha256: str
    normalize: str
    device: str
    batch_size: int
    timings: dict[str, float] = field(default_factory=dict)
    nonfinite_slices: list[int] = field(default_factory=list)  # hold NaN/Inf voxels: scores left NaN
    channels: str = "replicate"  # the channel recipe (app.channels)
    output: str | None = None  # the model output scored, when the model has several
    output_names: tuple[str, ...] = ()  # all of the model's outputs
    classes: tuple[str, ...] | None = None  # a name per score column
    activation: str | None = None  # the model's last activation on that output ("softmax", "linear"…; None: unknown)
    notes: list[str] = field(default_factory=list)  # what a reader of these scores should know
    spread: np.ndarray | None = None  # per-slice sd over an uncertainty method's passes, shaped like scores (app.uncertainty)
    uncertainty: dict | None = None  # the method: {"method", "n", "seed" | "augmentations" | "members", …}
    model_about: dict = field(default_factory=dict)  # more on the model for the sidecar (an ONNX file's format and layout)
    # a segmentation model's run (app.segmentation): the whole map, how it became per-slice scores
    # ("area", "max", "mean"; None for classifiers), their unit ("mm²" for areas), and what the
    # sidecar records (kind, threshold, tiling, per-class volumes, Dice against a reference)
    dense: DenseMap | None = field(default=None, repr=False)
    reduce: str | None = None
    unit: str = ""
    segmentation: dict | None = None
    # a segmentation run under an uncertainty method: the per-pixel sd of the passes' probabilities,
    # (D, H, W, K) uint8 like `dense` (``values``, sd × 510: an sd of probabilities is at most 0.5)
    dense_sd: SpreadMap | None = field(default=None, repr=False)

    @property
    def outputs(self) -> int:
        """The number K of scores per slice."""
        return int(self.scores.shape[1])

    @property
    def score_names(self) -> list[str]:
        """A name per score column, for curves and CSV columns: the class names; else
        ``""`` for a single score, ``"0"``, ``"1"``, … for several."""
        if self.classes:
            return list(self.classes)
        count = self.outputs
        return [""] if count == 1 else [str(k) for k in range(count)]

    @property
    def model_name(self) -> str:
        """The model's short name: ``built-in`` or the file (folder) name without its suffix."""
        if self.model_source.startswith("built-in"):
            return "built-in"
        name = self.model_source.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
        stem, dot, suffix = name.rpartition(".")
        return stem if dot and suffix.lower() in ("keras", "h5", "hdf5") else name


def nonfinite_warning(source: object, count: int) -> str:
    """The one-line warning for a volume with ``count`` slices holding NaN/Inf voxels."""
    return f"warning: {source}: {count} slices hold NaN/Inf voxels; their scores are left empty (NaN)"
