"""A small real cohort for the review tests: three phantom volumes (app.phantom) scored by the
built-in model, written as a cohort's results through app.export."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib

from app.phantom import make_phantom

SEEDS = (1, 2, 3)


def write_cohort(folder: Path, engine, depth: int = 12, size: int = 64) -> Path:
    """``folder/case{seed}.nii.gz`` for each seed and ``folder/results.csv`` (+ ``.json``)
    holding their slice strategy's scores; returns the CSV."""
    from app import export
    from app.io import load_volume
    from app.strategies import get_strategy

    folder.mkdir(parents=True, exist_ok=True)
    strategy = get_strategy("slice")
    model = engine.builtin(strategy)
    results = []
    for seed in SEEDS:
        path = folder / f"case{seed}.nii.gz"
        nib.save(make_phantom(seed=seed, depth=depth, size=size, lesions=2).image, path)
        volume = load_volume(path)
        results.append((volume, engine.run(volume, strategy, model)))
    out = folder / "results.csv"
    export.write_predictions(out, results)
    return out
