"""The memory guard: a volume that would not fit is refused before any large allocation.

Also the benchmarks' measure of it (`PeakMemory`), shared by the CLI's and the viewer's figures.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import psutil

from app.io.messages import fail

GIB = 1024**3


def available_memory() -> int:
    """Bytes of memory the system can still give without swapping (Linux: MemAvailable)."""
    return int(psutil.virtual_memory().available)


def check_memory(source: Path, shape: tuple[int, ...], extra_bytes: int = 0, headroom: float = 0.8) -> None:
    """Refuse up front a volume whose float32 copy (plus ``extra_bytes``, e.g. its stored data
    held while decoding) would not fit in memory, with the numbers."""
    needed = int(np.prod(shape, dtype=np.int64)) * 4 + extra_bytes
    dims = "×".join(map(str, shape))
    also = " and as stored" if extra_bytes else ""
    refuse_beyond(source, needed, f"{dims} voxels need {needed / GIB:.1f} GiB as float32{also}", available_memory(), headroom)


def refuse_beyond(source: Path, needed: int, needs: str, available: int, headroom: float = 0.8) -> None:
    """The guard's rule and message: refuse ``source`` when ``needed`` bytes exceed ``headroom``
    of the ``available`` memory, saying what ``needs`` them (e.g. "… declares 9.5 GiB")."""
    if needed > headroom * available:
        fail(source, f"too large to open: {needs}, but only {available / GIB:.1f} GiB of memory is available")


def process_memory(field: str = "VmRSS") -> int:
    """Bytes of ``field`` (VmRSS, VmHWM) in /proc/self/status (Linux; OSError elsewhere)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


class PeakMemory:
    """The peak resident memory over a ``with`` block (the benchmarks' memory figures).

    ``baseline``: the resident memory on entry; ``peak`` (after the block): the kernel's
    high-water mark, reset on entry through /proc/self/clear_refs (``hwm_reset``), or, where it
    cannot be reset, the highest reading of a thread sampling every 2 ms (taken in both cases).
    """

    def __enter__(self) -> PeakMemory:
        self.baseline = self._sampled = process_memory()
        self._stop = threading.Event()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sampled = max(self._sampled, process_memory())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._sampler.join()
        self.peak = max(self._sampled, process_memory("VmHWM")) if self.hwm_reset else self._sampled
