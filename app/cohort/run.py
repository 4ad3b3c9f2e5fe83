"""``slicewise predict`` on a cohort: plan on the client, score on Dask workers, stream results
back, save each as it arrives, and assemble the table and sidecar in input order at the end."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from app.atomic import check_writable
from app.cohort.cluster import connect, probe_model
from app.cohort.identity import builtin_identity, effective_normalize, model_sha_on_client, uncertainty_key
from app.cohort.inputs import Item, expand, stamp
from app.cohort.outcome import CohortRun, Outcome
from app.cohort.report import finish
from app.cohort.request import CohortRequest
from app.cohort.store import Parts, Settings
from app.errors import ModelError, SlicewiseError
from app.export import sidecar_path
from app.outputs import Inputs, OutputSet
from app.progress import ProgressBar

OnResult = Callable[["distributed.Client", CohortRun], None]  # noqa: F821 - a test hook, called after each result


class CohortProgress(ProgressBar):
    """``volumes [#####.....] 12/30 done, 1 failed, 2.4 vol/s``."""

    def show(self, run: CohortRun) -> None:
        total = len(run.items)
        if not self.enabled or total <= 0:
            return
        done, failed = run.done, run.failed
        filled = round(self.width * (done + failed) / total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} done, {failed} failed, {run.rate:.2f} vol/s")
        if done + failed >= total:
            self.stream.write("\n")
        self.stream.flush()


def predict_cohort(request: CohortRequest, *, on_result: OnResult | None = None) -> int:
    """Score every volume the request names; 0 if all were scored, 2 if any failed."""
    from app.strategies import get_strategy

    if not request.out:
        raise SlicewiseError("scoring a cohort needs --out FILE.csv: each volume's result is saved beside it as it arrives, so a re-run can resume")
    if request.workers is not None and request.scheduler:
        raise SlicewiseError("use --workers N (a local Dask cluster) or --scheduler ADDRESS (an existing one), not both")
    if request.workers is not None and request.workers < 1:
        raise SlicewiseError(f"--workers must be at least 1, not {request.workers}")
    if request.batch_size < 1:
        raise SlicewiseError(f"batch size must be at least 1, not {request.batch_size}")
    strategy = get_strategy(request.strategy)
    normalize = effective_normalize(request.normalize, request.model, strategy)
    out = check_writable(request.out)
    parts = Parts(out)
    skip = (os.path.abspath(parts.folder), *([os.path.abspath(request.mask_dir)] if request.mask_dir else []))  # never its own outputs
    items, unmatched = expand(request.volumes, skip=skip)
    for pattern in unmatched:
        print(f"warning: {pattern} matches no volume", file=sys.stderr)
    if not items:
        if len(request.volumes) == 1 and Path(request.volumes[0]).is_dir():
            given = Path(request.volumes[0])
            others = sum(1 for p in given.rglob("*") if p.is_file())
            raise SlicewiseError(f"{given.name or given}: no volume files or DICOM images in this folder ({others} other files)")
        raise SlicewiseError(f"no volumes found in {' '.join(request.volumes)}")
    from app.inference.models import BUILTIN_PREFIX, metadata_path, model_file
    from app.uncertainty import parse

    method = parse(request.uncertainty)
    models = [*([request.model] if request.model else []), *(method.paths[1:] if method is not None and method.method == "ensemble" else [])]
    model_files = [path for model in models for path in (model_file(model), metadata_path(model_file(model)))]
    guard = OutputSet(Inputs([*(item.path for item in items), *model_files]))
    guard.claim(out)  # never over one of the volumes, the model or its JSON
    guard.claim(sidecar_path(out))
    if request.mask_dir:
        guard.folder(request.mask_dir)
    parts.create()

    model_path = None if not request.model else request.model if request.model.startswith(BUILTIN_PREFIX) else os.path.abspath(request.model)
    model_sha = model_sha_on_client(model_path, strategy.name)
    builtin_key = builtin_identity(strategy) if model_path is None else None
    if model_sha is None:
        model_sha = parts.builtin_sha(builtin_key)
    job = {
        "strategy": strategy.name,
        "model": model_path,
        "model_sha256": model_sha,
        "unsafe": bool(request.unsafe_model),
        "normalize": request.normalize,
        "axis": request.axis,
        "volume_index": request.volume_index,
        "skip_damaged": request.skip_damaged,
        "batch_size": request.batch_size,
        "uncertainty": request.uncertainty,
    }
    stamps = [stamp(item.path) for item in items]
    run = CohortRun(items, [None] * len(items))
    manifest = parts.manifest()

    def settings_for(sha: str) -> Settings:
        return Settings(sha, strategy.name, normalize, request.axis, request.volume_index, uncertainty_key(request.uncertainty, strategy.name))

    def reuse(settings: Settings) -> list[int]:
        """Mark the volumes already scored with these settings; the indices still to score."""
        pending = []
        for i, item in enumerate(items):
            sha = manifest.get((item.path, stamps[i])) if stamps[i] else None
            key = settings.key(sha) if sha else None
            if key and parts.has(key) and not (request.mask_dir and parts.lacks_mask(key)):
                run.outcomes[i] = Outcome("ok", key=key, reused=True)
            else:
                pending.append(i)
        return pending

    settings = settings_for(model_sha) if model_sha else None
    pending = reuse(settings) if settings else list(range(len(items)))
    cluster_label = None
    if pending:
        with connect(request.scheduler, request.workers, len(pending)) as (client, cluster_label):
            warming: list = []  # model probes still loading on the other workers: kept until the end
            if settings is None:  # an untrained built-in model: its hash needs TensorFlow, so ask the workers
                info, warming = probe_model(client, job)
                if info["status"] != "ok":
                    raise ModelError(info["reason"])
                settings = settings_for(info["sha256"])
                parts.record_builtin(builtin_key, info["sha256"])
                job = {**job, "model_sha256": info["sha256"]}
                pending = reuse(settings)
            if pending:
                reused = len(items) - len(pending)
                print(f"scoring {len(pending)} of {len(items)} volumes on {cluster_label}" + (f" ({reused} already scored)" if reused else ""), file=sys.stderr)
                _score(client, run, pending, job, settings, parts, stamps, request.progress, on_result)
            del warming
    if not pending:
        print(f"all {len(items)} volumes already scored; reusing {parts.folder}", file=sys.stderr)
    return finish(request, out, parts, run, settings, cluster_label)


def _score(client, run: CohortRun, pending: list[int], job: dict, settings: Settings, parts: Parts, stamps: list, progress, on_result) -> None:
    """Submit one task per pending volume; save each result as it arrives."""
    from distributed import as_completed

    from app.cohort import worker

    bar = CohortProgress("volumes", enabled=progress)
    run.started = time.perf_counter()
    token = uuid.uuid4().hex[:12]
    futures = {}
    for i in pending:
        future = client.submit(worker.score_volume, run.items[i].path, run.items[i].display, job, key=f"slicewise-{token}-{i}", pure=False)
        futures[future.key] = (i, future)
    bar.show(run)
    try:
        for future in as_completed([f for _, f in futures.values()], loop=client.loop):  # this client's loop, not the default client's
            i, _ = futures.pop(future.key)
            run.outcomes[i] = _receive(future, run.items[i], stamps[i], settings, parts)
            if run.outcomes[i].status == "ok" and not run.outcomes[i].reused:
                run.scored += 1
            del future
            bar.show(run)
            if on_result is not None:
                on_result(client, run)
        run.finished = time.perf_counter()
    finally:
        if futures:  # stopped early: let the cluster drop the rest
            client.cancel([f for _, f in futures.values()])


def _receive(future, item: Item, old_stamp: str | None, settings: Settings, parts: Parts) -> Outcome:
    try:
        result = future.result()
    except Exception as exc:  # noqa: BLE001 - the task itself never raises; this is the cluster
        from distributed import KilledWorker

        if isinstance(exc, KilledWorker):
            return Outcome("failed", reason="internal error: the workers scoring it died repeatedly (out of memory?)")
        return Outcome("failed", reason=f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())}")
    if result["status"] == "model-error":
        raise ModelError(result["reason"])
    if result["status"] != "ok":
        return Outcome("failed", reason=result["reason"])
    if result["sidecar"]["normalize"] != settings.normalize:
        return Outcome("failed", reason=f"internal error: worker {result['worker']} normalised with {result['sidecar']['normalize']!r}, not {settings.normalize!r}")
    if result["model_sha256"] != settings.model_sha256:
        return Outcome("failed", reason=f"internal error: worker {result['worker']} scored it with another model (sha256 {result['model_sha256'][:12]}…)")
    sha = result["volume_sha256"] or f"unhashed:{item.path}:{old_stamp}"
    key = settings.key(sha)
    meta = {
        "format": 1,
        "key": key,
        "settings": settings.__dict__,
        "volume_sha256": sha,
        "path": item.path,
        "stamp": old_stamp,
        "created": _now(),
        **{k: result[k] for k in ("outputs", "slices", "sidecar", "timings_s", "worker", "pid", "model_loads")},
        **({"mask": parts.mask_path(key).name} if result.get("mask") is not None else {}),
    }
    parts.write(key, result["table"], meta, result.get("mask"))
    if old_stamp is not None and stamp(item.path) == old_stamp:  # unchanged while it was scored
        parts.record(item.path, old_stamp, sha)
    return Outcome("ok", key=key)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
