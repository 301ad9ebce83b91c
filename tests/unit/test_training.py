"""The shared training loop under bf16 autocast: the runner fits a bf16 cell inside one ``torch.autocast`` region,
so the loop must make each step's forward see the weights the previous step wrote (autocast otherwise reuses
the bf16 copies it cast at the first step)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from datasets.slices import SliceSet
from methods.base import TrainBudget
from methods.training import train_networks
from tests.toy_data import toy_slices


def _fit_reconstruction(bf16: bool, steps: int) -> tuple[float, float]:
    """(loss before training, loss after ``steps``) of a small conv net reconstructing toy slices, the whole fit
    inside one autocast region when ``bf16``, as the runner does."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.SiLU(), nn.Conv2d(16, 1, 3, padding=1))

    def loss(batch: SliceSet, _: torch.Generator) -> torch.Tensor:
        x = batch.images[:, :1]
        return (net(x).float() - x).abs().mean()

    train, val = toy_slices(16, size=16), toy_slices(4, size=16, seed=3)
    with torch.no_grad():
        before = loss(train, torch.Generator()).item()
    budget = TrainBudget(steps=steps, batch_size=8, lr=3e-3, val_every=steps)
    optimizer = torch.optim.Adam(net.parameters(), lr=budget.lr)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        log = train_networks([net], loss, train, val, budget, optimizer, seed=0, progress=False)
    return before, log.final_train_loss


def test_training_inside_one_bf16_autocast_region_learns_as_fp32_does() -> None:
    start, fp32 = _fit_reconstruction(bf16=False, steps=60)
    start_bf16, bf16 = _fit_reconstruction(bf16=True, steps=60)
    assert start_bf16 == pytest.approx(start, rel=0.05)  # same initial net, bf16 rounding apart
    assert fp32 < 0.3 * start  # the task is learnable in 60 steps
    # stale bf16 weights (every forward at the initial weights) would leave the loss near ``start``
    assert bf16 < 0.3 * start and bf16 == pytest.approx(fp32, rel=0.5)
