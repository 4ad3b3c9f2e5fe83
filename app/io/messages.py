"""One-line, user-facing reasons for load failures."""

from __future__ import annotations

import gzip
import importlib.util
import re
import zlib
from pathlib import Path
from typing import NoReturn

from pydicom import uid

from app.errors import LoadError, UnsafeFileError

#: Transfer syntaxes that the optional GPL decoder (pylibjpeg-libjpeg, the ``gpl-jpeg`` extra) reads;
#: the default decoders read them too, except 12-bit JPEG Extended.
GPL_JPEG_SYNTAXES = frozenset(
    {uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEGLSNearLossless}
)
GPL_JPEG_HINT = "the optional GPL decoder may read it: pip install 'slicewise[gpl-jpeg]'"

#: how a refused series says that its other files would load (the viewer offers a button then)
SKIP_DAMAGED_HINT = "--skip-damaged loads the others"


class DamagedSeriesError(LoadError):
    """A file of a DICOM series is damaged; the others may load (``skip_damaged``)."""


def display_name(path: Path) -> str:
    """The name a message uses for ``path`` (its last component, or the path itself)."""
    return path.name or str(path)


def one_line(text: str, limit: int = 200) -> str:
    """``text`` squeezed onto one line and cut to ``limit`` characters."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fail(path: Path, why: str) -> NoReturn:
    """Raise ``LoadError("<name>: <why>")``."""
    raise LoadError(f"{display_name(path)}: {one_line(why)}")


def refuse(path: Path, why: str) -> NoReturn:
    """Raise ``UnsafeFileError("<name>: <why>")``."""
    raise UnsafeFileError(f"{display_name(path)}: {one_line(why)}")


def describe(exc: BaseException) -> str:
    """A short reason for a library exception, in words a user can act on."""
    text = one_line(str(exc))
    if isinstance(exc, EOFError) or "ended before the end-of-stream" in text:
        return "truncated gzip stream (file ends before the image data)"
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)):
        return f"corrupt gzip stream ({text})"
    if isinstance(exc, MemoryError):
        return "not enough memory to load this volume"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return f"a file it needs is missing ({Path(exc.filename).name if exc.filename else text})"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, expected a file"
    match = re.search(r"Expected (\d+) bytes, got (\d+) bytes", text)
    if match or "mmap length is greater than file size" in text:
        counts = f" (needs {match[1]} bytes, found {match[2]})" if match else ""
        return (
            f"holds less image data than its header promises{counts}: "
            "the file is truncated, or its header has wrong dimensions or data offset (vox_offset)"
        )
    if re.search(r"not fully written|EOF|could only read|unexpected end", text, re.IGNORECASE):
        return f"truncated file ({text})"
    if type(exc).__name__ in ("HeaderDataError", "HeaderTypeError"):  # nibabel: a header it cannot use
        return f"invalid header ({text})" if text else "invalid header"
    if isinstance(exc, (ValueError, OSError, RuntimeError)) and text:
        return f"cannot read ({text})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_volume_index(path: Path, index: int, n_volumes: int) -> None:
    """Fail unless ``0 <= index < n_volumes``."""
    if not 0 <= index < n_volumes:
        held = "1 volume (index 0)" if n_volumes == 1 else f"{n_volumes} volumes (indices 0–{n_volumes - 1})"
        fail(path, f"volume index {index} is out of range: the file holds {held}")


def compressed_failure(syntax: uid.UID, exc: BaseException | str, frame: int | None = None, name: str = "") -> str:
    """Why compressed pixel data of ``syntax`` could not be decoded, in one line.

    pydicom lists each installed plugin's reason ("gdcm: ..."), or says that it has no decoder
    for the syntax at all (MPEG, HEVC, JPEG 2000 Part 2, ...).  The optional GPL decoder is
    suggested only when the installed decoders say they do not support the data (12-bit JPEG
    Extended); any other failure is damaged data, and is called that.
    """
    text = str(exc)
    if isinstance(exc, NotImplementedError) or text.startswith("NotImplementedError"):
        return f"pixel data is compressed as {syntax.name}, which no installed DICOM decoder reads"
    lines = [line.strip() for line in text.splitlines()[1:] if line.strip()]
    reasons = "; ".join(lines) or text
    where = f" (frame {frame + 1})" if frame is not None else ""
    name = name or syntax.name
    if "does not support" in text:
        hint = f"; {GPL_JPEG_HINT}" if syntax in GPL_JPEG_SYNTAXES and importlib.util.find_spec("libjpeg") is None else ""
        return f"cannot decode {name} pixel data{where}: no installed decoder supports it{hint} ({reasons})"
    return f"cannot decode {name} pixel data{where}: the data is damaged ({reasons})"  # the reasons are cut first
