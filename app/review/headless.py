"""Reviewing a run headless: which slices to explain, saliency maps as ``.npy`` files, labels
read for a volume, and the sidecar's ``labels`` section (who labelled when, agreement).

What ``slicewise predict --saliency-dir/--saliency-slices/--labels`` is built of; Qt-free.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import SlicewiseError
from app.outputs import OutputSet
from app.review.agreement import Agreement
from app.review.labels import (
    MAGIC,
    Label,
    VolumeKey,
    current_user,
    now,
    read_labels_csv,
    read_sidecar,
)
from app.text_input import short, text_lines


@dataclass(frozen=True)
class SliceSelection:
    """``all``, ``top:N`` (the N highest-scoring slices) or a list of slice indices."""

    kind: str  # "all", "top" or "list"
    count: int = 0
    indices: tuple[int, ...] = ()

    def choose(self, scores: np.ndarray) -> list[int]:
        """The slices chosen among ``len(scores)``, by ``scores`` for ``top`` (NaN never chosen)."""
        depth = len(scores)
        if self.kind == "all":
            return list(range(depth))
        if self.kind == "top":
            finite = np.flatnonzero(np.isfinite(scores))
            order = finite[np.argsort(-scores[finite], kind="stable")]
            return sorted(int(i) for i in order[: self.count])
        bad = [i for i in self.indices if i >= depth]
        if bad:
            raise SlicewiseError(f"--saliency-slices: slice {bad[0]} does not exist: the volume has slices 0 … {depth - 1}")
        return sorted(set(self.indices))


def parse_slice_selection(text: str) -> SliceSelection:
    """``all`` | ``top:N`` | ``i,j,k`` → a `SliceSelection`; a clear error otherwise."""
    value = text.strip().lower()
    if value == "all":
        return SliceSelection("all")
    if value.startswith("top:"):
        count = value[4:]
        if count.isdigit() and int(count) > 0:
            return SliceSelection("top", count=int(count))
        raise SlicewiseError(f"bad --saliency-slices {short(text)}: top:N needs a whole number N ≥ 1, e.g. top:10")
    try:
        indices = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        indices = ()
    if not indices or min(indices) < 0:
        raise SlicewiseError(f"bad --saliency-slices {short(text)}: use all, top:N or slice indices such as 3,10,42")
    return SliceSelection("list", indices=indices)


def map_name(index: int) -> str:
    return f"slice_{index:04d}.npy"


def write_maps(folder: Path, maps: Mapping[int, np.ndarray], about: Mapping, outs: OutputSet | None = None) -> list[Path]:
    """Each map as ``folder/slice_0042.npy`` (float32 ``(H, W)``), plus ``saliency.json`` saying
    how they were made (``about``) and which slices they are: all or none (staged in ``outs``,
    the command's `OutputSet`, when given, and written at its commit)."""
    written = []
    with OutputSet() if outs is None else nullcontext(outs) as staged:
        staged.folder(folder)
        for index in sorted(maps):
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(maps[index], dtype=np.float32), allow_pickle=False)
            written.append(staged.add(folder / map_name(index), buffer.getvalue()))
        staged.add(folder / "saliency.json", json.dumps({**about, "slices": sorted(int(i) for i in maps)}, indent=2) + "\n")
    return written


def labels_for(path: str | os.PathLike, volume) -> tuple[dict[int, Label], list[str]]:
    """The labels in ``path`` for ``volume``: a Slicewise labels file (with who and when) or any
    ``slice_index,label`` CSV (labelled now, by this user); and warnings for the user."""
    path = Path(path)
    warnings = []
    first = next(text_lines(path, "labels"), (0, ""))[1].strip()
    if first == MAGIC:
        key, entries = read_sidecar(path)
        if not key.matches(VolumeKey.of(volume)):
            warnings.append(f"{path} was made for another volume (content or axis differ from {volume.source}); its labels are used as they are")
        bad = [i for i in entries if i >= volume.depth]
        if bad:
            raise SlicewiseError(f"{path}: slice {bad[0]} does not exist (the volume has {volume.depth} slices)")
        return entries, warnings
    user, time = current_user(), now()
    return {i: Label(v, user, time) for i, v in read_labels_csv(path, volume.depth).items()}, warnings


def labels_section(entries: Mapping[int, Label], source: str | os.PathLike | None, threshold: float, agreements: Mapping[str, Agreement]) -> dict:
    """The sidecar's ``labels`` additions: where the labels came from, counts, who labelled and
    when (OS user, ISO time), and for each score column its agreement with the labels."""
    values = [e.value for e in entries.values()]
    times = sorted(e.time for e in entries.values() if e.time)
    return {
        "source": None if source is None else str(source),
        "positive": values.count("1"),
        "negative": values.count("0"),
        "unsure": values.count("?"),
        "users": sorted({e.user for e in entries.values()}),
        "labelled_from": times[0] if times else None,
        "labelled_to": times[-1] if times else None,
        "threshold": float(threshold),
        "agreement": {column: result.as_dict() for column, result in agreements.items()},
    }

