"""A reader's decisions on a case: accept, reject or second read, with a free-text note and the
time, kept as a history (a changed mind adds a record; none is overwritten).

One file per volume and reader beside the volume's labels, ``<volume>.decisions.<reader>.json``
(in the user's data folder when the volume's folder cannot be written), holding the volume's
content hash and every record in order.  Each decision rewrites the whole file atomically
(app.atomic: temporary file, fsync, rename), so a kill mid-save leaves the previous history
whole.  Qt-free.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from app.atomic import write_atomic
from app.errors import SlicewiseError
from app.review.labels import default_fallback_dir, now
from app.review.readers import reader_name

ACCEPT, REJECT, SECOND_READ = "accept", "reject", "second read"
CHOICES = (ACCEPT, REJECT, SECOND_READ)
FORMAT = "slicewise case decisions"


@dataclass(frozen=True)
class Decision:
    """One record: what the reader decided, their note, when (ISO 8601, UTC)."""

    decision: str
    note: str
    reader: str
    time: str


def decisions_name(volume_name: str, reader: str) -> str:
    return f"{volume_name}.decisions.{reader}.json"


class CaseDecisions:
    """One reader's decision history of one volume (``sha256`` identifies the content)."""

    def __init__(self, volume_path: str | os.PathLike, sha256: str, reader: str, fallback_dirs: Iterable[Path] | None = None):
        self.volume = Path(volume_path)
        self.sha256 = sha256
        self.reader = reader_name(reader)
        name = decisions_name(self.volume.name, self.reader)
        fallbacks = list(fallback_dirs) if fallback_dirs is not None else [default_fallback_dir()]
        self._places = [self.volume.parent / name, *(Path(d) / f"{name[: -len('.json')]}.{sha256[:12]}.json" for d in fallbacks)]
        self.path: Path | None = None
        self.history: list[Decision] = []
        for place in self._places:
            history = _read(place, sha256)
            if history is not None:
                self.path, self.history = place, history
                break

    @property
    def latest(self) -> Decision | None:
        return self.history[-1] if self.history else None

    def decide(self, decision: str, note: str = "", time: str | None = None) -> Decision:
        """Add a record and save the whole history atomically; on failure nothing changes."""
        if decision not in CHOICES:
            raise SlicewiseError(f"bad decision {decision!r}: use {', '.join(CHOICES)}")
        record = Decision(decision, note.strip(), self.reader, time or now())
        text = json.dumps({"format": FORMAT, "volume_sha256": self.sha256, "reader": self.reader,
                           "history": [asdict(d) for d in [*self.history, record]]}, indent=1, ensure_ascii=False) + "\n"  # fmt: skip
        failures = []
        for place in ([self.path] if self.path is not None else []) + [p for p in self._places if p != self.path]:
            try:
                place.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(place, text)
            except (OSError, SlicewiseError) as exc:
                failures.append(str(exc))
                continue
            self.path = place
            self.history.append(record)
            return record
        raise SlicewiseError("cannot save the decision: " + "; ".join(failures))


def _read(path: Path, sha256: str) -> list[Decision] | None:
    """The history in ``path`` when it is this volume's decisions file; else None."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("volume_sha256") != sha256:
        return None
    try:
        return [Decision(str(d["decision"]), str(d.get("note", "")), str(d.get("reader", "")), str(d.get("time", ""))) for d in document["history"]]
    except (KeyError, TypeError):
        return None


def decisions_of(volume_path: str | os.PathLike, sha256: str, names: Iterable[str] | None = None) -> dict[str, list[Decision]]:
    """Every reader's decision history of a volume, found beside it: reader → records
    (``names``: the folder's file names, when the caller has listed it already)."""
    from app.review.readers import companions

    path = Path(volume_path)
    found = {}
    stem = f"{path.name}.decisions."
    for name in sorted(companions(path, names)):
        if name.startswith(stem) and name.endswith(".json"):
            history = _read(path.parent / name, sha256)
            if history:
                found[name[len(stem) : -len(".json")]] = history
    return found
