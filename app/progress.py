"""A one-line progress bar on stderr for the CLI (drawn only on a terminal unless forced)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``label [#######.......] 12/30  3.1 s``, redrawn in place."""

    def __init__(self, label: str, enabled: bool | None = None, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.width, self.started = label, width, time.perf_counter()

    def update(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = round(self.width * done / total)
        elapsed = time.perf_counter() - self.started
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {elapsed:5.1f} s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
