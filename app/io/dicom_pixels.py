"""Decoding DICOM pixel data and mapping it to modality values (HU, ...) as float32."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut

from app.io.decode_pool import codec_of, decode_files
from app.io.memory import check_memory
from app.io.messages import compressed_failure, fail, one_line


def n_frames(ds: Dataset) -> int:
    """Number of frames (1 for single-frame images)."""
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def samples_per_pixel(ds: Dataset) -> int:
    """Channels after decoding (palette colour images become RGB)."""
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        return 3
    return int(ds.get("SamplesPerPixel", 1) or 1)


def stored_dtype(ds: Dataset) -> str:
    """Name of the stored pixel type, read from the header (no decoding)."""
    if "FloatPixelData" in ds:
        return "float32"
    if "DoubleFloatPixelData" in ds:
        return "float64"
    bits = int(ds.get("BitsAllocated", 16) or 16)
    if bits == 1:
        return "bool"
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    return f"{'int' if signed else 'uint'}{bits}"


def check_pixel_size(ds: Dataset, path: Path, count: int, rows: int, cols: int, headroom: float = 0.8) -> None:
    """Refuse, before any per-frame work or decoding, pixel data that cannot hold what the header
    promises (``count`` frames of ``rows`` x ``cols``), or that would not fit in memory decoded.

    A damaged header can claim billions of frames or pixels in a file of a few kilobytes; without
    this check the stack geometry and the decoder would try to allocate all of them.
    """
    samples = samples_per_pixel(ds)
    voxels = count * rows * cols * samples
    keyword = next((k for k in ("FloatPixelData", "DoubleFloatPixelData", "PixelData") if k in ds), "PixelData")
    bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(keyword) or _bits_allocated(ds)
    stored = -(-voxels * bits // 8)  # bytes, rounded up (1-bit images are packed)
    check_memory(path, (count, rows, cols, samples), extra_bytes=stored, headroom=headroom)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:
        return  # encapsulated: the length says nothing about the decoded size
    element = ds.get(keyword)
    value = getattr(element, "value", None)
    if isinstance(value, (bytes, bytearray)) and len(value) < stored:
        frame_bytes = -(-rows * cols * samples * bits // 8)
        held = len(value) // frame_bytes if frame_bytes else 0
        if count > 1 and held >= 1 and len(value) % frame_bytes <= 1:
            fail(path, f"pixel data holds {held} frames, but the header says {count} (NumberOfFrames damaged, or the file is truncated)")
        fail(path, f"truncated pixel data ({len(value)} of {stored} bytes)")


def _bits_allocated(ds: Dataset) -> int:
    try:
        bits = int(ds.get("BitsAllocated", 16) or 16)
    except (TypeError, ValueError):
        return 16
    return bits if bits > 0 else 16


def frames(ds: Dataset, path: Path) -> np.ndarray:
    """All frames as ``(F, rows, cols[, samples])`` in stored values (colour converted to RGB).

    Compressed data that a native decoder reads is decoded in a child process (`decode_pool`):
    a damaged file can crash or hang the decoder, never this process.
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if codec_of(syntax) is not None:
        decoded = decode_files([(path, ds)])[0]
        if isinstance(decoded, BaseException):
            raise decoded
        array = decoded
    else:
        try:
            array = ds.pixel_array  # uncompressed, or a syntax no plugin reads (pydicom says so at once)
        except Exception as exc:  # noqa: BLE001 - decoder plugins raise anything
            if syntax is not None and syntax.is_compressed:
                fail(path, compressed_failure(syntax, exc))
            short = re.search(r"less than expected \((\d+) vs (\d+) bytes\)", str(exc))
            if short:
                fail(path, f"truncated pixel data ({short[1]} of {short[2]} bytes)")
            fail(path, f"cannot decode pixel data ({type(exc).__name__}: {one_line(str(exc), 120)})")
        if n_frames(ds) == 1:
            array = array[None]
    return frames_with_lut(ds, array)


def frames_with_lut(ds: Dataset, array: np.ndarray) -> np.ndarray:
    """Decoded ``array`` with a palette colour image's lookup table applied (RGB)."""
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        return apply_color_lut(array, ds)
    return array


def rescale_of(ds: Dataset, frame_group: Dataset | None = None) -> tuple[float, float] | None:
    """(slope, intercept) for one frame: per-frame group, then shared group, then top level."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    for group in (frame_group, shared[0] if shared else None):
        seq = group.get("PixelValueTransformationSequence") if group is not None else None
        if seq and ("RescaleSlope" in seq[0] or "RescaleIntercept" in seq[0]):
            return float(seq[0].get("RescaleSlope", 1.0)), float(seq[0].get("RescaleIntercept", 0.0))
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return None


def write_frame(target: np.ndarray, frame: np.ndarray, ds: Dataset, frame_group: Dataset | None = None) -> None:
    """Store ``frame`` in the float32 ``target`` ``(rows, cols, C)``, modality LUT applied."""
    if frame.ndim == 2:
        if ds.get("ModalityLUTSequence"):
            frame = apply_modality_lut(frame, ds)
        else:
            rescale = rescale_of(ds, frame_group)
            if rescale is not None and rescale != (1.0, 0.0):
                lut = Dataset()
                lut.RescaleSlope, lut.RescaleIntercept = rescale
                frame = apply_modality_lut(frame, lut)
        if "DoseGridScaling" in ds:
            frame = frame * float(ds.DoseGridScaling)
        frame = frame[..., None]
    np.copyto(target, frame, casting="unsafe")
