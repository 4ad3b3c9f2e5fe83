"""Per-volume results on disk, beside the output: ``OUT.csv.parts/<key>.csv`` + ``<key>.json``.

A part's key is the SHA-256 of what decides its scores: the volume's content hash, the model's
hash, the strategy, the normalisation and the slicing (axis, volume index); the batch size is
left out since it does not change scores.  Parts are written atomically, table first and JSON
last, so a part counts as done only when its JSON exists.  ``manifest.jsonl`` maps a path and its
stamp (sizes, mtimes) to the content hash the worker computed while loading, so a re-run finds
finished volumes without reading any image data.  Only the client touches this folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from app.csv_cells import text_cell
from app.errors import SlicewiseError
from app.export import csv_text, write_atomic

FORMAT = 1


@dataclass(frozen=True)
class Settings:
    """What, besides the volume's content, decides its scores."""

    model_sha256: str
    strategy: str
    normalize: str  # canonical spec, or "model-default"
    axis: str
    volume_index: int
    uncertainty: str = ""  # the method's spec, an ensemble's members' hashes with it; "": none

    def key(self, volume_sha256: str) -> str:
        # without an uncertainty method the key is what it was before the field: earlier parts stay reusable
        fields = {"format": FORMAT, "volume_sha256": volume_sha256, **{k: v for k, v in self.__dict__.items() if v or k != "uncertainty"}}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


class Parts:
    """The parts folder of one output file."""

    def __init__(self, out: Path):
        self.folder = out.with_name(out.name + ".parts")
        self.manifest_path = self.folder / "manifest.jsonl"

    def create(self) -> None:
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise SlicewiseError(f"cannot create {self.folder}: {exc.strerror or exc}") from None

    def manifest(self) -> dict[tuple[str, str], str]:
        """(absolute path, stamp) → volume content hash, as recorded by earlier runs."""
        known: dict[tuple[str, str], str] = {}
        try:
            lines = self.manifest_path.read_text().splitlines()
        except OSError:
            return known
        for line in lines:
            try:
                entry = json.loads(line)
                known[(entry["path"], entry["stamp"])] = entry["sha256"]
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a kill mid-write
        return known

    def record(self, path: str, stamp: str, sha256: str) -> None:
        line = json.dumps({"path": path, "stamp": stamp, "sha256": sha256}) + "\n"
        fd = os.open(self.manifest_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())  # one small O_APPEND write: whole or not at all in practice
        finally:
            os.close(fd)

    def builtin_sha(self, identity: str | None) -> str | None:
        """The hash remembered for an untrained built-in model of this identity, if any."""
        if identity is None:
            return None
        try:
            return json.loads((self.folder / "builtin-models.json").read_text()).get(identity)
        except (OSError, ValueError, AttributeError):
            return None

    def record_builtin(self, identity: str | None, sha256: str) -> None:
        if identity is None:
            return
        path = self.folder / "builtin-models.json"
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        if known.get(identity) != sha256:
            write_atomic(path, json.dumps({**known, identity: sha256}, indent=1) + "\n")

    def has(self, key: str) -> bool:
        return (self.folder / f"{key}.json").is_file() and (self.folder / f"{key}.csv").is_file()

    def write(self, key: str, table: str, meta: dict, mask: bytes | None = None) -> None:
        """The part's table and meta (written last: a part is whole once its meta is there), and
        its mask before them."""
        if mask is not None:
            write_atomic(self.mask_path(key), mask)
        write_atomic(self.folder / f"{key}.csv", table)
        write_atomic(self.folder / f"{key}.json", json.dumps(meta, indent=1) + "\n")

    def mask_path(self, key: str) -> Path:
        """Where the part's segmentation mask is kept (a ``.nii.gz``), when its run had one."""
        return self.folder / f"{key}.mask.nii.gz"

    def lacks_mask(self, key: str) -> bool:
        """The part is a segmentation run's, kept without its mask (scored before masks were kept)."""
        try:
            meta = self.read_meta(key)
        except SlicewiseError:
            return True
        runs = meta.get("sidecar", {}).get("runs") or [{}]
        return bool(runs[0].get("segmentation")) and not (meta.get("mask") and self.mask_path(key).is_file())

    def read_meta(self, key: str) -> dict:
        try:
            return json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, ValueError) as exc:
            raise SlicewiseError(f"cannot read {self.folder / key}.json: {exc}") from None

    def read_rows(self, key: str, volume: str) -> tuple[list[str], list[list[str]]]:
        """A part's header and rows, its ``volume`` column set to ``volume`` (the same content may
        have been scored under another path)."""
        try:
            text = (self.folder / f"{key}.csv").read_text()
        except OSError as exc:
            raise SlicewiseError(f"cannot read {self.folder / key}.csv: {exc.strerror or exc}") from None
        reader = csv.reader(io.StringIO(text))
        header = next(reader)
        return header, [[text_cell(volume), *row[1:]] for row in reader]


def assemble(parts: Parts, done: list[tuple[str, str]]) -> str:
    """The table of the finished volumes ``(display path, key)``, in that order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header: list[str] | None = None
    for volume, key in done:
        part_header, rows = parts.read_rows(key, volume)
        if header is None:
            header = part_header
            writer.writerow(header)
        elif part_header != header:
            raise SlicewiseError(f"cannot put predictions with columns {part_header[3:]} and {header[3:]} in one table")
        writer.writerows(rows)
    return out.getvalue() if header is not None else csv_text([])
