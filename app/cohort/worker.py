"""What runs on a Dask worker: one task per volume, with the engine and model cached per process.

A worker process owns its TensorFlow (``bootstrap(threads=1)``) and keeps one ``Engine`` and each
model it has loaded in module globals, so a model is loaded once per worker, not per volume.
Tasks run one at a time under a lock (Keras is not thread-safe), even on a worker started with
several threads.  A task returns a small dict (the volume's CSV rows as text, its sidecar entry,
timings, or a failure reason); the volume tensor never leaves the worker.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.errors import SlicewiseError

_lock = threading.Lock()
_engine = None
_models: dict[tuple, Any] = {}  # (model path, sha256, strategy, normalize, unsafe, uncertainty) → (LoadedModel, Uncertainty) or the error
STATS = {"model_loads": 0, "volumes": 0}


def _get_engine():
    global _engine
    if _engine is None:
        from app.inference import Engine
        from app.inference.runtime import bootstrap

        bootstrap(threads=1)
        _engine = Engine(threads=1)
    return _engine


def _get_model(job: dict):
    """The job's model and uncertainty method, loaded on first use in this process (a model of
    None: the built-in one, which the engine caches; an ensemble: each member).  Raises the load
    error, also cached, for a model that cannot load."""
    from app.strategies import get_strategy
    from app.uncertainty import parse

    engine = _get_engine()
    strategy = get_strategy(job["strategy"])
    key = (job["model"], job["model_sha256"], job["strategy"], job["normalize"], job["unsafe"], job.get("uncertainty"))
    if key not in _models:
        try:
            uncertainty = parse(job.get("uncertainty"))
            if job["model"] is None:
                model = engine.builtin(strategy)
            else:
                model = engine.load(job["model"], job["normalize"], job["unsafe"])
            if job["model_sha256"] and model.sha256 != job["model_sha256"]:
                raise SlicewiseError(f"{model.name}: this worker's copy differs from the client's (sha256 {model.sha256[:12]}…, expected {job['model_sha256'][:12]}…)")
            if uncertainty is not None and uncertainty.method == "mc-dropout" and model.backend == "keras":
                from app.uncertainty.dropout import mc_dropout_model

                mc_dropout_model(model.keras_model, model.name, uncertainty.seed)  # no dropout layer: the model's error, not each volume's
            if uncertainty is not None and uncertainty.method == "ensemble":
                others = [engine.load(path, job["normalize"], job["unsafe"]) for path in uncertainty.paths[1:]]
                uncertainty = uncertainty.with_members([model, *others])
            STATS["model_loads"] += 1
            _models[key] = (model, uncertainty)
        except SlicewiseError as exc:
            _models[key] = exc
    loaded = _models[key]
    if isinstance(loaded, SlicewiseError):
        raise loaded
    return engine, strategy, *loaded


def _mask(volume, prediction) -> bytes | None:
    """A segmentation run's label map as a ``.nii.gz`` file's bytes, in the source's voxel order
    and geometry (the client keeps it with the volume's part); None for per-slice scores.  Several
    overlapping sigmoid maps are a 4D stack of binary maps."""
    dense = getattr(prediction, "dense", None)
    if dense is None:
        return None
    from app.segmentation.mask_export import mask_bytes

    return mask_bytes(volume, dense)


def _where() -> dict:
    try:
        from distributed import get_worker

        address = get_worker().address
    except (ImportError, ValueError):
        address = None
    return {"worker": address, "pid": os.getpid(), "model_loads": STATS["model_loads"]}


def model_info(job: dict) -> dict:
    """Load (and cache) the job's model; its hash and provenance, or why it cannot load."""
    with _lock:
        try:
            _, _, model, _ = _get_model(job)
        except SlicewiseError as exc:
            return {"status": "model-error", "reason": str(exc), **_where()}
        return {"status": "ok", "sha256": model.sha256, "source": model.source, **_where()}


def score_volume(path: str, display: str, job: dict) -> dict:
    """Load and score one volume; never raises for a bad volume (it returns the reason)."""
    with _lock:
        started = time.perf_counter()
        try:
            engine, strategy, model, uncertainty = _get_model(job)
        except SlicewiseError as exc:
            return {"status": "model-error", "reason": str(exc), **_where()}
        except Exception as exc:  # noqa: BLE001 - reported, never fatal to the worker
            return {"status": "model-error", "reason": f"internal error: {type(exc).__name__}: {exc}", **_where()}
        ready = time.perf_counter()
        try:
            from app import export
            from app.io import load_volume

            loaded_volume = load_volume(path, axis=job["axis"], volume_index=job["volume_index"], skip_damaged=job.get("skip_damaged", False))
            volume = replace(loaded_volume, source=Path(display))  # named as the user's arguments spell it
            loaded = time.perf_counter()
            prediction = engine.run(volume, strategy, model, normalize=job["normalize"], batch_size=job["batch_size"], uncertainty=uncertainty)
            result = {
                "status": "ok",
                "volume_sha256": volume.sha256,
                "model_sha256": prediction.model_sha256,
                "outputs": prediction.outputs,
                "slices": volume.depth,
                "table": export.csv_text([(volume, prediction)]),
                "sidecar": export.sidecar([(volume, prediction)]),
                "mask": _mask(loaded_volume, prediction),
            }
            del volume, loaded_volume, prediction
        except SlicewiseError as exc:
            return {"status": "failed", "reason": str(exc), **_where()}
        except Exception as exc:  # noqa: BLE001 - a bug or a library surprise fails this volume only
            return {"status": "failed", "reason": f"internal error: {type(exc).__name__}: {exc}", **_where()}
        STATS["volumes"] += 1
        result["timings_s"] = {"model_s": round(ready - started, 6), "load_s": round(loaded - ready, 6), "task_s": round(time.perf_counter() - started, 6)}
        return {**result, **_where()}
