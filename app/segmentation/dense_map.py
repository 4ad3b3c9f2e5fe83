"""`DenseMap`: a segmentation model's probabilities for one volume, compact, on the volume's grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("sigmoid", "softmax")  # K independent maps, or K classes of which one is the background
REDUCTIONS = ("area", "max", "mean")  # how a slice's map becomes its scores (`--reduce`)
LEVELS = 255  # probabilities are kept as uint8: p ≈ value / LEVELS (a quarter of float32's memory)


@dataclass(eq=False)
class DenseMap:
    """Probabilities ``(D, H, W, K)`` as uint8 (``value / 255``), laid out like `Volume.data`
    (display order: row 0 at the top, neurological left/right), filled as batches arrive.

    ``kind`` is ``sigmoid`` (K independent maps, which may overlap) or ``softmax`` (K classes,
    ``background`` the index of the background class).  ``from_logits``: the model gave logits,
    turned into probabilities by the kind's function.  ``filled`` marks the slices that hold
    values so far (a streaming run).
    """

    probabilities: np.ndarray
    kind: str
    classes: tuple[str, ...]
    threshold: float = 0.5
    background: int | None = None
    from_logits: bool = False
    filled: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.probabilities.dtype != np.uint8 or self.probabilities.ndim != 4:
            raise ValueError(f"probabilities must be (D, H, W, K) uint8, not {self.probabilities.dtype} {self.probabilities.shape}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if len(self.classes) != self.probabilities.shape[3]:
            raise ValueError(f"{len(self.classes)} class names for {self.probabilities.shape[3]} maps")
        if self.filled is None:
            self.filled = np.zeros(self.probabilities.shape[0], dtype=bool)

    @classmethod
    def empty(cls, shape: tuple[int, int, int, int], kind: str, classes: tuple[str, ...], **kwargs) -> DenseMap:
        """A map of ``shape`` ``(D, H, W, K)`` with no slice filled yet."""
        return cls(np.zeros(shape, dtype=np.uint8), kind, tuple(classes), **kwargs)

    @property
    def depth(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def count(self) -> int:
        """K, the number of maps (classes, the background included for softmax)."""
        return int(self.probabilities.shape[3])

    @property
    def foreground(self) -> tuple[int, ...]:
        """The map indices that are findings: all of them, less a softmax's background."""
        return tuple(k for k in range(self.count) if k != self.background)

    def put(self, indices: np.ndarray, probabilities: np.ndarray) -> None:
        """Store float probabilities ``(n, H, W, K)`` in [0, 1] for slices ``indices``."""
        block = np.asarray(probabilities, dtype=np.float32)
        self.probabilities[indices] = np.rint(np.clip(block, 0.0, 1.0) * LEVELS).astype(np.uint8)
        self.filled[indices] = True

    def slice_probabilities(self, d: int) -> np.ndarray:
        """Slice ``d``'s probabilities ``(H, W, K)`` as float32 in [0, 1]."""
        return self.probabilities[d].astype(np.float32) / LEVELS

    def masks(self, d: int | slice) -> np.ndarray:
        """Boolean masks ``(…, H, W, K)`` of slice(s) ``d``: a sigmoid map at or above the
        threshold; a softmax class where it is the argmax (the background's mask included)."""
        p = self.probabilities[d]
        if self.kind == "softmax":
            winner = p.argmax(axis=-1)
            return winner[..., None] == np.arange(self.count)
        return p >= self.threshold_level

    @property
    def threshold_level(self) -> int:
        """The threshold on the uint8 scale (p ≥ threshold ⇔ value ≥ this level)."""
        return int(np.ceil(self.threshold * LEVELS - 1e-6))

    def label_map(self) -> np.ndarray:
        """Class indices ``(D, H, W)`` uint8: a softmax's argmax; one sigmoid map: 0/1.
        Several sigmoid maps overlap and have no single label map: use `masks`."""
        if self.kind == "softmax":
            out = np.empty(self.probabilities.shape[:3], dtype=np.uint8)
            for d in range(self.depth):  # slice by slice: argmax gives int64, 8 bytes a voxel
                out[d] = self.probabilities[d].argmax(axis=-1)
            return out
        if self.count == 1:  # written in place: no boolean volume beside the result
            out = np.empty(self.probabilities.shape[:3], dtype=np.uint8)
            np.greater_equal(self.probabilities[..., 0], self.threshold_level, out=out.view(bool))
            return out
        raise ValueError("several sigmoid maps overlap: there is no single label map; write one binary map per class")
