"""What the status bar, the readout and the CLI say about a volume, a slice, a voxel or a run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from app.prediction import Prediction
    from app.runs import Run
    from app.volume import Volume

#: the direction the depth index runs in each axis (the `Volume` layout table)
DEPTH_DIRECTION = {"axial": "inferior → superior", "coronal": "posterior → anterior", "sagittal": "left → right"}


def axis_label(volume: Volume) -> str:
    """``axial``, or ``acquired (sagittal)`` when the axis is the acquisition's own."""
    return str(getattr(volume, "axis_label", volume.axis))


def volume_summary(volume: Volume) -> str:
    """One line: name, slices and their direction, slice size, voxel size, 4D index, notes."""
    d, h, w, c = volume.shape
    spacing = " × ".join(f"{s:.3g}" for s in volume.spacing)
    parts = [f"{volume.source.name}: {d} {axis_label(volume)} slices ({DEPTH_DIRECTION.get(volume.axis, '')})", f"{h} × {w}", f"{spacing} mm"]
    if volume.n_volumes > 1:
        parts.append(f"volume {volume.volume_index + 1} of {volume.n_volumes}")
    if c > 1:
        parts.append(f"showing channel 0 of {c}")
    parts.extend(volume.notes)
    return "  ·  ".join(parts)


def position_text(volume: Volume, index: int) -> str:
    """``z = 12.5 mm``: where slice ``index`` lies along the depth direction."""
    return f"{'xyz'[volume.depth_world_axis]} = {volume.positions_mm[index]:.1f} mm"


def slice_text(volume: Volume, index: int) -> str:
    return f"slice {index} / {volume.depth - 1}  ·  {position_text(volume, index)}"


def readout_text(volume: Volume, d: int, h: int, w: int) -> str:
    """Voxel index, world position (RAS mm) and value of voxel (d, h, w)."""
    x, y, z = volume.world(d, h, w)
    value = float(volume.data[d, h, w, 0])
    return f"voxel ({d}, {h}, {w})  ·  ({x:.1f}, {y:.1f}, {z:.1f}) mm  ·  value {value:.6g}"


def run_finished_text(run: Run, prediction: Prediction, waited_s: float | None = None) -> str:
    """``slice: 64 slices in 0.21 s on CPU (waited 3.9 s: TensorFlow started)  ·  volume score 0.93``."""
    total = prediction.timings.get("total_s", float("nan"))
    text = f"{run.title}: {run.depth} slices in {total:.2f} s on {prediction.device}"
    if prediction.channels != "replicate":
        text += f" (channels {prediction.channels})"
    if waited_s is not None and waited_s > total + 0.25:
        text += f" (waited {waited_s:.1f} s in all)"
    if prediction.volume_score is not None:
        text += f"  ·  volume score {', '.join(f'{v:.3f}' for v in np.ravel(prediction.volume_score))}"
    if prediction.nonfinite_slices:
        text += f"  ·  {len(prediction.nonfinite_slices)} slices with NaN/Inf voxels left unscored"
    for note in prediction.notes:
        text += f"  ·  {note}"
    return text
