"""The Dask side of the client: a connection to ``--scheduler`` or a LocalCluster on this
machine, and the model probe that warms every worker up."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import SlicewiseError


def probe_model(client, job: dict) -> tuple[dict, list]:
    """Load the model on every worker at once (which warms them all up) and return the first
    answer, with the futures of the others (kept so that they finish)."""
    from distributed import as_completed

    from app.cohort import worker

    workers = list(client.scheduler_info().get("workers", {})) or [None]
    probes = [
        client.submit(worker.model_info, job, pure=False, workers=None if w is None else [w], allow_other_workers=True) for w in workers
    ]
    first = next(as_completed(probes, loop=client.loop))
    return first.result(), probes


def default_workers(pending: int) -> int:
    """One single-threaded worker per CPU, but no more than there are volumes, nor than fit in
    memory at about 2 GiB each (TensorFlow, a model and a volume)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    import psutil

    memory = psutil.virtual_memory().total // (2 << 30)
    return max(1, min(cpus, pending, memory))


@contextmanager
def connect(scheduler: str | None, workers: int | None, pending: int) -> Iterator[tuple[object, str]]:
    """A Dask client and a label for it: to the cluster at ``scheduler``, else to a LocalCluster
    on this machine of ``workers`` processes (default: ``default_workers(pending)``)."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=20, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SlicewiseError(f"cannot reach the Dask scheduler at {scheduler}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
        try:
            present = len(client.scheduler_info().get("workers", {}))
            if not present:
                print(f"warning: the Dask cluster at {scheduler} has no workers yet; waiting for some", file=sys.stderr)
            yield client, f"the Dask cluster at {scheduler} ({present} workers)"
        finally:
            client.close()
        return
    n = workers or default_workers(pending)
    try:
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,  # Keras is not thread-safe: one task at a time per worker process
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},  # no dashboard; its HTTP routes on any free port
            silence_logs=logging.ERROR,
            env={"KERAS_BACKEND": "tensorflow"},
        )
    except Exception as exc:  # noqa: BLE001 - ports, memory, spawning: all mean "cannot start"
        raise SlicewiseError(f"cannot start a local Dask cluster of {n} workers: {exc}") from None
    try:
        client = Client(cluster, set_as_default=False)
        try:
            yield client, f"a local Dask cluster ({n} worker{'s' if n != 1 else ''})"
        finally:
            client.close()
    finally:
        cluster.close()
