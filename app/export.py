"""Predictions as a CSV table (one row per slice per volume) and a JSON sidecar of provenance.

The CLI, the GUI and cohorts all write through here, so their files agree for the same inputs.
A volume may carry several runs (strategies, models): the table then has a column per run and
class, and the sidecar an entry per run.  Files are written to a temporary name and renamed,
so a failure never leaves half a file.

Columns: ``volume, slice_index, position_mm``, then the scores, then ``label`` when labels are
given.  One run keeps the plain names: ``score`` (one score), ``score_<class>`` or ``score_<k>``.
Several runs: ``score_<run>`` and ``score_<run>_<class>``, where ``<run>`` is the strategy, with the
model (and then output, channel recipe, normalisation) added only where needed to tell runs apart.
A segmentation run's areas (``--reduce area``) are ``area_mm2[_<class>]`` instead of ``score…``.
A run with an uncertainty method (`app.uncertainty`) holds the mean of its passes in those
columns and their standard deviation in ``score_sd…`` columns (``score`` → ``score_sd``), after
all the score columns.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app import __version__
from app.atomic import check_writable, write_atomic
from app.csv_cells import text_cell, text_row
from app.errors import SlicewiseError
from app.outputs import OutputSet, staged_in
from app.prediction import Prediction
from app.volume import Volume

Scored = tuple[Volume, Prediction]  # one run of one volume
Runs = tuple[Volume, Sequence[Prediction]]  # several runs of one volume, in column order
PER_VOLUME = ("class_volumes", "dice")  # a segmentation run's figures of one volume (the rest: its settings)
RUN_KEYS = ("strategy", "model", "normalize", "batch_size", "device")  # also at the sidecar's top level, from the first run

__all__ = ["check_writable", "csv_text", "run_names", "score_columns", "sidecar", "sidecar_document", "sidecar_path", "write_atomic", "write_predictions"]


def run_names(predictions: Sequence[Prediction]) -> list[str]:
    """A short, unique, readable name per run: the strategy, then the model, output, channel
    recipe and normalisation added where runs would otherwise share a name (``slice``,
    ``slice_my_model``), and ``_2``, ``_3`` … for runs that differ in nothing else."""
    parts = [[p.strategy] for p in predictions]
    for detail in (lambda p: p.model_name, lambda p: p.output or "", lambda p: p.channels, lambda p: p.normalize):
        for group in _clashes(parts):
            values = [detail(predictions[i]) for i in group]
            if len(set(values)) > 1:
                for i, value in zip(group, values):
                    parts[i].append(value)
    names = ["_".join(filter(None, (_word(x) for x in p))) for p in parts]
    counts: dict[str, int] = {}
    for i, name in enumerate(names):
        counts[name] = counts.get(name, 0) + 1
        if counts[name] > 1:
            names[i] = f"{name}_{counts[name]}"
    return names


def _clashes(parts: list[list[str]]) -> list[list[int]]:
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(parts):
        by_name.setdefault("\0".join(p), []).append(i)
    return [group for group in by_name.values() if len(group) > 1]


def _word(text: str) -> str:
    """``text`` as part of a column name: letters, digits, ``.``, ``+`` and ``-``; the rest ``_``."""
    return re.sub(r"[^\w.+-]+", "_", text.replace("built-in", "builtin")).strip("_")


def score_columns(predictions: Sequence[Prediction]) -> list[list[str]]:
    """The score column names of each run of one volume (see the module's docstring)."""
    if len(predictions) == 1:
        kind = _column_kind(predictions[0])
        return [[kind if not name else f"{kind}_{_word(name) or name}" for name in predictions[0].score_names]]
    return [
        [f"{_column_kind(prediction)}_{run}" if not name else f"{_column_kind(prediction)}_{run}_{_word(name) or name}" for name in prediction.score_names]
        for run, prediction in zip(run_names(predictions), predictions)
    ]


def spread_columns(predictions: Sequence[Prediction]) -> list[list[str]]:
    """The sd column names of each run (none for a run without an uncertainty method)."""
    return [[sd_column(name) for name in names] if p.spread is not None else [] for p, names in zip(predictions, score_columns(predictions))]


def sd_column(column: str) -> str:
    """A score column's sd column: ``score`` → ``score_sd``, ``area_mm2_lesion`` → ``area_mm2_sd_lesion``."""
    kind = "area_mm2" if column.startswith("area_mm2") else "score"
    return kind + "_sd" + column[len(kind) :]


def _column_kind(prediction: Prediction) -> str:
    """``area_mm2`` for a segmentation run's areas, else ``score``."""
    return "area_mm2" if prediction.reduce == "area" else "score"


def _flat(columns: list[list[str]]) -> list[str]:
    return [name for run in columns for name in run]


def _grouped(results: Sequence[Scored | Runs]) -> list[tuple[Volume, list[Prediction]]]:
    return [(volume, [runs] if isinstance(runs, Prediction) else list(runs)) for volume, runs in results]


def _table_columns(groups: list[tuple[Volume, list[Prediction]]]) -> list[list[str]]:
    """The score columns every volume's runs share; a clear error if they differ."""
    if not groups:
        return [["score"]]
    if all(len(runs) == 1 for _, runs in groups):
        outputs = {runs[0].outputs for _, runs in groups}
        if len(outputs) > 1:
            raise SlicewiseError(f"cannot put predictions with different numbers of outputs {sorted(outputs)} in one table")
    columns = score_columns(groups[0][1])
    for volume, runs in groups[1:]:
        if score_columns(runs) != columns:
            raise SlicewiseError(f"cannot put predictions with columns {_flat(score_columns(runs))} and {_flat(columns)} in one table ({volume.source})")
    return columns


def csv_text(results: Sequence[Scored | Runs], labels: Mapping[int, str] | None = None) -> str:
    """The table: ``volume, slice_index, position_mm``, the score columns, and ``label`` (the
    label of each slice index, empty where none) when ``labels`` is given (one volume only)."""
    groups = _grouped(results)
    if labels is not None and len(groups) > 1:
        raise SlicewiseError(f"slice labels belong to one volume; this table holds {len(groups)}")
    columns = _table_columns(groups)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    spreads = spread_columns(groups[0][1]) if groups else []
    writer.writerow(text_row(["volume", "slice_index", "position_mm", *_flat(columns), *_flat(spreads), *(["label"] if labels is not None else [])]))
    for volume, runs in groups:
        name = text_cell(volume.source)  # a leading ' where the name would be a formula; the sidecar keeps it as it is
        for run in runs:
            if len(run.scores) != volume.depth:
                raise SlicewiseError(f"{volume.source}: a {run.strategy} run holds {len(run.scores)} slices; the volume has {volume.depth}")
        blocks = [run.scores for run in runs] + [run.spread for run in runs if run.spread is not None]
        if len(blocks) - len(runs) != sum(1 for names in spreads if names):
            raise SlicewiseError(f"{volume.source}: cannot put runs with and without an uncertainty method in one table")
        scores = np.concatenate([np.asarray(block, dtype=np.float32).reshape(volume.depth, -1) for block in blocks], axis=1)
        for index, (position, row) in enumerate(zip(volume.positions_mm, scores)):
            label = [text_cell(labels.get(index, ""))] if labels is not None else []
            writer.writerow([name, index, f"{position:.3f}", *(f"{s:.8g}" for s in row), *label])
    return out.getvalue()


def run_settings(prediction: Prediction, name: str, columns: Sequence[str]) -> dict:
    """A run's entry in the sidecar: how its scores were made and which columns hold them."""
    return {
        "name": name,
        "columns": list(columns),
        "strategy": prediction.strategy,
        "model": {"source": prediction.model_source, "sha256": prediction.model_sha256, **prediction.model_about},
        "output": prediction.output,
        "outputs": list(prediction.output_names),
        "output_activation": prediction.activation,
        "classes": list(prediction.classes) if prediction.classes else None,
        "channels": prediction.channels,
        "normalize": prediction.normalize,
        "batch_size": prediction.batch_size,
        "device": prediction.device,
        **({"uncertainty": {**prediction.uncertainty, "sd_columns": [sd_column(c) for c in columns]}} if prediction.uncertainty else {}),
        **({"segmentation": {k: v for k, v in prediction.segmentation.items() if k not in PER_VOLUME}} if prediction.segmentation else {}),
    }


def sidecar_document(runs: Sequence[Mapping], volumes: Sequence[Mapping], **sections) -> dict:
    """The sidecar's one schema: version and time, the first run's settings at the top level
    (``strategy``, ``model``, ``normalize``, ``batch_size``, ``device``), every run under
    ``runs``, then ``sections`` (e.g. ``cohort``) and the ``volumes``."""
    first = runs[0] if runs else {}
    return {
        "slicewise_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **{key: first.get(key) for key in RUN_KEYS},
        "channels": first.get("channels", "replicate"),
        "runs": [dict(run) for run in runs],
        **sections,
        "volumes": [dict(volume) for volume in volumes],
    }


def sidecar(results: Sequence[Scored | Runs], labels: Mapping[int, str] | None = None, review: Mapping | None = None) -> dict:
    """What produced the table: inputs with their hashes, each run's model and settings, device
    and timings; with ``labels``, a ``labels`` section, to which ``review`` adds (who labelled
    when, agreement of each score column with the labels: `app.review.headless.labels_section`)."""
    groups = _grouped(results)
    columns = _table_columns(groups)
    first_runs = groups[0][1] if groups else []
    runs = [run_settings(p, name, cols) for p, name, cols in zip(first_runs, _names(first_runs), columns)]
    extra = {"labels": {"column": "label", "labelled_slices": len(labels), **(review or {})}} if labels is not None else {}
    return sidecar_document(runs, [_volume_entry(volume, predictions) for volume, predictions in groups], **extra)


def _names(predictions: Sequence[Prediction]) -> list[str]:
    return run_names(predictions) if len(predictions) > 1 else [predictions[0].strategy] if predictions else []


def _volume_entry(volume: Volume, predictions: Sequence[Prediction]) -> dict:
    first = predictions[0]
    per_run = [
        {
            "name": name,
            "volume_score": _floats(p.volume_score),
            "timings_s": {k: round(v, 6) for k, v in p.timings.items()},
            "notes": list(p.notes),
            **({"segmentation": {k: p.segmentation[k] for k in PER_VOLUME if k in p.segmentation}} if p.segmentation else {}),
        }
        for name, p in zip(_names(predictions), predictions)
    ]
    return {
        "path": str(volume.source),
        "sha256": volume.sha256,
        "shape": list(volume.shape),
        "spacing_mm": [round(s, 6) for s in volume.spacing],
        "axis": volume.axis,
        "axis_label": volume.axis_label,
        "orientation": "".join(volume.orientation),
        "volume_index": volume.volume_index,
        "original_dtype": volume.original_dtype,
        "notes": list(volume.notes),
        "nonfinite_slices": first.nonfinite_slices,
        "volume_score": per_run[0]["volume_score"],
        "timings_s": per_run[0]["timings_s"],
        "runs": per_run,
    }


def _floats(score) -> list[float] | None:
    return None if score is None else [float(s) for s in np.asarray(score).ravel()]


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of a table: ``FILE.csv`` → ``FILE.csv.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_predictions(
    path: str | os.PathLike,
    results: Sequence[Scored | Runs],
    labels: Mapping[int, str] | None = None,
    review: Mapping | None = None,
    outs: OutputSet | None = None,
) -> tuple[Path, Path]:
    """Write ``path`` (CSV) and ``path.json`` (sidecar), both or neither; return both paths.

    ``results`` holds ``(volume, prediction)`` pairs, or ``(volume, [prediction, …])`` for several
    runs of a volume (a column per run); ``labels`` adds a ``label`` column (one volume only).
    With ``outs`` (the command's `OutputSet`), both are staged there and written at its commit."""
    path = Path(path)
    table = csv_text(results, labels)
    meta = json.dumps(sidecar(results, labels, review), indent=2) + "\n"
    with staged_in(outs) as staged:
        staged.add(path, table)
        staged.add(sidecar_path(path), meta)
    return path, sidecar_path(path)
