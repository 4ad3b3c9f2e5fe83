"""`Volume`: a torch tensor in a known orientation, plus the geometry a viewer needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch  # imported where used: the window must not wait for torch to appear

AXES = ("axial", "coronal", "sagittal")
#: what a caller may ask for: an anatomical axis, or the acquisition's own (resolved to the closest of `AXES`)
ACQUIRED = "acquired"
AXIS_CHOICES = (ACQUIRED, *AXES)
#: notes that start with this are warnings: the CLI prints them as ``warning: …`` on stderr
WARNING_PREFIX = "warning: "


@dataclass(frozen=True, eq=False)
class Volume:
    """One 3D image, laid out ``(depth, height, width, channels)``.

    ``data`` is C-contiguous float32 on the CPU.  Slices are display-ready: row 0 is the top
    of the screen, column 0 the left (neurological convention: patient's left on the left).

    ==========  ======================  ===================  =====================
    axis        depth (index 0 →)       rows (top → bottom)   columns (left → right)
    ==========  ======================  ===================  =====================
    axial       inferior → superior     anterior → posterior  left → right
    coronal     posterior → anterior    superior → inferior   left → right
    sagittal    left → right            superior → inferior   anterior → posterior
    ==========  ======================  ===================  =====================

    ``affine`` maps a voxel index ``(d, h, w, 1)`` to RAS+ world millimetres.  When the slices
    are not evenly spaced (a DICOM series with a missing slice), ``slice_origins`` holds the true
    RAS position of voxel ``(d, 0, 0)`` of each slice and the affine's depth column is their
    median step; `world` and `positions_mm` use the true positions.

    ``axis`` is always one of `AXES`; ``axis_source`` says how it was chosen: ``"acquired"`` when
    it is the acquisition's own slicing (asked for as ``axis="acquired"``), else ``"chosen"``.
    """

    data: torch.Tensor
    affine: np.ndarray
    axis: str
    source: Path
    sha256: str
    original_dtype: str
    volume_index: int = 0
    n_volumes: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)
    axis_source: str = "chosen"
    slice_origins: np.ndarray | None = None
    #: the loader's `app.io.orientation.Layout` (display ↔ stored index order) and the stored
    #: array's own affine: what writing a map back in the source file's voxel order needs
    layout: Any = None
    stored_affine: np.ndarray | None = None

    @property
    def axis_label(self) -> str:
        """The axis as the user reads it: ``"acquired (sagittal)"``, or ``"sagittal"`` when chosen."""
        return f"{ACQUIRED} ({self.axis})" if self.axis_source == ACQUIRED else self.axis

    @property
    def uniform_spacing(self) -> bool:
        """True when the slices are evenly spaced along depth (neighbours are one step apart)."""
        return self.slice_origins is None

    @property
    def warnings(self) -> tuple[str, ...]:
        """The notes that are warnings (without their ``warning: `` prefix)."""
        return tuple(n.removeprefix(WARNING_PREFIX) for n in self.notes if n.startswith(WARNING_PREFIX))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def depth(self) -> int:
        return int(self.data.shape[0])

    @property
    def channels(self) -> int:
        return int(self.data.shape[3])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along (depth, rows, columns)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> tuple[str, str, str]:
        """Anatomical direction each index axis (d, h, w) increases toward, e.g. ('S', 'P', 'R')."""
        import nibabel as nib

        return tuple(nib.aff2axcodes(self.affine))  # type: ignore[return-value]

    @cached_property
    def positions_mm(self) -> np.ndarray:
        """World position (mm) of each slice's centre along the depth direction's RAS axis
        (computed once, read-only: the readout and the plot ask for it on every slice change)."""
        _, h, w, _ = self.shape
        if self.slice_origins is not None:
            centres = self.slice_origins + self.affine[:3, 1] * ((h - 1) / 2) + self.affine[:3, 2] * ((w - 1) / 2)
            positions = centres[:, self.depth_world_axis]
        else:
            d = np.arange(self.depth, dtype=np.float64)
            index = np.stack([d, np.full_like(d, (h - 1) / 2), np.full_like(d, (w - 1) / 2), np.ones_like(d)])
            positions = (self.affine @ index)[:3][self.depth_world_axis]
        positions = np.array(positions, dtype=np.float64)
        positions.flags.writeable = False
        return positions

    @property
    def depth_world_axis(self) -> int:
        """The RAS axis (0 = x, 1 = y, 2 = z) closest to the depth direction: what ``positions_mm`` measures."""
        return int(np.argmax(np.abs(self.affine[:3, 0])))

    def world(self, d: float, h: float, w: float) -> np.ndarray:
        """RAS+ world coordinates (mm) of voxel index (d, h, w)."""
        if self.slice_origins is None or self.depth < 2:
            return (self.affine @ np.array([d, h, w, 1.0]))[:3]
        k = int(np.clip(np.floor(d), 0, self.depth - 2))  # between slices k and k+1 (beyond the ends: the end step)
        origin = self.slice_origins[k] + (self.slice_origins[k + 1] - self.slice_origins[k]) * (d - k)
        return origin + self.affine[:3, 1] * h + self.affine[:3, 2] * w

    def slice(self, d: int) -> torch.Tensor:
        """Slice ``d`` as an ``(H, W, C)`` view."""
        return self.data[d]

    @classmethod
    def from_tensor(cls, data: torch.Tensor | np.ndarray, source: str | Path = "<memory>", axis: str = "axial") -> Volume:
        """An in-memory volume from ``(D, H, W)`` or ``(D, H, W, C)`` data, 1 mm voxels, identity-like geometry."""
        import torch

        data = torch.as_tensor(data)
        original = str(data.dtype).removeprefix("torch.")
        if data.ndim == 3:
            data = data.unsqueeze(-1)
        if data.ndim != 4:
            raise ValueError(f"expected (D, H, W) or (D, H, W, C) data, got shape {tuple(data.shape)}")
        affine = np.array([[0, 0, 1, 0], [0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
        return cls(data.float().contiguous(), affine, axis, Path(source), "", original)
