"""All-or-nothing file writes: a failure never leaves half a file or harms an earlier one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from app.errors import SlicewiseError


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename over it: all or nothing."""
    data = text.encode() if isinstance(text, str) else text
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    except OSError as exc:
        raise SlicewiseError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise SlicewiseError(f"cannot write {path}: {exc.strerror or exc}") from None


def check_writable(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """Fail before the slow part if ``path`` cannot be written: its folder must exist, it must
    not be a folder, and it must end in ``suffix`` when one is given.  Returns it as a Path."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if suffix is not None and path.suffix.lower() != suffix.lower():
        raise SlicewiseError(f"cannot write {path}: the output must be a {suffix} file")
    if not folder.is_dir():
        raise SlicewiseError(f"cannot write {path}: folder {folder} does not exist")
    if path.is_dir():
        raise SlicewiseError(f"cannot write {path}: it is a folder")
    return path
