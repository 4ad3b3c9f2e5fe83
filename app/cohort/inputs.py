"""Cohort inputs: which arguments are cohorts, what volumes they hold, and cheap change stamps.

Nothing here reads image data or imports Dask or TensorFlow: ``is_cohort`` runs on every
``slicewise predict``, and the expansion runs on the client before any worker exists.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass

from app.io.formats import NOT_DICOM_SUFFIXES, is_volume_name

GLOB_CHARS = frozenset("*?[")
DICOM_MAGIC = b"DICM"
# Names never read as DICOM when a folder is tested for holding a series (outputs and notes too).
_NOT_DICOM = NOT_DICOM_SUFFIXES + (".json", ".csv", ".txt", ".md")


@dataclass(frozen=True)
class Item:
    """One volume of a cohort: ``display`` is the path as the user's arguments spell it (it names
    the volume in the table), ``path`` the absolute path workers load."""

    display: str
    path: str


def is_glob(arg: str) -> bool:
    """A glob pattern, unless a file or folder of exactly that name exists."""
    return any(c in GLOB_CHARS for c in arg) and not os.path.exists(arg)


def is_dicom_series(folder: str) -> bool:
    """A folder holding, directly, at least one file with the DICOM magic at byte 128."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return False
    for entry in entries:
        if entry.name.startswith(".") or entry.name.lower().endswith(_NOT_DICOM):
            continue
        try:
            if not entry.is_file():
                continue
            with open(entry.path, "rb") as f:
                head = f.read(132)
        except OSError:
            continue
        if head[128:132] == DICOM_MAGIC:
            return True
    return False


def is_cohort(paths: list[str] | tuple[str, ...]) -> bool:
    """True if any argument is a glob pattern or a folder that is not itself a DICOM series."""
    return any(is_glob(p) or (os.path.isdir(p) and not is_dicom_series(p)) for p in paths)


def expand(args: list[str] | tuple[str, ...], skip: tuple[str, ...] = ()) -> tuple[list[Item], list[str]]:
    """The volumes the arguments name, in argument order (each folder walked in sorted order),
    without duplicates; and the glob patterns that matched nothing.  ``skip``: absolute paths
    of folders never to walk into (the output's parts folder)."""
    items: list[Item] = []
    seen: set[str] = set()
    unmatched: list[str] = []

    def add(display: str) -> None:
        path = os.path.abspath(display)
        if path not in seen:
            seen.add(path)
            items.append(Item(display, path))

    for arg in args:
        if is_glob(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            found = [m for m in matches if os.path.isdir(m) or is_volume_name(m)]
            if not found:
                unmatched.append(arg)
            for match in found:
                _expand_one(match, add, skip)
        else:
            _expand_one(arg, add, skip)
    return items, unmatched


def _expand_one(arg: str, add, skip: tuple[str, ...]) -> None:
    if not os.path.isdir(arg) or is_dicom_series(arg):
        add(arg)  # a file (even a missing one: its loader says what is wrong) or one DICOM series
        return
    for root, dirs, files in os.walk(arg):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.abspath(os.path.join(root, d)) not in skip)
        if root != arg and is_dicom_series(root):
            dirs[:] = []
            add(root)
            continue
        for name in sorted(files):
            if is_volume_name(name):
                add(os.path.join(root, name))


def stamp(path: str) -> str | None:
    """A cheap fingerprint of what loading ``path`` would read (sizes and mtimes, no content):
    equal stamps let a re-run reuse the content hash it recorded.  None if it cannot be taken."""
    try:
        if os.path.isdir(path):
            digest = hashlib.sha256()
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    st = os.stat(os.path.join(root, name))
                    digest.update(f"{os.path.relpath(os.path.join(root, name), path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            return "dir:" + digest.hexdigest()
        st = os.stat(path)
        parts = [f"{st.st_size}:{st.st_mtime_ns}"]
        lower = path.lower()
        for suffix in (".hdr", ".hdr.gz"):
            if lower.endswith(suffix):  # an Analyze/NIfTI pair: the image data lives beside it
                stem = path[: -len(suffix)]
                for sibling in (stem + ".img", stem + ".img.gz", stem + ".IMG"):
                    if os.path.exists(sibling):
                        s = os.stat(sibling)
                        parts.append(f"{s.st_size}:{s.st_mtime_ns}")
        return "file:" + "/".join(parts)
    except OSError:
        return None
