"""Aligned float32 buffers: what TensorFlow's CPU kernels may borrow from torch through DLPack."""

from __future__ import annotations

import numpy as np

ALIGNMENT = 64  # bytes: what TensorFlow's oneDNN kernels assume of a buffer they borrow


def aligned_empty(shape: tuple[int, ...], align: int = ALIGNMENT) -> np.ndarray:
    """An uninitialised float32 array whose data starts on an ``align``-byte boundary."""
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(count + align // 4, dtype=np.float32)
    start = (-raw.ctypes.data % align) // 4
    return raw[start : start + count].reshape(shape)
