"""`Prediction`: one run's per-slice scores and where they came from (what export writes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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

    @property
    def outputs(self) -> int:
        return int(self.scores.shape[1])
