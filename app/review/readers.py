"""Several readers' slice labels of one volume: a file each, ``<volume>.labels.<reader>.csv``.

`ReaderLabels` is `SliceLabels` (app.review.labels: same header, same atomic saves, same
fallback folders) under a per-reader name.  A reader without a file of their own gets the
single-reader file ``<volume>.labels.csv`` (what the viewer writes outside review) when its rows
are theirs, and saves from then on under their own name.  `readers_of` finds every reader's
labels beside a volume by its content hash, `read_label_file` reads one file for
``slicewise agreement`` (a labels file or a plain ``slice_index,label`` CSV).  Qt-free.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.errors import SlicewiseError
from app.review.labels import (
    MAGIC,
    SUFFIX,
    SliceLabels,
    VolumeKey,
    current_user,
    default_fallback_dir,
    read_labels_csv,
    read_sidecar,
    read_sidecar_key,
)

_READER = re.compile(r"[^\w.@+-]+")


def reader_name(name: str | None) -> str:
    """``name`` (default: the OS user) as it appears in file names: letters, digits, ``. @ + -``."""
    cleaned = _READER.sub("_", (name or current_user()).strip()).strip("._")
    if not cleaned:
        raise SlicewiseError(f"bad reader name {name!r}: use letters and digits")
    return cleaned


def reader_suffix(reader: str) -> str:
    return f".labels.{reader}.csv"


class ReaderLabels(SliceLabels):
    """One reader's labels of one volume, in ``<volume>[.axis][.vN].labels.<reader>.csv``."""

    def __init__(self, key: VolumeKey, name: str, home: Path | None, fallback_dirs: Iterable[Path] = (), reader: str = ""):
        super().__init__(key, name, home, fallback_dirs)
        self.reader = reader_name(reader)

    @classmethod
    def for_reader(cls, volume, reader: str, fallback_dirs: Iterable[Path] | None = None) -> ReaderLabels:
        """The reader's labels of ``volume``: their own file, else the single-reader file when it
        holds only their labels, else none yet."""
        source = Path(volume.source)
        known = bool(volume.sha256) and str(source) != "<memory>"
        dirs = list(fallback_dirs) if fallback_dirs is not None else [default_fallback_dir()]
        labels = cls(VolumeKey.of(volume), source.name, source.parent if known else None, dirs, reader)
        if not known:
            return labels
        labels.path = labels._find()
        found = labels.path or labels._home / labels._single_name()
        try:
            key, entries = read_sidecar(found)
        except (OSError, SlicewiseError):
            return labels
        if labels.path is not None or (key.matches(labels.key) and {e.user for e in entries.values()} == {labels.reader}):
            labels._labels = dict(entries)  # the single-reader file's: saved under the reader's own name at the next change
        return labels

    def _single_name(self) -> str:
        return super()._own_name()

    def _own_name(self) -> str:
        return self._single_name()[: -len(SUFFIX)] + reader_suffix(self.reader)

    def _fallback_name(self) -> str:
        return f"{self._own_name()[: -len(reader_suffix(self.reader))]}.{self.key.sha256[:12]}{reader_suffix(self.reader)}"

    def _candidates(self) -> list[Path]:
        assert self._home is not None
        return [self._home / self._own_name(), *(d / self._fallback_name() for d in self._fallbacks)]

    def update(self, changes, user: str | None = None, time: str | None = None) -> None:
        super().update(changes, user=user or self.reader, time=time)


def readers_of(volume_path: str | os.PathLike, key: VolumeKey, names: Iterable[str] | None = None) -> dict[str, dict[int, str]]:
    """Every reader's labels of the volume ``key`` found beside ``volume_path``: reader → slice →
    label.  Per-reader files by their name; the single-reader file as the labels of the user in
    its rows (a reader's own file wins over it).  ``names``: the folder's file names, when the
    caller has listed it already (a worklist of thousands of cases lists each folder once)."""
    path = Path(volume_path)
    found: dict[str, dict[int, str]] = {}
    single: dict[str, dict[int, str]] = {}
    names = companions(path, names)
    for name in sorted(names):
        if not (name.endswith(".csv") and ".labels" in name):
            continue
        candidate = path.parent / name
        try:
            if not key.matches(read_sidecar_key(candidate)):
                continue
            _, entries = read_sidecar(candidate)
        except (OSError, SlicewiseError):
            continue
        if name.endswith(SUFFIX):
            for index, entry in entries.items():
                single.setdefault(entry.user, {})[index] = entry.value
        else:
            found[name[name.rindex(".labels.") + len(".labels.") : -len(".csv")]] = {i: e.value for i, e in entries.items()}
    for reader, labels in single.items():
        found.setdefault(reader, labels)
    return dict(sorted(found.items()))


def companions(volume_path: Path, names: Iterable[str] | None = None) -> list[str]:
    """The file names beside ``volume_path`` that start with its name (labels, decisions)."""
    if names is None:
        try:
            names = os.listdir(volume_path.parent)
        except OSError:
            return []
    stem = volume_path.name + "."
    return [name for name in names if name.startswith(stem)]


@dataclass(frozen=True)
class LabelFile:
    """One reader's labels from a file given to ``slicewise agreement``."""

    reader: str
    path: Path
    labels: dict[int, str]
    key: VolumeKey | None  # the volume it belongs to (labels files), None for a plain CSV


def read_label_file(path: str | os.PathLike) -> LabelFile:
    """A viewer's labels file (its reader: the one user in its rows, else the reader in its name)
    or a plain ``slice_index,label`` CSV (its reader: the file's name).  A slice labelled twice
    differently is an error naming the row."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline().strip()
    except OSError as exc:
        raise SlicewiseError(f"cannot read labels {path}: {exc.strerror or exc}") from None
    labels = read_labels_csv(path)  # both formats: '#' lines are comments; duplicates refused here
    if first != MAGIC:
        return LabelFile(path.stem, path, labels, None)
    key, entries = read_sidecar(path)
    users = {e.user for e in entries.values()}
    name = path.name
    if ".labels." in name and not name.endswith(SUFFIX):
        reader = name[name.rindex(".labels.") + len(".labels.") : -len(".csv")]
    elif len(users) == 1:
        reader = users.pop()
    else:
        reader = path.name
    return LabelFile(reader, path, labels, key)


def agreement_of_files(paths: Iterable[str | os.PathLike]):
    """`reader_agreement` of the files' labels; files of different volumes are an error, and
    readers of the same name are told apart by their file's name."""
    from app.review.kappa import reader_agreement

    files = [read_label_file(p) for p in paths]
    keyed = [f for f in files if f.key is not None]
    for other in keyed[1:]:
        if not keyed[0].key.matches(other.key):
            raise SlicewiseError(f"{other.path} and {keyed[0].path} label different volumes (their volume_sha256 or axis differ)")
    names = [f.reader for f in files]
    readers = {}
    for f in files:
        name = f.reader if names.count(f.reader) == 1 else f"{f.reader} ({f.path.name})"
        if name in readers:
            raise SlicewiseError(f"{f.path} is given twice")
        readers[name] = f.labels
    return reader_agreement(readers), files
