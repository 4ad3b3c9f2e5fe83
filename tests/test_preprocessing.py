"""Intensity normalisation specs."""

from __future__ import annotations

import pytest
import torch

from app import preprocessing
from app.errors import SlicewiseError


def test_specs_parse_and_refuse():
    assert preprocessing.parse_spec(" Window:40,400 ") == "window:40,400"
    for bad in ("window:40", "window:a,b", "window:40,0", "gamma"):
        with pytest.raises(SlicewiseError):
            preprocessing.parse_spec(bad)


def test_modes_on_a_volume_with_nan():
    volume = torch.tensor([[-1000.0, 0.0], [40.0, float("nan")]]).reshape(2, 1, 2, 1)
    minmax = preprocessing.fit("minmax", volume)(volume)
    assert minmax.flatten()[:3].tolist() == pytest.approx([0.0, 1000 / 1040, 1.0])
    z = preprocessing.fit("zscore", volume)(volume).flatten()[:3]
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-6) and float(z.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)
    window = preprocessing.fit("window:40,400", volume)(volume).flatten()[:3]
    assert window.tolist() == pytest.approx([0.0, 160 / 400, 0.5])
    assert preprocessing.fit("none", volume)(volume) is volume
