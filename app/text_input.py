"""Small text files read safely: bounded in size and line length, streamed, strictly decoded.

Labels files (and any other text a user hands in) go through `text_lines`, which yields numbered
lines one at a time, so a caller can refuse a bad row before the rest is read.  The encoding is
UTF-8, or what a byte-order mark says: UTF-8 with BOM, UTF-16 LE or BE with BOM.  Anything else
(Latin-1, a binary file) ends in an error naming the encoding problem and the line.  The file
must be a regular file: a device such as ``/dev/zero`` or a pipe is refused before a byte is read
(before it is even opened), and reading stops at ``limit`` bytes however long the file claims to be
(``/proc`` files say 0).

Errors name the file, the line and why, never the content: a labels path that points at some
other file (``/etc/passwd``) must not echo it.  `short` quotes a user-given value with a cap.
"""

from __future__ import annotations

import codecs
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from app.errors import SlicewiseError

MAX_BYTES = 16 << 20  # a labels file of 100 000 slices with user and time is about 5 MB
MAX_LINE = 64 << 10
CHUNK = 64 << 10
_BOMS = ((codecs.BOM_UTF8, "utf-8", "UTF-8 with BOM"), (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE"), (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE"))


def short(value: object, limit: int = 24) -> str:
    """``value`` quoted for a one-line message: at most ``limit`` characters, one line."""
    text = str(value)
    clipped = text[:limit] + "…" if len(text) > limit else text
    return repr(clipped).replace("\\n", " ")


def _megabytes(size: int) -> str:
    return f"{size / (1 << 20):.0f} MB" if size >= 1 << 20 else f"{size} bytes"


def text_lines(path: str | os.PathLike, what: str = "text", limit: int = MAX_BYTES) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for each line of ``path`` (no line ending), read as it goes.

    ``what`` names the file in errors (``labels``).  A `SlicewiseError` for a file that cannot
    be opened, is not a regular file, is larger than ``limit`` bytes, has a line longer
    than ``MAX_LINE`` or a NUL byte, or is not UTF-8 (nor UTF-16 with a BOM)."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: a FIFO's open would wait for a writer
            raise SlicewiseError(f"cannot read {what} {path}: not a regular file (a device, pipe, folder or socket)")
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise SlicewiseError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SlicewiseError(f"cannot read {what} {path}: not a regular file (a device, pipe, folder or socket)")
        if info.st_size > limit:
            raise SlicewiseError(f"cannot read {what} {path}: it holds {_megabytes(info.st_size)}; a {what} file may hold at most {_megabytes(limit)}")
        yield from _decoded_lines(f, path, what, limit)
    finally:
        f.close()


def _decoded_lines(f, path: Path, what: str, limit: int) -> Iterator[tuple[int, str]]:
    head = b""
    while len(head) < 4 and (more := _read(f, path, what, 4 - len(head))):
        head += more
    eof, total = len(head) < 4, len(head)
    encoding, name = "utf-8", "UTF-8"
    for bom, codec, label in _BOMS:
        if head.startswith(bom):
            head, encoding, name = head[len(bom) :], codec, label
            break
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    done, pending, chunk = 0, "", head
    while True:
        try:
            text = decoder.decode(chunk, final=eof)
        except UnicodeDecodeError as exc:
            before = bytes(exc.object[: exc.start]).decode(encoding, "ignore")
            line = done + 1 + (pending + before).count("\n")
            raise SlicewiseError(f"{path}, line {line}: not {name} text ({exc.reason}); save the {what} file as UTF-8") from None
        if "\0" in text:
            line = done + 1 + (pending + text[: text.index("\0")]).count("\n")
            raise SlicewiseError(f"{path}, line {line}: holds a NUL character: not a text file")
        pending += text
        *lines, pending = pending.split("\n")
        for line in lines:
            done += 1
            yield done, line.removesuffix("\r")
        if len(pending) > MAX_LINE:
            raise SlicewiseError(f"{path}, line {done + 1}: longer than {MAX_LINE // 1024} KiB: not a {what} file")
        if eof:
            break
        chunk = _read(f, path, what, CHUNK)
        eof, total = not chunk, total + len(chunk)
        if total > limit:
            raise SlicewiseError(f"cannot read {what} {path}: more than {_megabytes(limit)}; a {what} file may hold at most that")
    if pending:
        yield done + 1, pending.removesuffix("\r")


def _read(f, path: Path, what: str, size: int) -> bytes:
    try:
        return f.read(size) or b""
    except OSError as exc:
        raise SlicewiseError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
