"""The IterMask² human–AI oracle on a constructed case whose iterations are known in advance, and the package's
own per-image Dice against the benchmark's."""

from __future__ import annotations

import pytest
import torch

import benchmark.metrics
from datasets.slices import SliceSet
from methods import MethodContext, create_method
from methods.itermask2 import IterMask2
from methods.itermask2.oracle import OracleConfig, dice_per_image, human_ai_oracle

SIZE = 16
STEP = 2.0**-10  # exactly representable thresholds: no rounding surprises at the boundaries


class _Fixed(torch.nn.Module):
    """Stub network: the same reconstruction for every input (x = 0, so its square is the error)."""

    def __init__(self, reconstruction: torch.Tensor) -> None:
        super().__init__()
        self.reconstruction = reconstruction
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.reconstruction.expand(inputs.shape[0], 1, SIZE, SIZE) + 0 * self.dummy


def _case() -> tuple[IterMask2, SliceSet]:
    """One 16x16 slice, x = 0, whole image is brain, lesion = the 4x4 top-left block (16 px).

    f1 error: lesion 10, 100 normal pixels 0.5, the other 140 normal pixels 5 STEP. Starting from the
    top 116/256 = lesion + the 100, the first-step threshold is 5 STEP. f2 error: lesion 10, normal 7.5 STEP.
    Masked steps 1-3 remove nothing (threshold 5, 6, 7 STEP < 7.5: each raises it by STEP); step 4 at
    8 STEP unmasks every normal pixel: mask = label, Dice 1. Then the lesion never shrinks, the threshold
    climbs by STEP per step and reaches tau_max = 19.5 STEP after step 16.
    """
    lesion = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    lesion[:4, :4] = True
    first = torch.full((SIZE, SIZE), 5 * STEP)
    first.view(-1)[torch.nonzero(~lesion.view(-1)).flatten()[:100]] = 0.5
    first[lesion] = 10.0
    second = torch.where(lesion, 10.0, 7.5 * STEP)
    method = create_method(
        "itermask2",
        MethodContext("flair", SIZE, torch.device("cpu"), 0),
        net={"base_channels": 4, "channel_mult": [1], "num_res_blocks": 1},
    )
    assert isinstance(method, IterMask2)
    method.f1 = _Fixed(first.sqrt()[None, None])
    method.f2 = _Fixed(second.sqrt()[None, None])
    test = SliceSet(
        images=torch.zeros(1, 1, SIZE, SIZE),
        brain=torch.ones(1, SIZE, SIZE),
        labels=lesion[None],
        modalities=("flair",),
        subjects=("s0",),
        slice_index=(80,),
    )
    return method, test


def test_oracle_finds_the_iteration_whose_mask_is_the_lesion() -> None:
    method, test = _case()
    config = OracleConfig(start_fractions=(116 / 256, 0.9), tau_step=STEP, tau_max=19.5 * STEP)
    result = human_ai_oracle(method.refinement_model(), test, dice_per_image, config=config)
    assert result.dice.tolist() == [1.0] and result.mean_dice == 1.0
    assert torch.equal(result.masks[0], test.labels[0])
    assert result.start_fraction.tolist() == [116 / 256] and result.iteration.tolist() == [4]
    # 1 (f1) + 16 masked steps per start: the 0.9 start masks 230 px, all normal ones at 7.5 STEP or
    # 0.5 error, so it follows the same threshold path
    assert result.nfe.tolist() == [1 + 16 + 16] and result.capped.tolist() == [0]
    assert "oracle" in result.label


def test_oracle_cap_is_counted_and_limits_work() -> None:
    method, test = _case()
    config = OracleConfig(start_fractions=(116 / 256,), tau_step=STEP, tau_max=19.5 * STEP, max_iterations=3)
    result = human_ai_oracle(method.refinement_model(), test, dice_per_image, config=config)
    # stopped before step 4: the best mask is still lesion + 100 normal pixels (Dice 32 / 132)
    assert result.dice.tolist() == [pytest.approx(32 / 132)]
    assert result.nfe.tolist() == [4] and result.capped.tolist() == [1]


def test_oracle_needs_the_masked_model() -> None:
    spat = create_method("itermask2", MethodContext("flair", SIZE, torch.device("cpu"), 0), layout="-spat")
    assert isinstance(spat, IterMask2)
    with pytest.raises(ValueError, match="needs the masked model"):
        human_ai_oracle(spat.refinement_model(), _case()[1], dice_per_image)


def test_oracle_in_tau_units_equals_the_absolute_search() -> None:
    """units="tau": tau_step / tau_max are multiples of the calibrated τ (here τ = 4 STEP), so the
    search of the constructed case is the same as with the absolute values 4x smaller."""
    method, test = _case()
    method.tau = 4 * STEP
    config = OracleConfig(start_fractions=(116 / 256,), tau_step=0.25, tau_max=19.5 / 4, units="tau")
    result = human_ai_oracle(method.refinement_model(), test, dice_per_image, config=config)
    assert result.dice.tolist() == [1.0] and result.iteration.tolist() == [4]
    assert result.nfe.tolist() == [1 + 16]
    method.tau = None
    with pytest.raises(RuntimeError, match="calibrated"):
        human_ai_oracle(method.refinement_model(), test, dice_per_image, config=config)


def test_oracle_takes_its_dice_function_as_an_argument() -> None:
    """The search scores with the function it is given: a Dice that is 0 everywhere keeps the first mask."""
    method, test = _case()
    config = OracleConfig(start_fractions=(116 / 256,), tau_step=STEP, tau_max=19.5 * STEP)
    calls = []

    def zero(pred: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
        calls.append(pred.shape[0])
        return torch.zeros(pred.shape[0], dtype=torch.float64)

    result = human_ai_oracle(method.refinement_model(), test, zero, config=config)
    assert result.dice.tolist() == [0.0] and result.iteration.tolist() == [0] and len(calls) == 1 + 16


def test_package_dice_equals_the_benchmark_dice() -> None:
    """Hand counts (both empty -> 1, one empty -> 0, outside the brain ignored) and random masks, soft brains."""
    pred = torch.zeros(4, 4, 4, dtype=torch.bool)
    labels = torch.zeros(4, 4, 4)
    brain = torch.ones(4, 4, 4)
    pred[1, 0, :2] = True  # image 1: prediction only -> 0
    labels[2, 0, :2] = 1.0  # image 2: label only -> 0
    pred[3, 0, :3] = True  # image 3: TP 2, FP 1 (one more outside the brain), FN 1 -> 4 / 6
    labels[3, 0, 1:4] = 1.0
    pred[3, 3, 3] = True
    brain[3, 3, 3] = 0.0
    assert dice_per_image(pred, labels, brain).tolist() == [1.0, 0.0, 0.0, pytest.approx(4 / 6)]
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(20, 16, 16, generator=g) > 0.7
    labels = (torch.rand(20, 16, 16, generator=g) > 0.8).float()
    brain = torch.rand(20, 16, 16, generator=g).clamp_min(0.3) * (torch.rand(20, 16, 16, generator=g) > 0.2)
    labels[:3] = 0.0
    pred[:2] = False  # two both-empty images
    ours = dice_per_image(pred, labels, brain)
    theirs = benchmark.metrics.dice_per_image(pred, labels, brain)
    assert ours.dtype == theirs.dtype == torch.float64 and torch.equal(ours, theirs)
    assert ours[:2].tolist() == [1.0, 1.0]
