"""The CPU hot-path changes keep the numbers (issue 17 §1), and the floor benchmark's accounting is right.

Plain tests (not micro-benchmarks): they run in the default suite, each in well under a second.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from benchmark.bench_floor import (
    convolution_split_us,
    inference_bound,
    is_convolution,
    train_step_flops,
    train_step_kernel_ms,
)
from benchmark.config import MethodSpec
from datasets.slices import SliceSet, Splits
from methods.base import AnomalyMethod, MethodContext, MethodOutput, TrainBudget, TrainLog
from methods.dae import roll_per_image
from methods.measure import Timer
from methods.training import _prefer_fast_update, _state_copy, train_networks
from tests.toy_data import toy_slices


def test_roll_per_image_equals_torch_roll_of_each_image() -> None:
    images = torch.randn(4, 5, 7, generator=torch.Generator().manual_seed(0))
    dy, dx = torch.tensor([0, 1, 4, 3]), torch.tensor([6, 0, 2, 5])
    expected = torch.stack([torch.roll(m, (int(a), int(b)), dims=(-2, -1)) for m, a, b in zip(images, dy, dx)])
    assert torch.equal(roll_per_image(images, dy, dx), expected)


def test_state_copy_does_not_follow_later_updates() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    copy = _state_copy(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net(torch.randn(4, 3))  # moves the BatchNorm running statistics
    assert set(copy) == set(before)
    assert all(torch.equal(copy[k], before[k]) for k in before)
    assert not torch.equal(copy["0.weight"], net[0].weight)


def test_prefer_fast_update_only_where_the_optimiser_left_it_open() -> None:
    params = [nn.Parameter(torch.zeros(2))]
    open_choice = torch.optim.AdamW(params)
    explicit_loop = torch.optim.Adam(params, foreach=False)
    explicit_foreach = torch.optim.Adam(params, foreach=True)
    no_fused_kernel = torch.optim.RMSprop(params)
    integer = torch.optim.Adam([nn.Parameter(torch.zeros(2, dtype=torch.int32), requires_grad=False)])
    for optimizer in (open_choice, explicit_loop, explicit_foreach, no_fused_kernel, integer):
        _prefer_fast_update(optimizer)
    assert open_choice.param_groups[0]["fused"] is True and open_choice.param_groups[0]["foreach"] is None
    assert explicit_loop.param_groups[0]["foreach"] is False and not explicit_loop.param_groups[0]["fused"]
    assert explicit_foreach.param_groups[0]["foreach"] is True and not explicit_foreach.param_groups[0]["fused"]
    assert no_fused_kernel.param_groups[0]["foreach"] is True
    assert integer.param_groups[0]["foreach"] is True and not integer.param_groups[0]["fused"]  # no integer kernel


def _tiny_fit(foreach: bool | None) -> list[dict[str, float]]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 1, 3, padding=1))
    slices = toy_slices(12, size=16)
    train, val = slices.subset(slice(0, 8)), slices.subset(slice(8, 12))

    def loss(batch: SliceSet, generator: torch.Generator) -> torch.Tensor:
        x = batch.channel("flair")[:, None]
        noisy = x + torch.randn(x.shape, generator=generator)
        return (net(noisy) - x).square().mean()

    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2, foreach=foreach)
    budget = TrainBudget(steps=6, batch_size=4, lr=1e-2, val_every=2)
    return train_networks([net], loss, train, val, budget, optimizer, seed=3, progress=False).history


def test_fused_update_gives_the_losses_of_the_per_parameter_loop() -> None:
    """Same seeds, same batches: the fused AdamW (the default, ``foreach=None``) differs from the loop only by
    float rounding."""
    loop, default = _tiny_fit(foreach=False), _tiny_fit(foreach=None)
    assert [r["step"] for r in loop] == [2, 4, 6]
    for a, b in zip(loop, default):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)


class _TwoCallMethod(AnomalyMethod):
    """predict: the network on the whole batch, then on its first half (1.5 calls per slice)."""

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.net = nn.Conv2d(1, 1, 3, padding=1)

    def networks(self) -> list[nn.Module]:
        return [self.net]

    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        return TrainLog()

    @torch.inference_mode()
    def predict(self, batch: SliceSet) -> MethodOutput:
        x = batch.channel("flair")[:, None]
        y = self.net(x)
        self.net(x[: len(batch) // 2])
        return MethodOutput(y[:, 0], y[:, 0], torch.full((len(batch),), 2))

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def test_inference_bound_costs_each_call_at_the_full_batch_rate() -> None:
    method = _TwoCallMethod(MethodContext("flair", 16, torch.device("cpu"), 0))
    batch = toy_slices(8, size=16)
    bound_ms, calls, forward_ms = inference_bound(method, batch, Timer(torch.device("cpu")), repeats=2)
    assert calls == 1.5
    assert set(forward_ms) == {0}
    assert bound_ms == pytest.approx(forward_ms[0] * 1.5 / 8)
    assert method.net._forward_pre_hooks == {}  # the recorder's hooks are gone


class _ConvThenLinear(AnomalyMethod):
    """fit: ``budget.steps`` SGD steps of a 1 -> 1 channel 3x3 convolution followed by a ``[H*W, 1]`` matmul."""

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.head = nn.Parameter(torch.zeros(context.image_size**2, 1))

    def networks(self) -> list[nn.Module]:
        return [self.conv]

    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        optimizer = torch.optim.SGD([*self.conv.parameters(), self.head], lr=1e-3)
        for _ in range(budget.steps):
            x = train.subset(slice(0, budget.batch_size)).channel("flair")[:, None]
            loss = (self.conv(x).flatten(1) @ self.head).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return TrainLog(steps=budget.steps)

    def predict(self, batch: SliceSet) -> MethodOutput:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def test_train_step_flops_split_the_convolutions_from_the_rest_as_counted_by_hand() -> None:
    b, side = 4, 16
    slices = toy_slices(8, size=side)
    splits = Splits(train=slices, val=slices, test=slices, name="toy", preprocess_hash="")
    spec = MethodSpec("toy", "toy", {}, TrainBudget(steps=1, batch_size=b, lr=1e-3, val_every=1))
    make = lambda: _ConvThenLinear(MethodContext("flair", side, torch.device("cpu"), 0))  # noqa: E731
    flops = train_step_flops(make, spec, splits, slices, k=2)
    pixels = b * side * side
    conv = 2 * pixels * 9 * 2  # forward + weight gradient (the input needs none): 9 multiply-adds per pixel each
    matmul = 2 * pixels * 3  # forward, gradient of the head, gradient of the convolution's output
    assert (flops.convolution, flops.total) == (conv, conv + matmul)
    conv_ms, other_ms = train_step_kernel_ms(make, spec, splits, slices, k=2)  # differences: noise can make them < 0
    assert math.isfinite(conv_ms) and math.isfinite(other_ms)


def test_convolution_split_puts_the_convolution_kernels_on_their_side() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(2, 4, 16, 16)
    with profile(activities=[ProfilerActivity.CPU]) as only_conv:
        conv(x)
    with profile(activities=[ProfilerActivity.CPU]) as only_other:
        (x.square() + 1.0).sum()
    with profile(activities=[ProfilerActivity.CPU]) as both:
        conv(x).square().sum().backward()
    assert convolution_split_us(only_conv)[0] > 0
    assert convolution_split_us(only_other)[0] == 0 and convolution_split_us(only_other)[1] > 0
    conv_us, other_us = convolution_split_us(both)
    assert conv_us > 0 and other_us > 0
    assert conv_us + other_us == pytest.approx(sum(e.self_cpu_time_total for e in both.key_averages()))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("aten::mkldnn_convolution", True), ("aten.convolution_backward", True), ("aten::_slow_conv2d_forward", True),
     ("aten::mm", False), ("aten::native_batch_norm", False), ("Optimizer.step#AdamW.step", False)],
)  # fmt: skip
def test_is_convolution(name: str, expected: bool) -> None:
    assert is_convolution(name) is expected
