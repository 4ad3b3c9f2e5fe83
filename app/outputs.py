"""All-or-nothing outputs of one command, never written over one of its inputs.

A command that writes several files (a CSV and its sidecar, saliency maps, a mask, a PNG) stages
each in a temporary file beside its target and renames them all into place at the end.  A
failure anywhere (a full disk, a name too long, an error in the work between two writes)
removes everything staged, and the folders the set made, so nothing of the command remains and
files from an earlier run stay as they were.  The error names the write that failed and why.

Use::

    outs = OutputSet(inputs_of(args))       # the command's inputs: volumes, labels, model, its JSON
    out = outs.claim(args.out)              # before any work: refused if it is an input, a folder,
    outs.claim(sidecar_path(out))           #   in a missing folder, or a name too long
    with outs:                              # commits on a clean exit, discards on any exception
        ...                                 # the slow work
        outs.add(out, csv_text)             # str or bytes, staged now (a full disk fails here)
        outs.write_with(mask, lambda tmp: nib.save(image, tmp))  # for writers that want a path
        outs.folder(maps_dir)               # a folder the outputs go in, made if needed

To add an output to a command: `claim` its path where the command starts (so a clash with an
input fails before the work), then `add` (bytes or text) or `write_with` (a function writing a
file at the temporary path it is given; the path ends in the target's name, so writers that go by
the suffix, such as nibabel's, pick the right format) inside the command's ``with`` block.
Qt-free; the rename of many files is not one atomic step, but a failed rename puts back what it
replaced and removes the rest.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from app.errors import SlicewiseError

NAME_MAX = 255  # where the file system does not say
MAX_FOLDER_FILES = 200_000  # the files of an input folder compared with outputs (a cohort's tree)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


class Inputs:
    """The files a command reads: given paths, every file under a given folder (a DICOM series);
    known by resolved path and by device and inode (so symlinks and hard links are found)."""

    def __init__(self, paths: Iterable[str | os.PathLike | None] = ()):
        self._by_id: dict[tuple[int, int], Path] = {}
        self._by_path: dict[str, Path] = {}
        for given in paths:
            if given is None:
                continue
            path = Path(given)
            self._add(path, path)
            for pair in _companions(path):  # an Analyze / NIfTI pair: the .img of a .hdr and back
                self._add(pair, path)
            if path.is_dir():
                for file in itertools.islice(path.rglob("*"), MAX_FOLDER_FILES):
                    self._add(file, path)

    def _add(self, path: Path, shown: Path) -> None:
        self._by_path.setdefault(os.path.realpath(path), shown)
        key = _identity(path)
        if key is not None:
            self._by_id.setdefault(key, shown)

    def which(self, path: Path) -> Path | None:
        """The input that ``path`` is (the same file by name or by link), else None."""
        found = self._by_path.get(os.path.realpath(path))
        if found is None:
            key = _identity(path)
            found = self._by_id.get(key) if key is not None else None
        return found


def _companions(path: Path) -> list[Path]:
    name = path.name
    for one, other in ((".hdr", ".img"), (".img", ".hdr")):
        for gz in ("", ".gz"):
            if name.lower().endswith(one + gz):
                return [path.with_name(name[: -len(one + gz)] + other + extra) for extra in ("", ".gz")]
    return []


def command_inputs(
    volumes: Iterable[str | os.PathLike] = (), labels: str | os.PathLike | None = None, models: Iterable[str | os.PathLike | None] = ()
) -> Inputs:
    """The inputs of a command: its volumes (a DICOM folder's files included), its labels, and
    each model with the JSON beside it."""
    from app.inference.models import metadata_path

    models = [Path(m) for m in models if m and not str(m).startswith("built-in")]
    return Inputs([*volumes, labels, *models, *(metadata_path(m) for m in models)])


def inputs_of(args) -> Inputs:
    """The inputs of a parsed ``predict`` or ``render`` command line (see `command_inputs`)."""
    volumes = list(getattr(args, "volumes", None) or []) + ([args.volume] if getattr(args, "volume", None) else [])
    ensemble = [part.strip() for part in (getattr(args, "ensemble", None) or "").split(",") if part.strip()]
    return command_inputs(volumes, getattr(args, "labels", None), [getattr(args, "model", None), *ensemble])


class OutputSet:
    """The outputs of one command, staged beside their targets and renamed into place together
    (see the module's docstring).  ``inputs``: what no output may be written over."""

    def __init__(self, inputs: Inputs | Iterable[str | os.PathLike] = ()):
        self._inputs = inputs if isinstance(inputs, Inputs) else Inputs(inputs)
        self._token = secrets.token_hex(4)
        self._claimed: set[Path] = set()
        self._folders: set[Path] = set()  # claimed folders
        self._made: list[Path] = []  # folders this set created, removed again on failure
        self._staged: list[tuple[Path, Path]] = []  # (temporary file, target)
        self.written: list[Path] = []  # the targets, once committed

    # -- before the work ------------------------------------------------------------------------

    def claim(self, path: str | os.PathLike) -> Path:
        """Check that ``path`` can be written by this command and reserve it: its folder exists
        (or is a claimed folder), it is not a folder, not one of the inputs, not claimed twice,
        and its name fits the file system.  Returns it as a Path."""
        path = Path(path)
        if path in self._claimed:
            raise SlicewiseError(f"cannot write {path}: the command would write it twice")
        folder = path.parent
        if not folder.is_dir() and not any(folder == f or f in folder.parents for f in self._folders):
            raise SlicewiseError(f"cannot write {path}: folder {folder} does not exist")
        limit = _name_max(folder)
        size = len(os.fsencode(path.name))
        if size > limit:
            shown = f"{path.name[:24]}…{path.name[-16:]}"
            raise SlicewiseError(f"cannot write {shown}: {os.strerror(errno.ENAMETOOLONG)} ({size} bytes; the file system allows {limit})")
        if path.is_dir():
            raise SlicewiseError(f"cannot write {path}: it is a folder")
        self._refuse_input(path)
        self._claimed.add(path)
        return path

    def folder(self, path: str | os.PathLike) -> Path:
        """Reserve a folder to hold outputs (made when the first is staged, removed on failure if
        this set made it): refused if it is a file, or an input (a DICOM series' folder)."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise SlicewiseError(f"cannot write into {path}: it is a file, not a folder")
        self._refuse_input(path)
        self._folders.add(path)
        return path

    def _refuse_input(self, path: Path) -> None:
        found = self._inputs.which(path)
        if found is not None:
            same = "" if os.path.realpath(path) == os.path.realpath(found) else " (the same file through a link)"
            raise SlicewiseError(f"refusing to write {path}: it is an input of this command, {found}{same}; choose another output name")

    # -- during the work ------------------------------------------------------------------------

    def add(self, path: str | os.PathLike, data: str | bytes) -> Path:
        """Stage ``data`` (text is written as UTF-8) to become ``path`` at commit."""
        payload = data.encode() if isinstance(data, str) else data

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                f.write(payload)

        return self.write_with(path, write)

    def write_with(self, path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
        """Stage the file ``write(tmp)`` writes at a temporary path ending in ``path``'s name."""
        path = Path(path)
        if path not in self._claimed:
            self.claim(path)
        self._make(path.parent)
        tmp = path.with_name(_temp_name(path.name, self._token, _name_max(path.parent)))
        self._staged.append((tmp, path))
        try:
            write(tmp)
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fchmod(fd, 0o644)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SlicewiseError(f"cannot write {path}: {_reason(exc)}") from None
        return path

    def _make(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        for p in reversed(missing):
            try:
                p.mkdir()
            except OSError as exc:
                raise SlicewiseError(f"cannot create {p}: {_reason(exc)}") from None
            self._made.append(p)

    # -- the end --------------------------------------------------------------------------------

    def commit(self) -> list[Path]:
        """Rename every staged file onto its target; on a failure put back what was replaced,
        remove the rest and raise.  Returns the targets."""
        done: list[tuple[Path, Path | None]] = []
        try:
            for i, (tmp, target) in enumerate(self._staged):
                backup = None
                if os.path.lexists(target):
                    backup = target.with_name(f".{self._token}.{i}.old")
                    os.replace(target, backup)
                try:
                    os.replace(tmp, target)
                except OSError:
                    if backup is not None:
                        os.replace(backup, target)
                    raise
                done.append((target, backup))
        except OSError as exc:
            for placed, backup in reversed(done):
                _quietly(os.replace, backup, placed) if backup is not None else _quietly(os.unlink, placed)
            self.discard()
            raise SlicewiseError(f"cannot write {target}: {_reason(exc)}") from None
        for _, backup in done:
            if backup is not None:
                _quietly(os.unlink, backup)
        self.written = [target for _, target in self._staged]
        self._staged, self._made = [], []
        return self.written

    def discard(self) -> None:
        """Remove every staged file and the folders this set made."""
        for tmp, _ in self._staged:
            _quietly(os.unlink, tmp)
        for folder in reversed(self._made):
            _quietly(os.rmdir, folder)
        self._staged, self._made = [], []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def _name_max(folder: Path) -> int:
    for where in (folder, *folder.parents):
        try:
            return os.pathconf(where, "PC_NAME_MAX")
        except (OSError, ValueError):
            continue
    return NAME_MAX


def _temp_name(name: str, token: str, limit: int) -> str:
    """A hidden name beside the target that ends like it (``.3fa2c1d0.maps.nii.gz``), short
    enough for the file system."""
    full = f".{token}.{name}"
    if len(os.fsencode(full)) <= limit:
        return full
    return f".{token}.tmp" + "".join(Path(name).suffixes[-2:])[:32]


def _quietly(action: Callable, *paths) -> None:
    try:
        action(*paths)
    except OSError:
        pass
