"""Predictions as a CSV table (one row per slice per volume) and a JSON sidecar of provenance.

The CLI and the GUI both write through here, so their files are identical for the same inputs.
Files are written to a temporary name and renamed, so a failure never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from app import __version__
from app.atomic import write_atomic
from app.errors import SlicewiseError
from app.prediction import Prediction
from app.volume import Volume

Scored = tuple[Volume, Prediction]


def score_columns(outputs: int) -> list[str]:
    return ["score"] if outputs == 1 else [f"score_{k}" for k in range(outputs)]


def csv_text(results: Sequence[Scored]) -> str:
    """The table: ``volume, slice_index, position_mm, score`` (or ``score_0 … score_{K-1}``)."""
    outputs = {prediction.outputs for _, prediction in results}
    if len(outputs) > 1:
        raise SlicewiseError(f"cannot put predictions with different numbers of outputs {sorted(outputs)} in one table")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["volume", "slice_index", "position_mm", *score_columns(outputs.pop() if outputs else 1)])
    for volume, prediction in results:
        name = str(volume.source)
        for index, (position, scores) in enumerate(zip(volume.positions_mm, prediction.scores)):
            writer.writerow([name, index, f"{position:.3f}", *(f"{s:.8g}" for s in scores)])
    return out.getvalue()


def sidecar(results: Sequence[Scored]) -> dict:
    """What produced the table: inputs with their hashes, model, settings, device and timings."""
    first = results[0][1]
    return {
        "slicewise_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "strategy": first.strategy,
        "model": {"source": first.model_source, "sha256": first.model_sha256},
        "normalize": first.normalize,
        "batch_size": first.batch_size,
        "device": first.device,
        "volumes": [_volume_entry(volume, prediction) for volume, prediction in results],
    }


def _volume_entry(volume: Volume, prediction: Prediction) -> dict:
    score = prediction.volume_score
    return {
        "path": str(volume.source),
        "sha256": volume.sha256,
        "shape": list(volume.shape),
        "spacing_mm": [round(s, 6) for s in volume.spacing],
        "axis": volume.axis,
        "orientation": "".join(volume.orientation),
        "volume_index": volume.volume_index,
        "original_dtype": volume.original_dtype,
        "notes": list(volume.notes),
        "nonfinite_slices": prediction.nonfinite_slices,
        "volume_score": None if score is None else [float(s) for s in np.asarray(score)],
        "timings_s": {k: round(v, 6) for k, v in prediction.timings.items()},
    }


def write_predictions(path: str | os.PathLike, results: Sequence[Scored]) -> tuple[Path, Path]:
    """Write ``path`` (CSV) and ``path.json`` (sidecar) atomically; return both paths."""
    path = Path(path)
    table = csv_text(results)
    meta = json.dumps(sidecar(results), indent=2) + "\n"
    sidecar_path = path.with_name(path.name + ".json")
    write_atomic(path, table)
    write_atomic(sidecar_path, meta)
    return path, sidecar_path
