"""A corpus of damaged and hostile compressed DICOM files, made in the test run from pydicom's own
JPEG, JPEG-LS, JPEG 2000 and RLE test files: cut frames, flipped bits (fixed seeds), headers that
disagree with the codestream, and declared-size bombs.  ``write_damaged(folder)`` writes them and
returns ``{case: (path, kind)}``; kind is "cut", "flip", "header", "bomb" or "frames"."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from tests.dicom_writer import IOPS, write_series

#: one small file per codec (all decoded by the default decoders)
BASES = {
    "jpeg_baseline": "SC_rgb_jpeg_dcmtk.dcm",
    "jpeg_lossless": "SC_rgb_jpeg_gdcm.dcm",
    "jpeg_ls": "MR_small_jpeg_ls_lossless.dcm",
    "jpeg_ls_near": "JPEGLSNearLossless_08.dcm",
    "j2k": "MR_small_jp2klossless.dcm",
    "j2k_rgb": "GDCMJ2K_TextGBR.dcm",
    "rle": "MR_small_RLE.dcm",
    "rle_2frame": "SC_rgb_rle_2frame.dcm",
}


def base_path(name: str) -> Path:
    return Path(get_testdata_file(name, download=False))


def _frames(ds) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))


def _save(ds, frames: list[bytes], path: Path) -> Path:
    ds.PixelData = encapsulate([f + b"\0" * (len(f) % 2) for f in frames])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=False)
    return path


def _patch_size(codec_frame: bytes, rows: int, cols: int) -> bytes:
    """The frame with its codestream's declared size set to ``rows`` x ``cols``."""
    data = bytearray(codec_frame)
    if data[:2] == b"\xff\xd8":  # JPEG / JPEG-LS: the SOF's Y and X
        at = 2
        while at < len(data):
            marker, length = data[at + 1], struct.unpack_from(">H", data, at + 2)[0]
            if marker in (0xC0, 0xC1, 0xC3, 0xF7):
                struct.pack_into(">HH", data, at + 5, rows, cols)
                return bytes(data)
            at += 2 + length
        raise ValueError("no SOF")
    at = data.find(b"\xff\x51")  # JPEG 2000 SIZ: Xsiz, Ysiz (offsets 0)
    struct.pack_into(">II", data, at + 6, cols, rows)
    struct.pack_into(">II", data, at + 22, cols, rows)  # one tile of the whole image
    return bytes(data)


def write_damaged(folder: Path) -> dict[str, tuple[Path, str]]:
    """Write the corpus under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}

    def read(base: str):
        return pydicom.dcmread(base_path(BASES[base]))

    for base in BASES:
        frames = _frames(read(base))
        first = frames[0]
        for cut in sorted({16, len(first) // 3, max(len(first) - 200, 18)}):
            name = f"{base}_cut{cut}"
            out[name] = (_save(read(base), [first[:cut], *frames[1:]], folder / f"{name}.dcm"), "cut")
        for seed in range(4):
            rng = np.random.default_rng(seed)
            flipped = bytearray(first)
            header = min(len(first), 400)  # half the flips in the headers, half anywhere
            for at in [*rng.integers(2, header, 4), *rng.integers(2, len(first), 4)]:
                flipped[at] ^= 1 << int(rng.integers(8))
            name = f"{base}_flip{seed}"
            out[name] = (_save(read(base), [bytes(flipped), *frames[1:]], folder / f"{name}.dcm"), "flip")
        for keyword, change in (("Rows", lambda v: v * 2), ("Columns", lambda v: v // 2), ("SamplesPerPixel", lambda v: 4 - v), ("BitsStored", lambda v: 8 if v > 8 else 16)):
            ds = read(base)
            setattr(ds, keyword, change(int(ds.get(keyword))))
            if keyword == "SamplesPerPixel":
                ds.PhotometricInterpretation = "RGB" if ds.SamplesPerPixel == 3 else "MONOCHROME2"
                ds.PlanarConfiguration = 0
            if keyword == "BitsStored" and ds.BitsStored > ds.BitsAllocated:
                ds.BitsAllocated = 16
            ds.HighBit = int(ds.BitsStored) - 1
            name = f"{base}_{keyword}"
            out[name] = (_save(ds, frames, folder / f"{name}.dcm"), "header")
        if base.startswith("rle"):
            ds = read(base)
            ds.Rows = ds.Columns = 65535
            out[f"{base}_bomb"] = (_save(ds, frames, folder / f"{base}_bomb.dcm"), "bomb")
        else:
            for rows, cols in ((65535, 65535), (1, 2_000_000_000) if base.startswith("j2k") else (65535, 1)):
                name = f"{base}_bomb{rows}x{cols}"
                out[name] = (_save(read(base), [_patch_size(first, rows, cols), *frames[1:]], folder / f"{name}.dcm"), "bomb")
                if cols > 65535:
                    continue  # Columns (US) cannot say it
                ds = read(base)
                ds.Rows, ds.Columns = rows, cols
                name = f"{base}_bomb{rows}x{cols}_header_too"
                out[name] = (_save(ds, [_patch_size(first, rows, cols), *frames[1:]], folder / f"{name}.dcm"), "bomb")
    ds = read("rle_2frame")
    ds.NumberOfFrames = 5
    out["rle_2frame_NumberOfFrames"] = (_save(ds, _frames(read("rle_2frame")), folder / "rle_2frame_NumberOfFrames.dcm"), "frames")
    return out


def write_damaged_series(folder: Path) -> tuple[Path, list[Path]]:
    """Six axial JPEG 2000 slices of 40 x 36 pixels, 2.5 mm apart, in ``folder``; slice 3's frame
    is cut in half.  Returns the folder and the paths in slice order."""
    volume = np.random.default_rng(0).integers(-1000, 1000, (6, 40, 36)).astype(np.int16)
    paths, _ = write_series(folder, volume, IOPS["axial"], [0.0, 0.0, 0.0], prefix="slice")
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(uid.JPEG2000Lossless)
        ds.save_as(path)
    ds = pydicom.dcmread(paths[3])
    frame = _frames(ds)[0]
    _save(ds, [frame[: len(frame) // 2]], paths[3])
    return folder, paths
