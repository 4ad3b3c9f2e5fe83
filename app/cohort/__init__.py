"""Cohorts: many volumes (folders, glob patterns) scored on a Dask cluster, resumably.

``is_cohort`` and ``CohortRequest`` are cheap (no Dask, no TensorFlow).  ``predict_cohort`` takes
a ``CohortRequest``, plans on the client, runs one task per volume on Dask workers
(``app.cohort.worker``: the model is loaded once per worker), saves each result as it arrives
(``app.cohort.store``) and assembles the table and sidecar (``app.cohort.report``).
"""

from __future__ import annotations

from app.cohort.inputs import is_cohort
from app.cohort.request import CohortRequest


def predict_cohort(request: CohortRequest, **hooks) -> int:
    """``slicewise predict`` for a cohort; see ``app.cohort.run.predict_cohort``."""
    from app.cohort.run import predict_cohort as run

    return run(request, **hooks)


__all__ = ["CohortRequest", "is_cohort", "predict_cohort"]
