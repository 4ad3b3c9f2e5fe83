"""A folder of DICOM files: pick one series (the one with most slices) and stack it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from app.errors import LoadError
from app.io import dicom_geometry as geometry
from app.io.decode_pool import codec_of, decode_files, syntax_of
from app.io.dicom_file import from_dataset
from app.io.dicom_pixels import frames, frames_with_lut, n_frames, samples_per_pixel, stored_dtype, write_frame
from app.io.memory import check_memory
from app.io.messages import SKIP_DAMAGED_HINT, DamagedSeriesError, check_volume_index, fail, one_line
from app.io.stored import Filler, StoredImage
from app.volume import WARNING_PREFIX


@dataclass
class _Header:
    """What the folder scan keeps of one image file (its header is dropped)."""

    path: Path
    series: str
    label: str
    frames: int
    shape: tuple[int, int, int]  # rows, columns, samples
    plane: geometry.Plane | None


def read_dicom_folder(folder: Path, volume_index: int, skip_damaged: bool = False) -> StoredImage:
    """The largest series in ``folder`` (or, if it has no DICOM images, in its subfolders).

    A damaged file of the series is named and the series refused (`DamagedSeriesError`); with
    ``skip_damaged`` the other files are loaded at their true positions, with a warning.
    """
    headers, skipped = _scan(sorted(p for p in folder.iterdir() if p.is_file()))
    notes: list[str] = []
    if not headers:
        nested = sorted(p for p in folder.rglob("*") if p.is_file() and p.parent != folder)
        headers, more = _scan(nested)
        skipped += more
        if headers:
            notes.append("images found in subfolders")
    if not headers:
        fail(folder, "no DICOM images in this folder" + (f" ({skipped} other files)" if skipped else ""))
    check_volume_index(folder, volume_index, 1)

    series: dict[str, list[_Header]] = {}
    for header in headers:
        series.setdefault(header.series, []).append(header)
    ranked = sorted(series.values(), key=_slices, reverse=True)  # stable: ties keep scan order
    chosen, others = ranked[0], ranked[1:]
    size = _slices(chosen)
    tied = [s for s in ranked if _slices(s) == size]
    if len(tied) > 1:
        listed = ", ".join(s[0].label for s in tied[:4]) + (", …" if len(tied) > 4 else "")
        fail(folder, f"{len(tied)} series of {size} slices each ({listed}) and no way to tell which one to show; open a folder that holds only one of them")
    if others:
        listed = ", ".join(f"{s[0].label} ({_slices(s)} slices)" for s in others)
        notes.append(f"folder also holds series {listed}; loaded {chosen[0].label}")
    if skipped:
        notes.append(f"skipped {skipped} files that are not DICOM images")

    if len(chosen) == 1:
        path = chosen[0].path
        with _within(folder, path):
            image = from_dataset(_read(path), path, volume_index, files=[path])
        image.notes = notes + image.notes
        image.fill = _filler_within(folder, path, image.fill)
        return image
    if any(h.frames > 1 for h in chosen):
        fail(folder, f"series {chosen[0].label} mixes several multi-frame files; open one file at a time")
    if any(h.plane is None for h in chosen):
        fail(folder, f"slices of series {chosen[0].label} lack ImagePositionPatient/ImageOrientationPatient, so their order is unknown")
    if len({h.shape for h in chosen}) > 1:
        fail(folder, f"slices of series {chosen[0].label} differ in size: {sorted({h.shape[:2] for h in chosen})}")
    rows, cols, samples = chosen[0].shape
    check_memory(folder, (len(chosen), rows, cols, samples), extra_bytes=sum(_stored_bytes(h) for h in chosen))
    decoded, damaged = _decode_all(folder, chosen)
    if damaged:
        if not skip_damaged or len(damaged) == len(chosen):
            also = f"; {len(damaged) - 1} more of its {len(chosen)} files are damaged too" if len(damaged) > 1 else ""
            raise DamagedSeriesError(f"{one_line(str(damaged[0]), 220)}{also} ({SKIP_DAMAGED_HINT})" if len(damaged) < len(chosen) else str(damaged[0]))
        chosen = [h for h in chosen if h.path in decoded]
        listed = ", ".join(sorted(p.name for p in damaged_paths(damaged, folder))[:5]) + (", …" if len(damaged) > 5 else "")
        notes.append(f"{WARNING_PREFIX}skipped {len(damaged)} damaged files ({listed}); the other slices are shown at their true positions")

    def same_pixels(i: int, j: int) -> bool:
        """Whether two files hold the same modality values (only asked for duplicate positions)."""
        values = []
        for h in (chosen[i], chosen[j]):
            ds, pixels = decoded[h.path]
            frame = np.empty((rows, cols, samples), np.float32)
            write_frame(frame, pixels[0], ds)
            values.append(frame)
        return bool(np.array_equal(values[0], values[1], equal_nan=True))

    stacked = geometry.stack([h.plane for h in chosen], folder, same_pixels)  # type: ignore[misc]
    ordered = [chosen[i].path for i in stacked.order]
    first = decoded[ordered[0]][0]

    def fill(target: np.ndarray) -> None:
        for k, path in enumerate(ordered):
            ds, pixels = decoded[path]
            write_frame(target[k], pixels[0], ds)
        decoded.clear()  # the stored values are not needed once the volume holds them

    return StoredImage(
        shape=(len(ordered), rows, cols),
        channels=samples_per_pixel(first),
        fill=fill,
        original_dtype=stored_dtype(first),
        files=[h.path for h in chosen],
        affine=stacked.affine,
        notes=notes + stacked.notes,
        slice_axis=0,
        slice_origins=stacked.slice_origins,
    )


def _stored_bytes(header: _Header) -> int:
    rows, cols, samples = header.shape
    return header.frames * rows * cols * samples * 4  # at most 32 bits a sample, decoded


def _decode_all(folder: Path, chosen: list[_Header]) -> tuple[dict[Path, tuple[Dataset, np.ndarray]], list[LoadError]]:
    """Every file's header and stored frames, compressed ones decoded in parallel in the decoder
    pool; and the `LoadError` of each file that is damaged (named ``folder/file``)."""
    decoded: dict[Path, tuple[Dataset, np.ndarray]] = {}
    damaged: list[LoadError] = []
    compressed: list[tuple[Path, Dataset]] = []
    rows, cols, _ = chosen[0].shape
    for h in chosen:
        try:
            with _within(folder, h.path):
                ds = _read(h.path, header_only=True)
                if codec_of(syntax_of(ds)) is not None:
                    compressed.append((h.path, ds))
                    continue
                ds = _read(h.path)
                decoded[h.path] = (ds, _checked(h.path, frames(ds, h.path), rows, cols))
                del ds.PixelData  # the values are decoded; the header is what write_frame needs
        except LoadError as exc:
            damaged.append(exc)
    for (path, ds), result in zip(compressed, decode_files(compressed)):
        try:
            with _within(folder, path):
                if isinstance(result, LoadError):
                    raise result
                decoded[path] = (ds, _checked(path, frames_with_lut(ds, result), rows, cols))
        except LoadError as exc:
            damaged.append(exc)
    damaged.sort(key=lambda e: str(e))
    return decoded, damaged


def _checked(path: Path, pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    if pixels.shape[1:3] != (rows, cols):
        fail(path, f"pixel data is {pixels.shape[1]} x {pixels.shape[2]}, not the {rows} x {cols} of the other slices")
    return pixels


def damaged_paths(damaged: list[LoadError], folder: Path) -> list[Path]:
    """The files named by the ``folder/file: …`` messages of ``damaged``."""
    prefix = f"{folder.name or folder}/"
    return [folder / str(e).split(": ", 1)[0][len(prefix):] for e in damaged]


def _slices(series: list[_Header]) -> int:
    return sum(h.frames for h in series)


@contextmanager
def _within(folder: Path, path: Path) -> Iterator[None]:
    """Name a failing file of a folder as ``folder/file`` (the user opened the folder)."""
    try:
        yield
    except LoadError as exc:
        text, prefix = str(exc), f"{path.name}: "
        if not text.startswith(prefix):
            raise
        where = f"{folder.name or folder}/{path.relative_to(folder).as_posix()}"
        raise type(exc)(f"{where}: {text[len(prefix):]}") from exc.__cause__


def _filler_within(folder: Path, path: Path, fill: Filler) -> Filler:
    def named(target: np.ndarray) -> None:
        with _within(folder, path):
            fill(target)

    return named


def _read(path: Path, header_only: bool = False) -> Dataset:
    try:
        return pydicom.dcmread(path, force=True, stop_before_pixels=header_only)
    except Exception as exc:  # noqa: BLE001
        fail(path, f"cannot read DICOM file ({type(exc).__name__}: {exc})")


def _scan(paths: list[Path]) -> tuple[list[_Header], int]:
    """Headers of the DICOM image files among ``paths``, and how many files were skipped."""
    headers, skipped = [], 0
    for path in paths:
        if path.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - anything unreadable is simply not part of a series
            skipped += 1
            continue
        if "Rows" not in ds or "Columns" not in ds:
            skipped += 1  # DICOMDIR, structured reports, RT structures, ...
            continue
        headers.append(
            _Header(
                path=path,
                series=str(ds.get("SeriesInstanceUID", "")),
                label=_label(ds),
                frames=n_frames(ds),
                shape=(int(ds.Rows), int(ds.Columns), samples_per_pixel(ds)),
                plane=geometry.plane(
                    ds.get("ImagePositionPatient"),
                    ds.get("ImageOrientationPatient"),
                    ds.get("PixelSpacing"),
                    ds.get("SpacingBetweenSlices") or ds.get("SliceThickness"),
                ),
            )
        )
    return headers, skipped


def _label(ds: Dataset) -> str:
    """A short series name: number and description, else the end of its UID."""
    number, text = ds.get("SeriesNumber"), str(ds.get("SeriesDescription", "") or "").strip()
    parts = [str(number)] if number not in (None, "") else []
    if text:
        parts.append(f'"{text}"')
    return " ".join(parts) or "…" + str(ds.get("SeriesInstanceUID", "?"))[-8:]
