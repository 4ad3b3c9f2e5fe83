"""Built-in demo models were trained on CT phantoms: on a volume that is not CT-like (no
Hounsfield range, e.g. an MR brain) the prediction says its scores mean nothing."""

from __future__ import annotations

from pathlib import Path

import nibabel

from app.inference.engine import BUILTIN_ON_NON_CT
from app.io import load_volume
from app.status import run_finished_text
from app.strategies import STRATEGIES

REPO = Path(__file__).resolve().parents[1]
MRI = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"


def test_builtin_model_on_mr_says_its_scores_are_not_meaningful(engine):
    volume = load_volume(MRI, axis="axial")
    prediction = engine.run(volume, STRATEGIES["slice"])
    assert BUILTIN_ON_NON_CT in prediction.notes

    from app.runs import Run, RunKey

    run = Run(RunKey("slice"), "slice", volume.depth)
    assert BUILTIN_ON_NON_CT in run_finished_text(run, prediction)


def test_builtin_model_on_ct_says_nothing(engine):
    volume = load_volume(REPO / "resources" / "demo" / "phantom.nii.gz", axis="axial")
    assert BUILTIN_ON_NON_CT not in engine.run(volume, STRATEGIES["slice"]).notes
