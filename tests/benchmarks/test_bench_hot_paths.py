"""pytest-benchmark micro-benchmarks of the hot pieces (skipped in the default run by ``--benchmark-skip``):

    .venv/bin/python -m pytest tests/benchmarks --benchmark-only

Sizes are the default configuration's (64 px, small UNet, IterMask²'s training batch of 8 and the runner's
eval batch of 32, the default synthetic test set of 200 slices).
"""

from __future__ import annotations

import pytest
import torch

from benchmark.metrics import compute_metrics
from methods.itermask2.frequency import high_pass, scaled_radius
from methods.itermask2.inference import RefinementConfig, iterative_refinement
from methods.itermask2.masks import MaskConfig, random_training_masks
from methods.nets.unet import UNet, UNetConfig
from tests.toy_data import toy_slices

pytestmark = pytest.mark.benchmark

SIZE, EVAL_BATCH, TRAIN_BATCH, TEST_SLICES = 64, 32, 8, 200


@pytest.fixture(scope="module")
def slices():
    return toy_slices(EVAL_BATCH, size=SIZE, lesions=True)


def test_bench_high_pass(benchmark, slices) -> None:
    x = slices.images[:, 0]
    out = benchmark(high_pass, x, scaled_radius(15.0, SIZE))
    assert out.shape == x.shape


def test_bench_training_masks(benchmark, slices) -> None:
    brain = slices.brain[:TRAIN_BATCH]
    generator = torch.Generator().manual_seed(0)
    weights = benchmark(random_training_masks, brain, generator, MaskConfig())
    assert weights.shape == brain.shape and float(weights.max()) <= 1.0


def test_bench_one_refinement_step(benchmark, slices) -> None:
    """One f1 step plus one f2 step of the small UNet on an eval batch (max_iterations=2)."""
    f1, f2 = UNet(1, 1, UNetConfig.preset("small")).eval(), UNet(2, 1, UNetConfig.preset("small")).eval()
    x, brain = slices.images[:, 0], slices.brain
    x_s = high_pass(x, scaled_radius(15.0, SIZE))
    noise = lambda idx: torch.zeros(len(idx), SIZE, SIZE)  # noqa: E731
    config = RefinementConfig(max_iterations=2)

    @torch.inference_mode()
    def step():
        first = f1(x_s[:, None])[:, 0]
        masked = lambda x_in, s: f2(torch.stack([x_in, s], 1))[:, 0]  # noqa: E731
        return iterative_refinement(x, x_s, brain, first, masked, 0.1, noise, config)

    result = benchmark(step)
    assert (result.nfe <= 2).all()


def test_bench_metrics_full_test_set(benchmark) -> None:
    test = toy_slices(TEST_SLICES, size=SIZE, lesions=True)
    maps = torch.rand(TEST_SLICES, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    pred = maps > 0.9
    result = benchmark.pedantic(
        compute_metrics, args=(pred, maps, test.labels, test.brain), kwargs={"n_boot": 200}, rounds=2, iterations=1
    )
    assert 0.0 <= result.values["dice"] <= 1.0
