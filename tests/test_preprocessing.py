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


# -- normalisation and checks, in NumPy: the same numbers as in torch --------------------------


def _torch_reference(norm: preprocessing.Normalization, x: torch.Tensor) -> torch.Tensor:
    if norm.spec != "none":
        x = x.sub(norm.offset).mul_(1.0 / norm.scale)
        if norm.clip:
            x.clamp_(0.0, 1.0)
    if norm.zero_nonfinite:
        x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x


@pytest.mark.parametrize("spec", ["none", "minmax", "zscore", "window:40,400"])
@pytest.mark.parametrize("zero_nonfinite", [False, True])
def test_normalisation_matches_torch(spec, zero_nonfinite):
    x = torch.randn(5, 16, 12, 2, generator=torch.Generator().manual_seed(3)) * 500
    x[1, 2, 3, 0], x[2, 0, 0, 1], x[3, 5, 5, 0] = float("nan"), float("inf"), -float("inf")
    norm = preprocessing.fit(spec, x, zero_nonfinite=zero_nonfinite)
    ours = norm(x)
    if spec == "none" and not zero_nonfinite:
        assert ours is x
    else:
        assert ours.dtype == torch.float32 and ours.is_contiguous() and ours.data_ptr() != x.data_ptr()
    assert torch.equal(torch.nan_to_num(ours, nan=-7.0), torch.nan_to_num(_torch_reference(norm, x.clone()), nan=-7.0))
    assert torch.isfinite(x[0]).all(), "the input is left alone"


def test_nonfinite_slices_matches_a_plain_scan():
    x = torch.randn(40, 8, 9, 1, generator=torch.Generator().manual_seed(4))
    x[3, 1, 1, 0], x[17, 0, 0, 0], x[39, 7, 8, 0] = float("nan"), float("inf"), -float("inf")
    x[20] = 3e38  # finite, but its sum overflows
    plain = [d for d in range(40) if not torch.isfinite(x[d]).all()]
    assert preprocessing.nonfinite_slices(x).tolist() == plain == [3, 17, 39]
    assert preprocessing.nonfinite_slices(x[:0]).tolist() == []
