"""What a compressed frame says about itself, read before any decoder sees it.

A bounded parser for the headers of the encapsulated codestreams DICOM carries: the JPEG SOF
(baseline, extended, lossless), the JPEG-LS SOF55 and LSE, the JPEG 2000 SIZ and COD (raw
codestream or JP2 boxes) and the RLE header.  Every length is checked against the bytes left and
every loop advances, so a damaged header ends in `CodestreamError`, never in a hang (pydicom's own
``get_j2k_parameters`` can loop forever on a damaged JP2 box).  `check_frame` compares what the
frame declares with what the DICOM header promises: a decoder given a codestream that disagrees
with its output buffer is what crashed (GDCM) or wrote out of bounds.

Imports nothing heavy: it runs in the decoder child processes (`app.io.decode_child`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames)
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_SOF55, _LSE, _SOS, _EOI = 0xF7, 0xF8, 0xDA, 0xD9
_J2K_SOC, _J2K_SIZ, _J2K_COD, _J2K_SOT = 0xFF4F, 0xFF51, 0xFF52, 0xFF90
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
MAX_J2K_LEVELS = 32
EOI_SLACK = 16  # bytes of padding an encoder may leave after the end marker


class CodestreamError(ValueError):
    """The frame's codestream is damaged, or disagrees with the DICOM header (one line)."""


@dataclass(frozen=True)
class Declared:
    """The size a codestream declares: ``rows`` x ``columns`` x ``samples`` of ``precision`` bits."""

    rows: int
    columns: int
    samples: int
    precision: int  # bits per sample (RLE: bytes per sample x 8)


@dataclass(frozen=True)
class Expected:
    """What the DICOM header promises for every frame."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int


def _u16(data: bytes, at: int) -> int:
    if at + 2 > len(data):
        raise CodestreamError("the codestream ends inside a header")
    return struct.unpack_from(">H", data, at)[0]


def jpeg_declared(data: bytes) -> Declared:
    """The SOF (or JPEG-LS SOF55, with an LSE oversize record) of a JPEG / JPEG-LS frame."""
    if data[:2] != b"\xff\xd8":
        raise CodestreamError("no JPEG start-of-image marker")
    at, oversize, found = 2, None, None
    while at < len(data):  # each step moves on by at least one byte
        if data[at] != 0xFF:
            raise CodestreamError(f"damaged JPEG header (no marker at byte {at})")
        while at < len(data) and data[at] == 0xFF:  # fill bytes
            at += 1
        if at >= len(data):
            break
        marker = data[at]
        at += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # no length
        if marker == _EOI:
            break
        length = _u16(data, at)
        if length < 2 or at + length > len(data):
            raise CodestreamError(f"damaged JPEG header (a segment of {length} bytes at byte {at}, {len(data) - at} left)")
        body = data[at + 2 : at + length]
        if marker in _SOF or marker == _SOF55:
            if len(body) < 6:
                raise CodestreamError("damaged JPEG frame header")
            precision, rows, cols, samples = body[0], _u16(body, 1), _u16(body, 3), body[5]
            if len(body) < 6 + 3 * samples:
                raise CodestreamError("damaged JPEG frame header (component list cut)")
            found = (rows, cols, samples, precision)
        elif marker == _LSE and body[:1] == b"\x04" and len(body) >= 2:  # JPEG-LS oversize image dimension
            size = body[1]
            if size not in (2, 3, 4) or len(body) < 2 + 2 * size:
                raise CodestreamError("damaged JPEG-LS LSE segment")
            oversize = (int.from_bytes(body[2 : 2 + size], "big"), int.from_bytes(body[2 + size : 2 + 2 * size], "big"))
        elif marker == _SOS:
            break
        at += length
    if found is None:
        raise CodestreamError("the data is damaged (no JPEG frame header, SOF, before the image data)")
    rows, cols, samples, precision = found
    if oversize is not None and (rows == 0 or cols == 0):
        rows, cols = oversize
    return Declared(rows, cols, samples, precision)


def j2k_codestream(data: bytes) -> bytes:
    """The raw JPEG 2000 codestream of ``data`` (a codestream, or a JP2 file: its ``jp2c`` box)."""
    if data[:2] == b"\xff\x4f":
        return data
    if not data.startswith(_JP2_SIGNATURE):
        raise CodestreamError("neither a JPEG 2000 codestream nor a JP2 file")
    at = 0
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if length == 1:
            if at + 16 > len(data):
                raise CodestreamError("damaged JP2 box header")
            length, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif length == 0:
            length = len(data) - at
        if length < header or at + length > len(data):
            raise CodestreamError(f"damaged JP2 box {kind!r} ({length} bytes at byte {at}, {len(data) - at} left)")
        if kind == b"jp2c":
            return data[at + header : at + length]
        at += length  # length >= 8: always moves on
    raise CodestreamError("no codestream box (jp2c) in the JP2 file")


def j2k_declared(data: bytes) -> Declared:
    """The SIZ (and a sanity check of the COD) of a JPEG 2000 frame."""
    code = j2k_codestream(data)
    if _u16(code, 0) != _J2K_SOC or _u16(code, 2) != _J2K_SIZ:
        raise CodestreamError("no JPEG 2000 image header (SIZ) after the start of codestream")
    length = _u16(code, 4)
    if length < 41 or 4 + length > len(code):
        raise CodestreamError(f"damaged JPEG 2000 image header (SIZ of {length} bytes)")
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack_from(">8I", code, 8)
    samples = _u16(code, 40)
    if samples < 1 or length != 38 + 3 * samples:
        raise CodestreamError(f"damaged JPEG 2000 image header ({samples} components in a SIZ of {length} bytes)")
    if xsiz <= xo or ysiz <= yo or xt == 0 or yt == 0 or xto > xo or yto > yo or xto + xt <= xo or yto + yt <= yo:
        raise CodestreamError(f"damaged JPEG 2000 image header (image {xsiz}x{ysiz} at {xo},{yo}, tiles {xt}x{yt} at {xto},{yto})")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    if tiles > 65535:
        raise CodestreamError(f"damaged JPEG 2000 image header ({tiles} tiles)")
    depths = set()
    for c in range(samples):
        ssiz, xr, yr = code[42 + 3 * c], code[43 + 3 * c], code[44 + 3 * c]
        if xr == 0 or yr == 0 or (ssiz & 0x7F) > 37:
            raise CodestreamError(f"damaged JPEG 2000 image header (component {c}: depth {ssiz & 0x7F} + 1, subsampling {xr}x{yr})")
        if (xr, yr) != (1, 1):
            raise CodestreamError(f"JPEG 2000 component {c} is subsampled {xr}x{yr}; DICOM frames are not")
        depths.add((ssiz & 0x7F) + 1)
    _check_cod(code, 4 + length)
    return Declared(ysiz - yo, xsiz - xo, samples, max(depths))


def _check_cod(code: bytes, at: int) -> None:
    """Walk the main header's markers up to the first tile; refuse a damaged COD or none."""
    seen_cod = False
    while at + 4 <= len(code):
        marker, length = _u16(code, at), _u16(code, at + 2)
        if marker == _J2K_SOT:
            break
        if marker >> 8 != 0xFF or length < 2 or at + 2 + length > len(code):
            raise CodestreamError(f"damaged JPEG 2000 main header (marker {marker:04X} of {length} bytes at byte {at})")
        if marker == _J2K_COD:
            if length < 12:
                raise CodestreamError("damaged JPEG 2000 coding style (COD)")
            levels, xcb, ycb = code[at + 9], code[at + 10], code[at + 11]
            if levels > MAX_J2K_LEVELS or xcb > 8 or ycb > 8 or xcb + ycb > 8:
                raise CodestreamError(f"damaged JPEG 2000 coding style ({levels} levels, code blocks 2^{xcb + 2} x 2^{ycb + 2})")
            seen_cod = True
        at += 2 + length
    if not seen_cod:
        raise CodestreamError("the JPEG 2000 main header has no coding style (COD)")


def rle_declared(data: bytes, expected: Expected) -> Declared:
    """The RLE header: 1 to 15 segments whose offsets start after it, rise and stay in the frame."""
    if len(data) < 64:
        raise CodestreamError(f"RLE frame of {len(data)} bytes is shorter than its 64-byte header")
    count, *offsets = struct.unpack_from("<16I", data, 0)
    if not 1 <= count <= 15:
        raise CodestreamError(f"damaged RLE header ({count} segments)")
    used = offsets[:count]
    if used[0] != 64 or any(b <= a for a, b in zip(used, used[1:])) or used[-1] >= len(data):
        raise CodestreamError(f"damaged RLE header (segment offsets {used} in a frame of {len(data)} bytes)")
    per_sample = -(-expected.bits_allocated // 8)
    if count % per_sample or count // per_sample == 0:
        raise CodestreamError(f"RLE frame has {count} segments, not a multiple of {per_sample} bytes per sample")
    return Declared(expected.rows, expected.columns, count // per_sample, per_sample * 8)


def declared(codec: str, data: bytes, expected: Expected) -> Declared:
    """What frame ``data`` of ``codec`` ("JPEG", "JPEG-LS", "JPEG 2000", "RLE") declares."""
    if codec in ("JPEG", "JPEG-LS"):
        return jpeg_declared(data)
    if codec == "JPEG 2000":
        return j2k_declared(data)
    if codec == "RLE":
        return rle_declared(data, expected)
    raise CodestreamError(f"no header check for {codec}")


def check_frame(codec: str, data: bytes, expected: Expected) -> Declared:
    """Refuse a frame whose codestream disagrees with the DICOM header, or is cut short (a JPEG,
    JPEG-LS or JPEG 2000 codestream ends with its end marker, FFD9); the message names both values."""
    data = bytes(data)
    found = declared(codec, data, expected)
    if (found.rows, found.columns) != (expected.rows, expected.columns):
        raise CodestreamError(
            f"the {codec} codestream holds {found.rows} x {found.columns} pixels, but the header says {expected.rows} x {expected.columns} (Rows, Columns)"
        )
    if found.samples != expected.samples:
        raise CodestreamError(f"the {codec} codestream holds {found.samples} samples per pixel, but the header says {expected.samples} (SamplesPerPixel)")
    if codec != "RLE" and (found.precision > expected.bits_allocated or (codec != "JPEG 2000" and found.precision > expected.bits_stored)):
        header = "BitsStored" if found.precision <= expected.bits_allocated else "BitsAllocated"
        value = expected.bits_stored if header == "BitsStored" else expected.bits_allocated
        raise CodestreamError(f"the {codec} codestream holds {found.precision}-bit samples, but the header says {value} ({header})")
    if codec != "RLE" and data.rfind(b"\xff\xd9", max(len(data) - EOI_SLACK, 0)) < 0:
        raise CodestreamError(f"the {codec} codestream is cut short: no end marker in its last {EOI_SLACK} of {len(data)} bytes (the file is truncated or damaged)")
    return found

