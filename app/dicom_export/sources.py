"""The DICOM images a `Volume` was read from, and how its display order maps back onto them.

A `Volume` keeps no DICOM datasets, so its source is read again, headers only: a folder's
series (the one whose geometry is the volume's), or a single file (one slice or a multi-frame
image).  The frames are stacked by the loader's own rule (`app.io.dicom_geometry.stack`:
position along the slice normal) and the display layout is re-planned with the loader's
`app.io.orientation.plan_layout`, so a display array ``(D, H, W, …)`` turns back into the
stored ``(frames, rows, columns, …)`` exactly, whatever ``--axis`` was asked for.  Before any
of that is trusted, every frame's ImagePositionPatient is matched against the volume's own
world position of the voxel it maps to (`Volume.world`), and the in-plane axes against the
direction cosines (the affines must agree): a changed folder or another series is refused.
Multi-frame files are handled too (their frames, positions from the functional groups).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from app.errors import SlicewiseError
from app.io import dicom_geometry as geometry
from app.io.dicom_file import frame_planes
from app.io.dicom_pixels import n_frames
from app.io.formats import is_dicom_name
from app.io.orientation import Layout, plan_layout
from app.volume import Volume

#: type 2 attributes of the patient and study modules that a SEG or SR copies from its source: a
#: source that lacks one gets it empty (as type 2 allows), never a made-up value
COPIED_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
POSITION_TOL_MM = 0.1  # a frame's position may differ from the volume's by this much, or 10 % of a slice step
AFFINE_TOL = 1e-3  # mm per voxel, on the in-plane columns of the affine


class NotDicomError(SlicewiseError):
    """The volume was not read from DICOM images: there is nothing for a SEG or SR to reference."""


@dataclass(frozen=True)
class SourceFrame:
    """One source image (a single-frame instance, or one frame of a multi-frame instance)."""

    dataset: Dataset  # header only (read with stop_before_pixels)
    frame: int | None  # 1-based frame number in a multi-frame instance; None for a single-frame one

    @property
    def sop_class_uid(self) -> str:
        return str(self.dataset.SOPClassUID)

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def frame_numbers(self) -> list[int] | None:
        return None if self.frame is None else [self.frame]


@dataclass(frozen=True)
class Sources:
    """The source images of one volume, and the map from its display order to theirs.

    ``datasets``: the instances (headers), as highdicom takes them; ``frames[i]``: the source
    image of row ``i`` of a `to_source` array (the instances in that order, or the frames of the
    one multi-frame instance in file order: a SEG's pixel array lines up with them).
    ``stored[k]``: the index into ``frames`` of stored slice ``k`` (the loader's stacking order).
    ``layout``: display index ↔ stored index.
    """

    datasets: tuple[Dataset, ...]
    frames: tuple[SourceFrame, ...]
    stored: tuple[int, ...]
    layout: Layout
    multiframe: bool

    @property
    def acquired(self) -> bool:
        """Whether each display slice is one source image (depth runs along the stored slices)."""
        return self.layout.perm[0] == 0

    def to_source(self, display: np.ndarray) -> np.ndarray:
        """A display-order array ``(D, H, W, …)`` as the source images' ``(frames, rows, cols, …)``,
        row ``i`` for ``frames[i]`` (a flip/transpose per the layout, then the stacking order)."""
        if tuple(display.shape[:3]) != self.layout.shape:
            raise ValueError(f"array of shape {display.shape[:3]} does not fit a volume of shape {self.layout.shape}")
        stored = self.layout.stored_view(display)
        out = np.zeros((len(self.frames), *stored.shape[1:]), dtype=display.dtype)
        out[list(self.stored)] = stored
        return out

    def slice_frame(self, d: int) -> SourceFrame:
        """The source image of display slice ``d`` (only when `acquired`)."""
        if not self.acquired:
            raise SlicewiseError("display slices cut across the source images (another --axis than the acquired one)")
        k = int(round(self.layout.index_affine()[0] @ np.array([d, 0, 0, 1.0])))
        return self.frames[self.stored[k]]


def is_dicom_source(source: Path) -> bool:
    """Whether the loader reads ``source`` as DICOM: a folder, a file with the DICM marker or a DICOM name."""
    if source.is_dir():
        return True
    if not source.is_file():
        return False
    with open(source, "rb") as f:
        head = f.read(132)
    return head[128:132] == b"DICM" or is_dicom_name(source.name.lower())


def check_dicom_source(volume: Volume, what: str) -> None:
    """Refuse a volume not read from DICOM, pointing to the outputs that fit it."""
    if not is_dicom_source(Path(volume.source)):
        raise NotDicomError(
            f"{volume.source}: {what} needs a DICOM source (it references the source images); "
            "this volume is not DICOM: write the mask with --mask-out (NIfTI) and the scores with --out (CSV)"
        )


def find_sources(volume: Volume, what: str = "a DICOM SEG or SR") -> Sources:
    """The source images of ``volume`` (see the module's docstring); a `SlicewiseError` naming
    the source when they cannot be found or no longer match the volume."""
    check_dicom_source(volume, what)
    source = Path(volume.source)
    if source.is_dir():
        candidates = _series(source)
    else:
        candidates = [[_header(source)]]
    reasons = []
    for headers in candidates:
        try:
            return _match(volume, headers)
        except _Mismatch as exc:
            reasons.append(str(exc))
    detail = f" ({reasons[0]})" if len(reasons) == 1 else ""
    raise SlicewiseError(f"{source}: no DICOM series there matches the loaded volume{detail}; was the folder changed since it was opened?")


class _Mismatch(Exception):
    """A candidate series is not the volume's."""


def _header(path: Path) -> Dataset:
    try:
        return _complete(pydicom.dcmread(path, stop_before_pixels=True, force=True))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported as such
        raise SlicewiseError(f"{path}: cannot read DICOM header ({type(exc).__name__}: {exc})") from None


def _series(folder: Path) -> list[list[Dataset]]:
    """The image series in ``folder`` (else its subfolders, as the loader looks), largest first."""
    found = _images(sorted(p for p in folder.iterdir() if p.is_file()))
    if not found:
        found = _images(sorted(p for p in folder.rglob("*") if p.is_file() and p.parent != folder))
    series: dict[str, list[Dataset]] = {}
    for ds in found:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    return sorted(series.values(), key=lambda s: sum(n_frames(ds) for ds in s), reverse=True)


def _complete(ds: Dataset) -> Dataset:
    """``ds`` with the `COPIED_TYPE2` attributes it lacks added empty (no value is invented)."""
    for keyword in COPIED_TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, None)
    return ds


def _images(paths: Sequence[Path]) -> list[Dataset]:
    images = []
    for path in paths:
        if path.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM: not part of a series (the loader skips it too)
            continue
        if "Rows" in ds and "Columns" in ds and "SOPInstanceUID" in ds:
            images.append(_complete(ds))
    return images


def _match(volume: Volume, headers: list[Dataset]) -> Sources:
    """`Sources` of one candidate series, checked against the volume's geometry."""
    if len(headers) == 1:  # one file, read as the loader reads one (a slice, or a multi-frame image)
        ds = headers[0]
        count = n_frames(ds)
        planes, _ = frame_planes(ds, count)
        multiframe = count > 1
        frames = tuple(SourceFrame(ds, f + 1 if multiframe else None) for f in range(count))
    else:
        if any(n_frames(ds) > 1 for ds in headers):
            raise _Mismatch("several multi-frame files")
        planes = [_plane(ds) for ds in headers]
        frames = tuple(SourceFrame(ds, None) for ds in headers)
        multiframe = False
    if planes is None or any(p is None for p in planes):
        raise _Mismatch("images without ImagePositionPatient/ImageOrientationPatient")
    rows, cols = int(headers[0].Rows), int(headers[0].Columns)
    try:
        stacked = geometry.stack(planes, Path(str(volume.source)), lambda i, j: True)  # the loader kept one of equal duplicates
    except SlicewiseError as exc:
        raise _Mismatch(str(exc)) from None
    try:
        layout = plan_layout(stacked.affine, (len(stacked.order), rows, cols), volume.axis)
    except ValueError as exc:
        raise _Mismatch(str(exc)) from None
    if layout.shape != tuple(volume.shape[:3]):
        raise _Mismatch(f"{len(stacked.order)} images of {rows} x {cols}, not the volume's {volume.shape[:3]} in {volume.axis} order")
    affine = stacked.affine @ layout.index_affine()
    if not np.allclose(affine[:3, 1:3], volume.affine[:3, 1:3], atol=AFFINE_TOL, rtol=0):
        raise _Mismatch("the images' orientation or pixel spacing differ from the volume's")
    if not np.allclose(affine, volume.affine, atol=AFFINE_TOL * 10, rtol=0):
        raise _Mismatch("the images' positions differ from the volume's")
    if stacked.slice_origins is None or volume.slice_origins is not None:  # else the loader showed uneven slices evenly spaced
        _check_positions(volume, layout, [planes[i] for i in stacked.order])
    return Sources(
        datasets=tuple(headers),
        frames=frames,
        stored=tuple(stacked.order),
        layout=layout,
        multiframe=multiframe,
    )


def _plane(ds: Dataset) -> geometry.Plane | None:
    """As the loader's folder scan reads it (`app.io.dicom_series`)."""
    return geometry.plane(
        ds.get("ImagePositionPatient"),
        ds.get("ImageOrientationPatient"),
        ds.get("PixelSpacing"),
        ds.get("SpacingBetweenSlices") or ds.get("SliceThickness"),
    )


def _check_positions(volume: Volume, layout: Layout, planes: list[geometry.Plane]) -> None:
    """Each stored slice's first pixel must sit where the volume says that voxel is."""
    to_display = np.linalg.inv(layout.index_affine())
    step = float(np.median(np.diff([p.position @ np.cross(p.orientation[:3], p.orientation[3:]) for p in planes]))) if len(planes) > 1 else 0.0
    tolerance = max(POSITION_TOL_MM, 0.1 * abs(step))
    for k, p in enumerate(planes):
        d, h, w, _ = to_display @ np.array([k, 0, 0, 1.0])
        expected = volume.world(float(d), float(h), float(w))
        found = geometry.LPS_TO_RAS[:3, :3] @ p.position
        if np.linalg.norm(found - expected) > tolerance:
            raise _Mismatch(f"image {k} lies at {np.round(found, 2).tolist()} mm (RAS), the volume has that voxel at {np.round(expected, 2).tolist()}")
