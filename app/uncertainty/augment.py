"""Test-time augmentations of a batch of fitted model inputs, and their inverses on dense outputs.

The image axes of a batch are its third- and second-last, ``(…, H, W, C)``: rows run anterior →
posterior on an axial slice, columns across the patient.  Each augmentation is exactly
invertible (flips, circular shifts), so a dense output mapped back lies on the input's pixels.
``flip-lr`` swaps the patient's left and right: wrong for lateralised findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.errors import SlicewiseError

if TYPE_CHECKING:
    import torch

NAMES = ("flip-lr", "flip-ap", "shift:K")


@dataclass(frozen=True)
class Augmentation:
    """``flip-lr`` (mirror the columns), ``flip-ap`` (mirror the rows) or ``shift`` by ``shift``
    pixels down and right (circular: what leaves one edge comes back at the other)."""

    name: str
    shift: int = 0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The augmented batch (a new tensor); ``x`` is ``(B, …, H, W, C)``."""
        import torch  # here: parsing a spec (the viewer's settings) needs no torch

        rows, cols = x.ndim - 3, x.ndim - 2
        if self.name == "flip-lr":
            return torch.flip(x, (cols,))
        if self.name == "flip-ap":
            return torch.flip(x, (rows,))
        return torch.roll(x, (self.shift, self.shift), (rows, cols))

    def invert(self, y: np.ndarray) -> np.ndarray:
        """A dense output ``(B, …, H, W, K)`` of the augmented batch, mapped back to the original's pixels."""
        rows, cols = y.ndim - 3, y.ndim - 2
        if self.name == "flip-lr":
            return np.flip(y, cols)
        if self.name == "flip-ap":
            return np.flip(y, rows)
        return np.roll(y, (-self.shift, -self.shift), (rows, cols))


def parse_augmentations(names: Sequence[str]) -> list[Augmentation]:
    """``flip-lr``, ``flip-ap``, ``shift:K`` (K pixels, 1 or more) as `Augmentation`s; a clear error otherwise."""
    if not names:
        raise SlicewiseError(f"--tta needs at least one augmentation: {', '.join(NAMES)}")
    found = []
    for name in names:
        kind, _, amount = name.partition(":")
        if kind in ("flip-lr", "flip-ap") and not amount:
            found.append(Augmentation(kind))
        elif kind == "shift" and amount.strip().isdigit() and int(amount) > 0:
            found.append(Augmentation("shift", int(amount)))
        else:
            raise SlicewiseError(f"unknown test-time augmentation {name!r}: use {', '.join(NAMES)} (e.g. --tta flip-lr,shift:2)")
    if len(set(found)) != len(found):
        raise SlicewiseError(f"--tta lists an augmentation twice: {','.join(names)}")
    return found


def is_dense(y: np.ndarray, x: torch.Tensor) -> bool:
    """True when output ``y`` is a map on the input's pixels (same rank, same H and W): it must be
    mapped back before passes are averaged.  A score vector has nothing to invert."""
    return y.ndim == x.ndim and tuple(y.shape[-3:-1]) == tuple(x.shape[-3:-1])
