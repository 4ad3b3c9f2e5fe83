"""The memory guard: a volume that would not fit is refused before any large allocation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psutil

from app.io.messages import fail


def available_memory() -> int:
    """Bytes of memory the system can still give without swapping (Linux: MemAvailable)."""
    return int(psutil.virtual_memory().available)


def check_memory(source: Path, shape: tuple[int, ...], extra_bytes: int = 0, headroom: float = 0.8) -> None:
    """Refuse up front a volume whose float32 copy (plus ``extra_bytes``, e.g. its stored data
    held while decoding) would not fit in memory, with the numbers."""
    needed = int(np.prod(shape, dtype=np.int64)) * 4 + extra_bytes
    available = available_memory()
    if needed > headroom * available:
        gib = 1024**3
        dims = "×".join(map(str, shape))
        also = " and as stored" if extra_bytes else ""
        fail(source, f"too large to open: {dims} voxels need {needed / gib:.1f} GiB as float32{also}, but only {available / gib:.1f} GiB of memory is available")
