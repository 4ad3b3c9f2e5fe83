"""A reader's slice labels: ``1`` positive, ``0`` negative, ``?`` unsure, saved as they are made.

`SliceLabels` holds the labels of one volume (slice index → label, with who and when) and writes
them after every change, atomically, to a sidecar next to the volume, ``<volume>.labels.csv``
(``<volume>.<axis>[.v<N>].labels.csv`` for another axis or 4D volume).  Where the volume's
folder cannot be written it uses a fallback folder, as ``<volume>.<hash>.labels.csv``: the
folder of the exported CSV when the GUI names one (`SliceLabels.use_folder`), else the user's
data folder.  The file records the volume's content hash, axis and depth
in header comments; labels are reloaded only for a volume with the same hash and axis, so a
renamed or moved file keeps its labels and a changed one does not get stale ones::

    # slicewise slice labels
    # volume_sha256: 3f2a…
    # axis: axial
    # volume_index: 0
    # depth: 64
    slice_index,label,user,time
    12,1,alice,2026-03-02T10:14:07+00:00

`read_labels_csv` imports any ``slice_index,label`` CSV (the demo's ``labels.csv`` is one; more
columns are ignored).  Qt-free.
"""

from __future__ import annotations

import csv
import getpass
import io
import itertools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.atomic import write_atomic
from app.csv_cells import read_cell, text_cell
from app.errors import SlicewiseError
from app.text_input import short, text_lines

POSITIVE, NEGATIVE, UNSURE = "1", "0", "?"
LABELS = (POSITIVE, NEGATIVE, UNSURE)
SUFFIX = ".labels.csv"
MAGIC = "# slicewise slice labels"
FIELDS = ("slice_index", "label", "user", "time")
MAX_SLICES = 100_000  # the bound on a slice index when the volume's depth is not known
_SPELLINGS = {
    "1": POSITIVE, "1.0": POSITIVE, "positive": POSITIVE, "pos": POSITIVE, "true": POSITIVE, "yes": POSITIVE,
    "0": NEGATIVE, "0.0": NEGATIVE, "negative": NEGATIVE, "neg": NEGATIVE, "false": NEGATIVE, "no": NEGATIVE,
    "?": UNSURE, "unsure": UNSURE, "uncertain": UNSURE,
}  # fmt: skip


@dataclass(frozen=True)
class Label:
    """One slice's label and who set it when (ISO 8601 time, UTC)."""

    value: str
    user: str
    time: str


@dataclass(frozen=True)
class VolumeKey:
    """What a labels file must match to belong to a volume: its content, axis and 4D index."""

    sha256: str
    axis: str = "axial"
    volume_index: int = 0
    depth: int | None = None

    @classmethod
    def of(cls, volume) -> VolumeKey:
        return cls(volume.sha256, volume.axis, int(volume.volume_index), int(volume.depth))

    def matches(self, other: VolumeKey) -> bool:
        return bool(self.sha256) and (self.sha256, self.axis, self.volume_index) == (other.sha256, other.axis, other.volume_index)


def current_user() -> str:
    """The OS user name (``unknown`` where the system has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def parse_label(text: str) -> str | None:
    """``1``/``0``/``?`` (and spellings such as ``positive``) → a label; empty → None (no label)."""
    value = text.strip().lower()
    if not value:
        return None
    try:
        return _SPELLINGS[value]
    except KeyError:
        raise SlicewiseError(f"bad label {short(text)}: use 1 (positive), 0 (negative) or ? (unsure)") from None


def default_fallback_dir() -> Path:
    """Where labels go when neither the volume's folder nor an export folder can take them."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "slicewise" / "labels"


class SliceLabels:
    """The labels of one volume, saved to ``path`` after every change (``path`` None: kept in memory).

    Build it with `SliceLabels.for_volume`, which finds and loads the volume's labels file.
    """

    def __init__(self, key: VolumeKey, name: str, home: Path | None, fallback_dirs: Iterable[Path] = ()):
        self.key = key
        self._name = name  # the volume's file (or folder) name, for file names
        self._home = home  # the volume's own folder (None: an in-memory volume)
        self._fallbacks = [Path(d) for d in fallback_dirs]
        self._labels: dict[int, Label] = {}
        self.path: Path | None = None  # the file the labels are written to, once there are any

    # -- finding and loading ------------------------------------------------------------------

    @classmethod
    def for_volume(cls, volume, fallback_dirs: Iterable[Path] | None = None) -> SliceLabels:
        """The labels of ``volume`` (a `Volume`): loaded from the file that matches its hash and
        axis, beside it or in a fallback folder (default: the user's data folder), else empty."""
        source = Path(volume.source)
        known = bool(volume.sha256) and str(source) != "<memory>"
        dirs = list(fallback_dirs) if fallback_dirs is not None else [default_fallback_dir()]
        labels = cls(VolumeKey.of(volume), source.name, source.parent if known else None, dirs)
        if known:
            found = labels._find()
            if found is not None:
                labels.path = found
                labels._labels = read_sidecar(found)[1]
        return labels

    def _own_name(self) -> str:
        key = self.key
        extra = "" if key.axis == "axial" else f".{key.axis}"
        extra += f".v{key.volume_index}" if key.volume_index else ""
        return f"{self._name}{extra}{SUFFIX}"

    def _fallback_name(self) -> str:
        return f"{self._own_name()[: -len(SUFFIX)]}.{self.key.sha256[:12]}{SUFFIX}"

    def _candidates(self) -> list[Path]:
        """Where this volume's labels may be: its own name first, then any labels file nearby."""
        assert self._home is not None
        own = [self._home / self._own_name(), *(d / self._fallback_name() for d in self._fallbacks)]
        others: list[Path] = []
        for folder in (self._home, *self._fallbacks):
            try:
                others.extend(sorted(folder.glob(f"*{SUFFIX}")))
            except OSError:
                continue
        return list(dict.fromkeys([*own, *others]))

    def _find(self) -> Path | None:
        for path in self._candidates():
            try:
                if path.is_file() and self.key.matches(read_sidecar_key(path)):
                    return path
            except (OSError, SlicewiseError):
                continue  # an unreadable or foreign file is not this volume's
        return None

    # -- reading and changing -----------------------------------------------------------------

    @property
    def labels(self) -> dict[int, str]:
        """Slice index → ``1``/``0``/``?`` (a copy), in slice order."""
        return {i: self._labels[i].value for i in sorted(self._labels)}

    @property
    def entries(self) -> dict[int, Label]:
        """Slice index → label with who set it and when (a copy), in slice order."""
        return {i: self._labels[i] for i in sorted(self._labels)}

    def get(self, index: int) -> str | None:
        entry = self._labels.get(int(index))
        return None if entry is None else entry.value

    def __len__(self) -> int:
        return len(self._labels)

    def set(self, index: int, label: str | None) -> None:
        """Label slice ``index`` (``None`` clears it) and save."""
        self.update({int(index): label})

    def clear(self, index: int) -> None:
        self.set(index, None)

    def update(self, changes: Mapping[int, str | None], user: str | None = None, time: str | None = None) -> None:
        """Set several labels at once (``None`` clears one) and save once."""
        user, time = user or current_user(), time or now()
        new = dict(self._labels)
        for index, label in changes.items():
            index = self._check_index(index)
            if label is None:
                new.pop(index, None)
                continue
            value = parse_label(str(label))
            if value is None:
                new.pop(index, None)
            else:
                new[index] = Label(value, user, time)
        if new == self._labels:
            return
        previous, self._labels = self._labels, new
        try:
            self.save()
        except SlicewiseError:
            self._labels = previous  # what is shown stays what is on disk
            raise

    def import_csv(self, path: str | os.PathLike, replace: bool = False) -> int:
        """Merge (or with ``replace``, replace) the labels of a ``slice_index,label`` CSV; return how many."""
        imported = read_labels_csv(path, self.key.depth)
        changes: dict[int, str | None] = {i: None for i in self._labels} if replace else {}
        changes.update(imported)
        self.update(changes)
        return len(imported)

    def _check_index(self, index: int) -> int:
        depth = self.key.depth
        if int(index) != index or index < 0 or (depth is not None and index >= depth):
            last = f"0 … {depth - 1}" if depth else "0 …"
            raise SlicewiseError(f"slice {index} does not exist: the volume has slices {last}")
        return int(index)

    # -- writing ------------------------------------------------------------------------------

    def text(self) -> str:
        """The labels file's contents."""
        key = self.key
        out = io.StringIO()
        out.write(f"{MAGIC}\n# volume_sha256: {key.sha256}\n# axis: {key.axis}\n# volume_index: {key.volume_index}\n")
        if key.depth is not None:
            out.write(f"# depth: {key.depth}\n")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        for index, entry in self.entries.items():
            writer.writerow([index, entry.value, text_cell(entry.user), text_cell(entry.time)])
        return out.getvalue()

    def save(self) -> Path | None:
        """Write the labels file atomically beside the volume, else into every fallback folder
        that takes it (the user's data folder is always one, so a reopen finds the latest)."""
        if self._home is None or (self.path is None and not self._labels):
            return None
        text, failures = self.text(), []
        home = self.path if self.path is not None and self.path.parent == self._home else self._home / self._own_name()
        if _write(home, text, failures):
            self.path = home
            return home
        written = [target for target in (d / self._fallback_name() for d in self._fallbacks) if _write(target, text, failures)]
        if not written:
            raise SlicewiseError("cannot save the slice labels: " + "; ".join(failures))
        self.path = written[0]
        return self.path

    def use_folder(self, folder: str | os.PathLike) -> None:
        """Put the labels in ``folder`` too (e.g. the exported CSV's) while the volume's own
        folder cannot take them; saves there at once."""
        folder = Path(folder)
        self._fallbacks = [folder, *(d for d in self._fallbacks if d != folder)]
        if self.path is not None and self.path.parent != self._home:
            self.save()


def _write(path: Path, text: str, failures: list[str]) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    except (OSError, SlicewiseError) as exc:
        failures.append(str(exc) if isinstance(exc, SlicewiseError) else f"cannot write {path}: {exc.strerror or exc}")
        return False
    return True


def read_sidecar_key(path: Path) -> VolumeKey:
    """The volume a labels file belongs to, from its header comments."""
    return _key(path, [line for _, line in itertools.islice(text_lines(path, "labels"), 6)])


def _key(path: Path, lines: list[str]) -> VolumeKey:
    if not lines or lines[0].strip() != MAGIC:
        raise SlicewiseError(f"{path}: not a Slicewise labels file (its first line is not {MAGIC!r})")
    meta = {}
    for line in lines[1:]:
        if line.startswith("#") and ":" in line:
            name, _, value = line[1:].partition(":")
            meta[name.strip()] = value.strip()
    try:
        depth = int(meta["depth"]) if "depth" in meta else None
        return VolumeKey(meta["volume_sha256"], meta.get("axis", "axial"), int(meta.get("volume_index", 0)), depth)
    except (KeyError, ValueError):
        raise SlicewiseError(f"{path}: labels file without a valid volume_sha256/axis header") from None


def read_sidecar(path: Path) -> tuple[VolumeKey, dict[int, Label]]:
    """A labels file: the volume it belongs to and its labels with who and when."""
    lines = text_lines(path, "labels")
    head = list(itertools.islice(lines, 6))
    key = _key(Path(path), [line for _, line in head])
    labels = {}
    for row, number in _rows(path, itertools.chain(head, lines)):
        value = _label_at(path, row, number)
        if value is not None:
            labels[_index(path, row, number, key.depth)] = Label(value, read_cell(row.get("user") or "unknown"), read_cell(row.get("time") or ""))
    return key, labels


def read_labels_csv(path: str | os.PathLike, depth: int | None = None) -> dict[int, str]:
    """Slice index → label from a CSV with ``slice_index`` and ``label`` columns (``#`` lines are
    comments; empty labels are skipped).  A bad row, or one slice labelled twice differently,
    is an error that names the row."""
    path = Path(path)
    lines = text_lines(path, "labels")  # streamed: a row past the volume's slices stops the reading
    labels: dict[int, str] = {}
    volumes = set()
    for row, number in _rows(path, lines):
        volumes.add(row.get("volume"))
        if len(volumes) > 1:
            raise SlicewiseError(f"{path}: holds the labels of several volumes (column 'volume'); give one volume's labels")
        value = _label_at(path, row, number)
        if value is None:
            continue
        index = _index(path, row, number, depth)
        if labels.get(index, value) != value:
            raise SlicewiseError(f"{path}, line {number}: slice {index} is labelled both {labels[index]} and {value}")
        labels[index] = value
    return labels


def _rows(path, lines: Iterable[tuple[int, str]]):
    """``(row dict, line number)`` for the data rows of a CSV whose ``#`` lines are comments,
    read as they come.  Errors name the line, never its content (the file may be another one)."""
    numbered = ((n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#"))
    where = [0]

    def text():
        for where[0], line in numbered:
            yield line

    reader = csv.reader(text())
    try:
        first = next(reader, None)
        if first is None:
            raise SlicewiseError(f"{path}: no header line; expected columns slice_index,label")
        header = [h.strip().lower() for h in first]
        if "slice_index" not in header or "label" not in header:
            raise SlicewiseError(f"{path}, line {where[0]}: not a labels CSV: expected columns slice_index and label in its header")
        for values in reader:
            yield dict(zip(header, (v.strip() for v in values))), where[0]
    except csv.Error:
        raise SlicewiseError(f"{path}, line {where[0]}: not a CSV file") from None


def _label_at(path, row: dict, number: int) -> str | None:
    try:
        return parse_label(row.get("label") or "")
    except SlicewiseError as exc:
        raise SlicewiseError(f"{path}, line {number}: {exc}") from None


def _index(path, row: dict, number: int, depth: int | None) -> int:
    text = row.get("slice_index", "")
    try:
        index = int(text)
    except ValueError:
        raise SlicewiseError(f"{path}, line {number}: slice_index {short(text)} is not a whole number") from None
    if index < 0 or index >= (depth if depth is not None else MAX_SLICES):
        raise SlicewiseError(f"{path}, line {number}: slice {index} does not exist (the volume has {depth or 'fewer'} slices)")
    return index
