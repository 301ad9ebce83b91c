"""Residual post-processing against scipy references and hand-made cases."""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from methods.postprocess import ResidualScoring, erode, median_filter


@pytest.mark.parametrize("size", [3, 5])
def test_median_filter_matches_scipy(size: int) -> None:
    maps = torch.rand(3, 17, 13, generator=torch.Generator().manual_seed(0))
    ours = median_filter(maps, size).numpy()
    ref = np.stack([ndi.median_filter(m, size=size, mode="reflect") for m in maps.numpy()])
    np.testing.assert_allclose(ours, ref, atol=0)


def test_median_filter_removes_isolated_spike() -> None:
    maps = torch.zeros(1, 9, 9)
    maps[0, 4, 4] = 10.0
    assert median_filter(maps, 5).abs().max() == 0


def test_erode_matches_scipy_disk() -> None:
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[0, 3:17, 2:15] = True
    mask[0, 8, 8] = False  # a hole erodes its neighbourhood too
    radius = 2
    r = np.arange(-radius, radius + 1)
    disk = (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2
    ref = ndi.binary_erosion(mask[0].numpy(), structure=disk, border_value=0)
    assert np.array_equal(erode(mask, radius)[0].numpy(), ref)
    assert torch.equal(erode(mask, 0), mask)


def test_residual_kinds_on_known_values() -> None:
    x = torch.tensor([[[1.0, -1.0], [2.0, 0.0]]])
    rec = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    brain = torch.ones(1, 2, 2)
    assert torch.equal(ResidualScoring("abs")(x, rec, brain), torch.tensor([[[1.0, 1.0], [2.0, 0.0]]]))
    assert torch.equal(ResidualScoring("positive")(x, rec, brain), torch.tensor([[[1.0, 0.0], [2.0, 0.0]]]))
    assert torch.equal(ResidualScoring("squared")(x, rec, brain), torch.tensor([[[1.0, 1.0], [4.0, 0.0]]]))
    with pytest.raises(ValueError, match="unknown residual"):
        ResidualScoring("cubed")(x, rec, brain)  # type: ignore[arg-type]


def test_scoring_zeroes_outside_eroded_brain() -> None:
    x = torch.full((1, 12, 12), 5.0)
    brain = torch.zeros(1, 12, 12)
    brain[0, 2:10, 2:10] = 1.0
    out = ResidualScoring("abs", erosion=1, median=1)(x, torch.zeros_like(x), brain)
    assert out[0, 3:9, 3:9].eq(5.0).all()
    assert out[0, 2].eq(0).all() and out.sum() == 5.0 * 36
