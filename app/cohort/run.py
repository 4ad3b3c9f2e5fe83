"""``slicewise predict`` on a cohort: plan on the client, score on Dask workers, stream results
back, save each as it arrives, and assemble the table and sidecar in input order at the end."""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from app.atomic import check_writable
from app.cohort.cluster import connect, probe_model
from app.cohort.identity import builtin_identity, effective_normalize, model_sha_on_client
from app.cohort.inputs import Item, expand, stamp
from app.cohort.store import Parts, Settings
from app.errors import ModelError, SlicewiseError
from app.progress import ProgressBar

OnResult = Callable[["distributed.Client", "Run"], None]  # noqa: F821 - a test hook, called after each result


@dataclass
class Outcome:
    status: str  # "ok" or "failed"
    key: str | None = None
    reason: str | None = None
    reused: bool = False


@dataclass
class Run:
    """The state of one cohort run, as the progress bar and test hooks see it."""

    items: list[Item]
    outcomes: list[Outcome | None]
    scored: int = 0  # scored by workers in this run (not reused)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None  # when the last result arrived

    @property
    def done(self) -> int:
        return sum(1 for o in self.outcomes if o is not None and o.status == "ok")

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o is not None and o.status == "failed")

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def rate(self) -> float:
        """Volumes scored per second since the tasks were submitted."""
        elapsed = self.elapsed
        return self.scored / elapsed if elapsed > 0 else 0.0


class CohortProgress(ProgressBar):
    """``volumes [#####.....] 12/30 done, 1 failed, 2.4 vol/s``."""

    def show(self, run: Run) -> None:
        total = len(run.items)
        if not self.enabled or total <= 0:
            return
        done, failed = run.done, run.failed
        filled = round(self.width * (done + failed) / total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} done, {failed} failed, {run.rate:.2f} vol/s")
        if done + failed >= total:
            self.stream.write("\n")
        self.stream.flush()


def predict_cohort(args: argparse.Namespace, *, on_result: OnResult | None = None) -> int:
    """Score every volume the arguments name; 0 if all were scored, 2 if any failed."""
    from app.strategies import get_strategy

    if not args.out:
        raise SlicewiseError("scoring a cohort needs --out FILE.csv: each volume's result is saved beside it as it arrives, so a re-run can resume")
    if args.workers is not None and args.scheduler:
        raise SlicewiseError("use --workers N (a local Dask cluster) or --scheduler ADDRESS (an existing one), not both")
    if args.workers is not None and args.workers < 1:
        raise SlicewiseError(f"--workers must be at least 1, not {args.workers}")
    if args.batch_size < 1:
        raise SlicewiseError(f"batch size must be at least 1, not {args.batch_size}")
    strategy = get_strategy(args.strategy)
    normalize = effective_normalize(args, strategy)
    out = check_writable(args.out)
    parts = Parts(out)
    items, unmatched = expand(args.volumes, skip=(os.path.abspath(parts.folder),))
    for pattern in unmatched:
        print(f"warning: {pattern} matches no volume", file=sys.stderr)
    if not items:
        if len(args.volumes) == 1 and Path(args.volumes[0]).is_dir():
            given = Path(args.volumes[0])
            others = sum(1 for p in given.rglob("*") if p.is_file())
            raise SlicewiseError(f"{given.name or given}: no volume files or DICOM images in this folder ({others} other files)")
        raise SlicewiseError(f"no volumes found in {' '.join(args.volumes)}")
    parts.create()

    model_path = os.path.abspath(args.model) if args.model else None
    model_sha = model_sha_on_client(model_path, strategy.name)
    builtin_key = builtin_identity(strategy) if model_path is None else None
    if model_sha is None:
        model_sha = parts.builtin_sha(builtin_key)
    job = {
        "strategy": strategy.name,
        "model": model_path,
        "model_sha256": model_sha,
        "unsafe": bool(args.unsafe_model),
        "normalize": args.normalize,
        "axis": args.axis,
        "volume_index": args.volume_index,
        "batch_size": args.batch_size,
    }
    stamps = [stamp(item.path) for item in items]
    run = Run(items, [None] * len(items))
    manifest = parts.manifest()

    def settings_for(sha: str) -> Settings:
        return Settings(sha, strategy.name, normalize, args.axis, args.volume_index)

    def reuse(settings: Settings) -> list[int]:
        """Mark the volumes already scored with these settings; the indices still to score."""
        pending = []
        for i, item in enumerate(items):
            sha = manifest.get((item.path, stamps[i])) if stamps[i] else None
            key = settings.key(sha) if sha else None
            if key and parts.has(key):
                run.outcomes[i] = Outcome("ok", key=key, reused=True)
            else:
                pending.append(i)
        return pending

    settings = settings_for(model_sha) if model_sha else None
    pending = reuse(settings) if settings else list(range(len(items)))
    cluster_label = None
    if pending:
        with connect(args, len(pending)) as (client, cluster_label):
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
                _score(client, run, pending, job, settings, parts, stamps, args.progress, on_result)
            del warming
    if not pending:
        print(f"all {len(items)} volumes already scored; reusing {parts.folder}", file=sys.stderr)
    from app.cohort.report import finish

    return finish(args, out, parts, run, settings, cluster_label)


def _score(client, run: Run, pending: list[int], job: dict, settings: Settings, parts: Parts, stamps: list, progress, on_result) -> None:
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
    }
    parts.write(key, result["table"], meta)
    if old_stamp is not None and stamp(item.path) == old_stamp:  # unchanged while it was scored
        parts.record(item.path, old_stamp, sha)
    return Outcome("ok", key=key)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
