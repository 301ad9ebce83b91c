"""Tests of benchmark.thresholds: known best thresholds, grid-edge warnings, percentile thresholds
against numpy, oracle ordering, errors and the vectorised Dice curve against brute force."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch

from benchmark import metrics as M
from benchmark import thresholds as T


def _separable_case(n: int = 5, size: int = 16, lo: float = -3.0, hi: float = 5.0, seed: int = 0):
    """Healthy brain scores in [0, 0.295], lesion scores in [0.42, 1] (normalised), mapped to [lo, hi].

    Every normalised threshold in [0.295, 0.42) separates perfectly; the first such grid point of
    0.00, 0.01, ... is 0.30.
    """
    g = torch.Generator().manual_seed(seed)
    brain = torch.zeros(n, size, size)
    brain[:, 2:-2, 2:-2] = 1.0
    brain[:, 1, 2:-2] = 0.4  # soft edge, still brain
    labels = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        labels[i, 4 : 6 + i, 5:9] = True
    norm = torch.rand(n, size, size, generator=g) * 0.295
    norm = torch.where(labels, 0.42 + torch.rand(n, size, size, generator=g) * 0.58, norm)
    norm[0, 8, 8] = 0.0  # the brain minimum (healthy)
    norm[0, 4, 5] = 1.0  # the brain maximum (lesion)
    norm[brain == 0] = 7.0  # off-brain values must not matter
    maps = lo + norm * (hi - lo)
    return maps.float(), labels, brain


def test_oracle_global_finds_known_threshold_in_raw_units():
    maps, labels, brain = _separable_case()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no grid-edge warning here
        res = T.choose_threshold("oracle_global", maps, labels, brain, grid=T.make_grid())
    assert res.protocol == "oracle_global" and res.is_oracle
    assert (res.norm_min, res.norm_max) == pytest.approx((-3.0, 5.0), abs=1e-5)
    assert res.threshold_norm == pytest.approx(0.30)
    assert res.threshold == pytest.approx(-3.0 + 0.30 * 8.0, abs=1e-5)
    assert res.objective == pytest.approx(1.0)
    assert not res.at_grid_edge
    pred = T.binarise(maps, brain, res)
    assert torch.equal(pred, labels)
    assert M.dice_per_image(pred, labels, brain).mean().item() == pytest.approx(res.objective)


def test_oracle_global_warns_on_grid_edge():
    maps, labels, brain = _separable_case()
    grid = T.make_grid(0.5, 0.9, 0.1)  # every threshold cuts into the lesions: best is the lowest
    with pytest.warns(T.GridEdgeWarning, match="edge"):
        res = T.choose_threshold("oracle_global", maps, labels, brain, grid=grid)
    assert res.at_grid_edge and res.threshold_norm == pytest.approx(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = T.oracle_global(maps, labels, brain, grid=grid, warn_edge=False)
    assert quiet.at_grid_edge


def test_grids():
    assert T.make_grid().numel() == 101 and T.make_grid()[30].item() == pytest.approx(0.30)
    # default: the official fine grid below 0.01, then steps of 0.005 up to 1
    assert T.DEFAULT_GRID.numel() == 100 + 199 and T.DEFAULT_GRID[-1].item() == 1.0
    assert torch.equal(T.DEFAULT_GRID[:100], T.OFFICIAL_GRID)
    assert T.DEFAULT_GRID[100].item() == pytest.approx(0.01) and T.DEFAULT_GRID[101].item() == pytest.approx(0.015)
    assert T.OFFICIAL_GRID.numel() == 100 and T.OFFICIAL_GRID[-1].item() == pytest.approx(0.0099)
    with pytest.raises(ValueError, match="increasing"):
        T.oracle_global(*_separable_case(), grid=[0.5, 0.2])


@pytest.mark.parametrize("seed", [0, 1])
def test_dice_curve_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, 12, (4, 12, 12), generator=g).float() / 11  # ties
    labels = torch.rand(4, 12, 12, generator=g) < 0.25
    labels[3] = False  # an image without lesion
    brain = torch.rand(4, 12, 12, generator=g)
    brain[brain < 0.3] = 0.0
    thresholds = torch.tensor([-1.0, 0.0, 3 / 11, 0.5, 10 / 11, 1.0, 2.0])
    curve = T.dice_curve(maps, labels, brain, thresholds, chunk=3)
    for j, t in enumerate(thresholds):
        expected = M.dice_per_image(maps > t, labels, brain)
        assert torch.allclose(curve[:, j], expected), float(t)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_curve_equals_per_threshold_dice_exactly(seed):
    """The histogram curve equals Dice of each binarised mask bit for bit: unsorted and repeated thresholds,
    thresholds equal to scores, an empty label, an image without brain pixel, NaN outside the brain."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, 20, (7, 9, 11), generator=g).float() / 19
    labels = torch.rand(7, 9, 11, generator=g) < 0.3
    labels[2] = False  # healthy image
    brain = (torch.rand(7, 9, 11, generator=g) > 0.25).float() * 0.6
    brain[4] = 0.0  # no brain pixel: nothing predicted, its labels are FN
    brain[0, 0, 0] = 0.0
    maps[0, 0, 0] = math.nan  # outside the brain: ignored
    thresholds = torch.tensor([0.5, -1.0, 3 / 19, 0.5, 1.0, 7 / 19, 2.0, 0.0])
    curve = T.dice_curve(maps, labels, brain, thresholds, chunk=2)
    for j, t in enumerate(thresholds):
        expected = M.dice_per_image(torch.nan_to_num(maps) > t, labels, brain)
        assert torch.equal(curve[:, j], expected), float(t)
    assert torch.equal(curve[2, thresholds >= 1.0], torch.ones(2, dtype=torch.float64))  # both empty -> 1


def test_val_fpr_equals_numpy_percentile():
    g = torch.Generator().manual_seed(2)
    val = torch.randn(6, 20, 20, generator=g, dtype=torch.float64)
    val_brain = (torch.rand(6, 20, 20, generator=g) > 0.4).double() * 0.8
    region = (val_brain > 0).numpy()
    for q in (99.0, 95.0, 50.0, 0.0, 100.0, 99.9):
        res = T.choose_threshold("val_fpr", val_maps=val, val_brain=val_brain, q=q)
        assert res.threshold == pytest.approx(np.percentile(val.numpy()[region], q), rel=1e-12, abs=1e-12)
        assert not res.is_oracle and res.q == q
    res = T.val_fpr(val, val_brain, q=95.0)
    assert res.achieved_fpr == pytest.approx(0.05, abs=2 / region.sum())
    # float32 maps: the threshold is the percentile rounded to float32
    res32 = T.val_fpr(val.float(), val_brain, q=99.0)
    assert res32.threshold == pytest.approx(np.percentile(val.float().numpy()[region], 99.0), rel=1e-6)
    # labelled lesion pixels in the val set are left out
    labels = torch.zeros(6, 20, 20, dtype=torch.bool)
    labels[:, :10] = True
    keep = region & ~labels.numpy()
    res_l = T.val_fpr(val, val_brain, q=90.0, val_labels=labels)
    assert res_l.threshold == pytest.approx(np.percentile(val.numpy()[keep], 90.0))


def test_val_fpr_never_reads_test_data():
    maps, _, brain = _separable_case()
    res = T.choose_threshold("val_fpr", None, None, None, val_maps=maps, val_brain=brain)
    assert not math.isnan(res.threshold)
    pred = T.binarise(maps, brain, res)
    assert pred.sum().item() == pytest.approx(0.01 * (brain > 0).sum().item(), abs=2)


def test_val_labelled_equals_grid_search_on_val_and_ignores_test():
    maps, labels, brain = _separable_case(lo=0.0, hi=1.0)
    res = T.choose_threshold("val_labelled", None, None, None, val_maps=maps, val_brain=brain, val_labels=labels)
    ref = T.oracle_global(maps, labels, brain)
    assert res.threshold == ref.threshold and res.objective == ref.objective
    assert res.protocol == "val_labelled" and not res.is_oracle
    # applied to a differently scaled test set the raw threshold stays in raw units
    test_maps, test_labels, test_brain = _separable_case(lo=0.0, hi=1.0, seed=9)
    pred = T.binarise(test_maps, test_brain, res)
    assert torch.equal(pred, test_labels)


def test_oracle_per_image_at_least_oracle_global():
    g = torch.Generator().manual_seed(4)
    n = 8
    labels = torch.zeros(n, 24, 24, dtype=torch.bool)
    for i in range(n):
        labels[i, 5 : 8 + i, 6 : 10 + i] = True
    brain = torch.ones(n, 24, 24)
    # per-image contrast differs, so one global threshold cannot be best for all
    maps = torch.rand(n, 24, 24, generator=g) + labels * torch.linspace(0.2, 1.5, n)[:, None, None]
    glob = T.choose_threshold("oracle_global", maps, labels, brain)
    per = T.choose_threshold("oracle_per_image", maps, labels, brain)
    assert per.is_oracle and per.per_image is not None and per.per_image.shape == (n,)
    assert per.objective >= glob.objective
    assert (per.per_image_score >= T.dice_curve(maps, labels, brain, [glob.threshold])[:, 0] - 1e-12).all()
    pred = T.binarise(maps, brain, per)
    assert torch.allclose(M.dice_per_image(pred, labels, brain), per.per_image_score)
    assert per.record()["threshold"] == pytest.approx(float(per.per_image.median()))


def test_errors_are_clear():
    maps, labels, brain = _separable_case()
    with pytest.raises(ValueError, match="oracle_global, val_fpr, val_labelled, oracle_per_image"):
        T.choose_threshold("best", maps, labels, brain)
    with pytest.raises(ValueError, match="val_maps"):
        T.choose_threshold("val_fpr", maps, labels, brain)
    with pytest.raises(ValueError, match="val_labels"):
        T.choose_threshold("val_labelled", maps, labels, brain, val_maps=maps, val_brain=brain)
    with pytest.raises(ValueError, match="test_labels"):
        T.choose_threshold("oracle_global", maps, None, brain)
    healthy = torch.zeros_like(labels)
    with pytest.raises(ValueError, match="no lesion pixel"):
        T.choose_threshold("val_labelled", val_maps=maps, val_brain=brain, val_labels=healthy)
    bad = maps.clone()
    bad[0, 8, 8] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        T.choose_threshold("oracle_global", bad, labels, brain)
    per = T.oracle_per_image(maps, labels, brain)
    with pytest.raises(ValueError, match="per-image thresholds"):
        T.binarise(maps[:2], brain[:2], per)


def test_binarise_is_strict_and_brain_restricted():
    maps = torch.tensor([[[0.0, 0.5], [0.7, 1.0]]])
    brain = torch.tensor([[[1.0, 1.0], [0.0, 0.3]]])
    res = T.ThresholdResult("val_fpr", threshold=0.5, threshold_norm=0.5, norm_min=0, norm_max=1, is_oracle=False)
    assert T.binarise(maps, brain, res).tolist() == [[[False, False], [False, True]]]


def test_grid_search_is_fast_for_a_test_set():
    g = torch.Generator().manual_seed(0)
    n = 100
    maps = torch.rand(n, 128, 128, generator=g) ** 3
    labels = torch.zeros(n, 128, 128, dtype=torch.bool)
    labels[:, 50:70, 50:75] = True
    maps = maps + 0.3 * labels
    brain = torch.zeros(n, 128, 128)
    brain[:, 10:118, 10:118] = 1.0
    start = time.perf_counter()
    T.choose_threshold("oracle_global", maps, labels, brain)
    T.choose_threshold("oracle_per_image", maps, labels, brain)
    assert time.perf_counter() - start < 20.0  # ~0.3 s on a 2-core CPU


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_thresholds_on_cuda_match_cpu():
    maps, labels, brain = _separable_case()
    cpu = T.choose_threshold("oracle_per_image", maps, labels, brain)
    gpu = T.choose_threshold("oracle_per_image", maps.cuda(), labels.cuda(), brain.cuda())
    assert torch.equal(cpu.per_image, gpu.per_image)
    glob = T.choose_threshold("oracle_global", maps.cuda(), labels.cuda(), brain.cuda())
    assert glob.threshold == T.choose_threshold("oracle_global", maps, labels, brain).threshold
    fpr = T.val_fpr(maps.cuda(), brain.cuda())
    assert fpr.threshold == T.val_fpr(maps, brain).threshold
    assert T.binarise(maps.cuda(), brain.cuda(), glob).is_cuda
