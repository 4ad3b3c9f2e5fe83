"""A cohort's results read back for review: the cases, their per-case figures, and each case's
runs restored as `Prediction`s from the stored scores (no model, no re-scoring).

Reads what ``slicewise predict`` writes: ``OUT.csv`` with its ``OUT.csv.json`` sidecar, or the
resumable store ``OUT.csv.parts/`` (app.cohort.store: a ``<key>.csv`` table and ``<key>.json``
meta per finished volume) of a run still going or stopped.  The table is parsed once into one
float32 matrix; per-case figures (volume score, highest slice score, spread when a ``score_sd``
column is present) are NumPy reductions over its row blocks.  Qt-free.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.errors import SlicewiseError
from app.export import sd_column
from app.prediction import Prediction

if TYPE_CHECKING:
    from app.segmentation.dense_map import DenseMap

SD_PREFIXES = ("score_sd", "area_mm2_sd")  # uncertainty columns (a spread per slice), not scores (`app.export.sd_column`)


@dataclass
class Case:
    """One scored volume of the cohort: rows ``start:stop`` of the table."""

    name: str  # the volume as the table names it
    base: Path  # the folder a relative name may be relative to (the results')
    sha256: str
    axis: str
    volume_index: int
    start: int
    stop: int
    volume_score: float = float("nan")
    max_slice: float = float("nan")
    spread: float | None = None  # mean per-slice sd, when the results hold one
    entry: dict = field(default_factory=dict)  # the sidecar's entry for the volume

    @property
    def depth(self) -> int:
        return self.stop - self.start

    @cached_property
    def path(self) -> Path:
        """Where the volume is on this machine: the name as it is, else beside the results."""
        path = Path(self.name)
        if path.is_absolute() or path.exists():
            return path
        beside = self.base / path
        return beside if beside.exists() else path


class Results:
    """The parsed results of one cohort run."""

    def __init__(self, source: Path, header: list[str], table: np.ndarray, runs: list[dict], cases: list[Case]):
        self.source = source
        self.header = header  # the score and sd columns, in table order
        self.table = table  # (rows, len(header)) float32
        self.runs = runs  # the sidecar's run entries (settings, ``columns``)
        self.cases = cases
        self.has_spread = any(name.startswith(SD_PREFIXES) for name in header)

    def __len__(self) -> int:
        return len(self.cases)

    def scores(self, case: Case, columns: list[str]) -> np.ndarray:
        """The case's ``(depth, len(columns))`` scores of ``columns``."""
        return self.table[case.start : case.stop, [self.header.index(c) for c in columns]]

    def peak(self, case: Case) -> np.ndarray:
        """Per-slice peak over the first run's columns: what the worklist and agreement use."""
        return _nanmax_rows(self.scores(case, self.runs[0]["columns"]))

    def predictions(self, case: Case) -> list[Prediction]:
        """The case's runs as they were scored, rebuilt from the stored scores and settings."""
        restored = []
        per_run = {r.get("name"): r for r in case.entry.get("runs", [])}
        for run in self.runs:
            model = run.get("model") or {}
            score = (per_run.get(run.get("name")) or {}).get("volume_score")
            if score is None and len(self.runs) == 1:
                score = case.entry.get("volume_score")
            classes = run.get("classes")
            sd = [sd_column(c) for c in run["columns"]]
            areas = all(c.startswith("area_mm2") for c in run["columns"])
            restored.append(
                Prediction(
                    scores=np.array(self.scores(case, run["columns"]), dtype=np.float32),
                    volume_score=None if score is None else np.asarray(score, dtype=np.float32),
                    strategy=run.get("strategy") or "slice",
                    model_source=model.get("source") or "",
                    model_sha256=model.get("sha256") or "",
                    normalize=run.get("normalize") or "none",
                    device=run.get("device") or "",
                    batch_size=int(run.get("batch_size") or 0),
                    nonfinite_slices=list(case.entry.get("nonfinite_slices") or []),
                    channels=run.get("channels") or "replicate",
                    output=run.get("output"),
                    output_names=tuple(run.get("outputs") or ()),
                    classes=tuple(classes) if classes else None,
                    activation=run.get("output_activation"),
                    notes=[f"restored from {self.source.name}"],
                    spread=np.array(self.scores(case, sd), dtype=np.float32) if all(c in self.header for c in sd) else None,
                    reduce="area" if areas else None,
                    unit="mm²" if areas else "",
                )
            )
        return restored

    def mask(self, case: Case, volume: Any) -> DenseMap | None:
        """The case's segmentation mask as a map on ``volume`` (the case's volume, as shown), when
        its cohort kept one (`slicewise predict … --model UNET`); None without.  A mask that is
        missing or not on the volume's grid is a `SlicewiseError`."""
        stored = case.entry.get("mask")
        record = next((run.get("segmentation") for run in self.runs if run.get("segmentation")), None)
        if not stored or record is None:
            return None
        path = Path(stored) if os.path.isabs(stored) else self.source.parent / stored
        if not path.is_file():
            raise SlicewiseError(f"{case.name}: its mask {path} is missing (moved with the results?)")
        from app.io import load_volume
        from app.segmentation.dice import check_grid
        from app.segmentation.mask_export import dense_from_labels

        labels = check_grid(load_volume(path, axis=volume.axis), volume)
        return dense_from_labels(labels, record.get("kind") or "sigmoid", tuple(record.get("classes") or ("mask",)), record.get("background"))


def load_results(path: str | os.PathLike) -> Results:
    """``OUT.csv`` (+ ``OUT.csv.json``), or ``OUT.csv.parts`` / an ``OUT.csv`` whose table is not
    written yet but whose parts folder is (a run stopped early)."""
    path = Path(path)
    parts = path if path.is_dir() else path.with_name(path.name + ".parts")
    if path.is_file():
        sidecar_path = path.with_name(path.name + ".json")
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SlicewiseError(f"{path}: its sidecar {sidecar_path.name} is missing; review needs both (as `slicewise predict --out` writes them)") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise SlicewiseError(f"cannot read {sidecar_path}: {exc}") from None
        entries = [e for e in sidecar.get("volumes", []) if e.get("status", "ok") == "ok"]
        runs = sidecar.get("runs") or []
        return _fast(path, text, entries, runs) or _build(path, [(text, entries)], runs, path.parent)
    if parts.is_dir():
        return _from_parts(parts)
    raise SlicewiseError(f"{path}: no such results file or parts folder")


def _from_parts(folder: Path) -> Results:
    pieces, runs = [], None
    for meta_path in sorted(folder.glob("*.json")):
        table_path = meta_path.with_suffix(".csv")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or "sidecar" not in meta:
                continue  # builtin-models.json and the like
            text = table_path.read_text(encoding="utf-8")
        except (OSError, ValueError, UnicodeDecodeError):
            continue  # a part still being written
        entry = {**meta["sidecar"]["volumes"][0], "path": meta.get("path") or meta["sidecar"]["volumes"][0]["path"]}
        if meta.get("mask"):
            entry["mask"] = str(folder / meta["mask"])
        runs = runs or meta["sidecar"].get("runs")
        pieces.append((_renamed(text, entry["path"]), [entry]))
    if not pieces:
        raise SlicewiseError(f"{folder}: no finished volumes in this parts folder")
    pieces.sort(key=lambda piece: piece[1][0]["path"])
    return _build(folder, pieces, runs or [], Path.cwd())


def _fast(path: Path, text: str, entries: list[dict], runs: list[dict]) -> Results | None:
    """The table parsed by NumPy's C reader (numbers only), its blocks of rows taken from the
    sidecar's volumes (in table order, ``shape[0]`` slices each) and checked against the
    ``slice_index`` column; None when they do not fit (then the table is parsed row by row)."""
    header = next(csv.reader(io.StringIO(text[: text.find("\n") + 1])), [])
    depths = [int((e.get("shape") or [0])[0]) for e in entries]
    if header[:3] != ["volume", "slice_index", "position_mm"] or len(header) < 4 or not all(depths) or (header[-1] == "label"):
        return None
    try:
        numbers = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1, usecols=(1, *range(3, len(header))), dtype=np.float64,
                             quotechar='"', comments=None, ndmin=2)  # fmt: skip
    except ValueError:
        return None
    starts = np.cumsum([0, *depths[:-1]])
    if len(numbers) != sum(depths) or not np.array_equal(numbers[:, 0], np.arange(len(numbers)) - np.repeat(starts, depths)):
        return None
    table = numbers[:, 1:].astype(np.float32)
    base = path.parent
    cases = [Case(e["path"], base, e.get("sha256") or "", e.get("axis") or "axial", int(e.get("volume_index") or 0), int(a), int(a) + d, entry=e)
             for e, a, d in zip(entries, starts, depths)]  # fmt: skip
    return _finish(path, header[3:], table, runs, cases)


def _renamed(text: str, volume: str) -> str:
    """A part's table with its volume column set to ``volume`` (as app.cohort.store does)."""
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([rows[0], *([volume, *row[1:]] for row in rows[1:])])
    return out.getvalue()


def _build(source: Path, pieces: list[tuple[str, list[dict]]], runs: list[dict], base: Path) -> Results:
    header: list[str] | None = None
    names: list[str] = []
    blocks: list[np.ndarray] = []
    for text, _ in pieces:
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            continue
        if header is None:
            header = rows[0]
        elif rows[0] != header:
            raise SlicewiseError(f"{source}: parts with different columns ({rows[0][3:]} and {header[3:]})")
        body = rows[1:]
        if not body:
            continue
        columns = list(zip(*body))
        names.extend(columns[0])
        try:
            blocks.append(np.array(columns[3:], dtype=np.float32).T.reshape(len(body), -1))
        except ValueError as exc:
            raise SlicewiseError(f"{source}: a score that is not a number ({exc})") from None
    if header is None or header[:3] != ["volume", "slice_index", "position_mm"]:
        raise SlicewiseError(f"{source}: not a Slicewise results table (expected columns volume, slice_index, position_mm, scores)")
    score_header = [h for h in header[3:]]
    if score_header and score_header[-1] == "label":
        raise SlicewiseError(f"{source}: a table with a label column is one volume's review, not a cohort's results")
    table = np.concatenate(blocks) if blocks else np.zeros((0, len(score_header)), np.float32)
    entries = {e["path"]: e for _, found in pieces for e in found}
    return _finish(source, score_header, table, runs, _cases(names, entries, base))


def _finish(source: Path, header: list[str], table: np.ndarray, runs: list[dict], cases: list[Case]) -> Results:
    scores = [h for h in header if not h.startswith(SD_PREFIXES)]
    runs = [{**run, "columns": [c for c in run.get("columns") or scores if not c.startswith(SD_PREFIXES)]} for run in (runs or [{"name": "slice", "strategy": "slice"}])]
    results = Results(source, header, table, runs, cases)
    _figures(results)
    return results


def _cases(names: list[str], entries: dict[str, dict], base: Path) -> list[Case]:
    """One case per block of consecutive rows of one volume."""
    cases: list[Case] = []
    if not names:
        return cases
    column = np.asarray(names, dtype=object)
    starts = np.flatnonzero(np.concatenate([[True], column[1:] != column[:-1]]))
    stops = np.append(starts[1:], len(names))
    for start, stop in zip(starts.tolist(), stops.tolist()):
        name = names[start]
        entry = entries.get(name, {})
        cases.append(Case(name, base, entry.get("sha256") or "", entry.get("axis") or "axial",
                          int(entry.get("volume_index") or 0), start, stop, entry=entry))  # fmt: skip
    return cases


def _figures(results: Results) -> None:
    """Volume score, highest slice score and spread of every case, in a few NumPy passes."""
    if not results.cases:
        return
    starts = np.array([c.start for c in results.cases])
    columns = [results.header.index(c) for c in results.runs[0]["columns"]]
    peak = _nanmax_rows(results.table[:, columns])
    with np.errstate(invalid="ignore"):
        highest = np.fmax.reduceat(peak, starts)
    sd = [i for i, name in enumerate(results.header) if name.startswith(SD_PREFIXES)]
    spread = None
    if sd:
        values = np.nan_to_num(_nanmax_rows(results.table[:, sd]), nan=0.0)
        counts = np.diff(np.append(starts, len(peak)))
        spread = np.add.reduceat(values, starts) / counts
    for i, case in enumerate(results.cases):
        case.max_slice = float(highest[i])
        score = case.entry.get("volume_score")
        case.volume_score = float(np.nanmax(score)) if score else float("nan")
        case.spread = None if spread is None else float(spread[i])


def _nanmax_rows(values: np.ndarray) -> np.ndarray:
    if values.shape[1] == 1:
        return values[:, 0]
    with np.errstate(invalid="ignore"):
        return np.fmax.reduce(values, axis=1)
