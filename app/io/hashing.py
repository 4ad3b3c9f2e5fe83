"""Content hashes of files: the volumes read (all their files at once) and model files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def sha256_of_files(paths: Iterable[Path]) -> str:
    """SHA-256 of the files' bytes, concatenated in sorted path order.

    For one file this equals ``sha256sum FILE``.
    """
    digest = hashlib.sha256()
    for path in sorted({Path(p) for p in paths}):
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of one file's bytes (equals ``sha256sum FILE``)."""
    return sha256_of_files([Path(path)])
