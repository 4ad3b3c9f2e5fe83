"""What a cohort run is asked to do, as one typed, immutable value.

``CohortRequest`` is all that ``predict_cohort`` and the modules below it read; the command line
builds it once with ``from_args``, which also refuses the ``predict`` options a cohort cannot
honour.  Other callers (the GUI, scripts) build it directly.  Cheap to import: no Dask, no
TensorFlow.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace

from app.errors import SlicewiseError

# ``predict`` options a cohort cannot honour: its tasks score with the model's own channels and
# output, and write no review files.
_REVIEW_OPTIONS = ("saliency_dir", "labels")
_PER_MODEL_OPTIONS = ("channels", "output", "classes", "slab", "pool")


@dataclass(frozen=True)
class CohortRequest:
    """A cohort to score: the arguments naming its volumes, where the table goes, the model and
    how it sees each volume, and where the Dask workers come from."""

    volumes: tuple[str, ...]  # files, folders and glob patterns, as the user spelled them
    out: str | None  # the table; required (checked by ``predict_cohort``): parts are saved beside it
    strategy: str = "slice"
    model: str | None = None  # a Keras model file; None: the strategy's built-in model
    unsafe_model: bool = False
    normalize: str | None = None  # a spec as given; None: the model's default
    batch_size: int = 32
    axis: str = "acquired"
    volume_index: int = 0
    skip_damaged: bool = False  # a DICOM series loads without its damaged files
    workers: int | None = None  # a local Dask cluster of this many workers (None: chosen by size)
    scheduler: str | None = None  # the address of an existing Dask cluster instead
    progress: bool | None = None  # the progress bar; None: on a terminal
    mask_dir: str | None = None  # a segmentation cohort's masks go here (they are kept in the parts folder anyway)
    uncertainty: str | None = None  # an uncertainty method's one-line spec (`app.uncertainty.parse`); an ensemble's members as absolute paths

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> CohortRequest:
        """The request of a parsed ``slicewise predict``; a ``SlicewiseError`` names the options
        given that a cohort cannot honour.  An ensemble's first member is the request's model."""
        from app.uncertainty import from_options

        uncertainty = from_options(args.mc_dropout, args.tta, args.ensemble, args.mc_seed, model=args.model)
        if any(getattr(args, name, None) for name in _REVIEW_OPTIONS):
            raise SlicewiseError("--saliency-dir and --labels review one volume (or a few); cohorts are scored without them")
        given = [f"--{name}" for name in _PER_MODEL_OPTIONS if getattr(args, name, None)]
        strategies = list(dict.fromkeys(getattr(args, "strategies", None) or [args.strategy]))
        if len(strategies) > 1 or given:
            raise SlicewiseError(f"cohorts are scored with one --strategy and the model's own channels and output; drop {' '.join(given) or 'the extra --strategy'}")
        if uncertainty is not None and strategies[0] == "embedding":
            raise SlicewiseError(f"{uncertainty.title()}: the embedding strategy's two-stage plan is not supported; use the slice or temporal strategy")
        return cls(
            volumes=tuple(args.volumes),
            out=args.out,
            strategy=strategies[0],
            model=uncertainty.paths[0] if uncertainty is not None and uncertainty.method == "ensemble" else args.model,
            unsafe_model=bool(args.unsafe_model),
            normalize=args.normalize,
            batch_size=args.batch_size,
            axis=args.axis,
            volume_index=args.volume_index,
            skip_damaged=bool(getattr(args, "skip_damaged", False)),
            workers=args.workers,
            scheduler=args.scheduler,
            progress=args.progress,
            mask_dir=getattr(args, "mask_dir", None),
            uncertainty=None if uncertainty is None else _absolute(uncertainty).spec(),
        )


def _absolute(uncertainty):
    """An ensemble's members named by absolute paths, as the workers (other processes, other
    working folders) must find them."""
    if uncertainty.method != "ensemble":
        return uncertainty
    return replace(uncertainty, paths=tuple(os.path.abspath(p) for p in uncertainty.paths))
