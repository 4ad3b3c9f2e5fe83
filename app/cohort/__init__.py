"""Cohorts: many volumes (folders, glob patterns) scored on a Dask cluster, resumably.

``is_cohort`` is cheap (no Dask, no TensorFlow).  ``predict_cohort`` plans on the client, runs one
task per volume on Dask workers (``app.cohort.worker``: the model is loaded once per worker),
saves each result as it arrives (``app.cohort.store``) and assembles the table and sidecar.
"""

from __future__ import annotations

from app.cohort.inputs import is_cohort


def predict_cohort(args, **hooks) -> int:
    """``slicewise predict`` for a cohort; see ``app.cohort.run.predict_cohort``."""
    from app.cohort.run import predict_cohort as run

    return run(args, **hooks)


__all__ = ["is_cohort", "predict_cohort"]
