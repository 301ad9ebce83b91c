"""AutoDDPM: NFE 451, the RePaint merge, the stage-1 score and mask, the validation-chosen threshold,
the composition of the final map, the perceptual maps and reuse of a DDPM state."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from methods import MethodContext, create_method
from methods.autoddpm import Stage1, dilate
from methods.diffusion import DiffusionSampler, DiffusionSchedule, NoiseSource
from methods.perceptual import ssim_dissimilarity
from methods.postprocess import binary_brain
from tests.toy_data import toy_slices
from tests.unit.test_ddpm import CountingStub, alpha_bar

CPU = torch.device("cpu")


class ConstantNoise:
    """A noise source that always returns ``value`` (makes every noised quantity predictable)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.full_like(like, self.value)


class ScaledInput(nn.Module):
    """ε = 0.3 x: a cheap network that makes the unknown region drift away from the known formula."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.3 * x


class Wobble(nn.Module):
    """ε = 0.5 sin(3 x): a cheap non-linear network, so that reconstructions differ in structure."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.sin(3.0 * x)


def autoddpm(**params) -> torch.nn.Module:
    return create_method("autoddpm", MethodContext("flair", 32, CPU, seed=0), **params)


def deterministic(method, net: nn.Module | None = None):
    """Zero-noise sampling with a stub network: stage 1 becomes a deterministic function of the input."""
    method.net = net if net is not None else CountingStub()
    method.sampler = DiffusionSampler(method.schedule, ConstantNoise(0.0))
    return method


# ---------------------------------------------------------------------------------------------- NFE
@pytest.mark.parametrize(
    ("params", "expected"),
    [({}, 201 + 5 * 50), ({"noise_level": 3, "inpaint_level": 2, "resamples": 3}, 4 + 2 * 3)],
)
def test_nfe_is_451_at_the_defaults(params: dict, expected: int) -> None:
    method = autoddpm(**params)
    method.net = CountingStub()
    method.mask_threshold = 0.0
    out = method.predict(toy_slices(3, size=32, lesions=True))
    assert expected == len(method.net.timesteps)  # one batched call per step
    assert out.nfe.tolist() == [expected] * 3


# ---------------------------------------------------------------------------------------------- RePaint
def test_repaint_merge_keeps_the_known_region_equal_to_the_noised_original_at_every_step() -> None:
    schedule = DiffusionSchedule()
    sampler = DiffusionSampler(schedule, ConstantNoise(0.5))
    g = torch.Generator().manual_seed(0)
    x0, start = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    unknown = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    unknown[:, :, 2:5, 3:7] = True
    states = list(sampler.repaint_steps(ScaledInput(), x0, unknown, start, level=6, resamples=3))

    assert [(s.level, s.resample) for s in states[:-1]] == [(t - 1, u) for t in range(6, 0, -1) for u in range(3)]
    for state in states[:-1]:
        ab = alpha_bar(state.level)
        noised_original = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * 0.5
        torch.testing.assert_close(state.x[~unknown], noised_original[~unknown])
        assert not torch.allclose(state.x[unknown], noised_original[unknown], atol=1e-3)
    final = states[-1]
    assert final.level == -1
    assert torch.equal(final.x[~unknown], x0[~unknown])  # clean original outside the mask
    assert torch.equal(final.x[unknown], states[-2].x[unknown])


def test_repaint_with_gaussian_noise_counts_level_times_resamples_calls() -> None:
    sampler = DiffusionSampler(DiffusionSchedule(), NoiseSource())
    x0 = torch.randn(3, 1, 8, 8)
    unknown = torch.rand(3, 1, 8, 8) > 0.7
    stub = CountingStub()
    out, calls = sampler.repaint(stub, x0, unknown, x0, level=4, resamples=5)
    assert calls == 20 == len(stub.timesteps)
    assert [int(t[0]) for t in stub.timesteps] == [t for t in range(4, 0, -1) for _ in range(5)]
    assert torch.equal(out[~unknown], x0[~unknown])


# ---------------------------------------------------------------------------------------------- stage 1
def test_stage1_score_is_the_percentile_scaled_clipped_residual_times_the_perceptual_map() -> None:
    method = autoddpm()
    batch = toy_slices(2, size=32)
    x, brain = batch.channel("flair"), batch.brain
    residual = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) * 2.0
    method.reconstruct = lambda images, level: (images + residual, 201)
    method.perceptual = lambda a, b: torch.full_like(a, 0.5)
    stage1 = method.stage1(x, brain)

    region = brain.numpy() > 0.5
    for i in range(2):
        p95 = np.percentile(residual[i].numpy()[region[i]], 95)
        expected = np.clip(residual[i].numpy() / p95, 0, 1) * 0.5 * region[i]
        np.testing.assert_allclose(stage1.score[i].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert stage1.nfe == 201


def test_dilation_is_3x3() -> None:
    mask = torch.zeros(1, 5, 5, dtype=torch.bool)
    mask[0, 2, 2] = True
    expected = torch.zeros(1, 5, 5, dtype=torch.bool)
    expected[0, 1:4, 1:4] = True
    assert torch.equal(dilate(mask), expected)


def test_mask_threshold_comes_from_the_validation_slices_only() -> None:
    method = deterministic(autoddpm(mask_quantile=90, calibration_slices=3), Wobble())
    val_a, val_b = toy_slices(6, size=32, seed=11), toy_slices(6, size=32, seed=12)
    test = toy_slices(4, size=32, lesions=True, seed=13)

    with pytest.raises(RuntimeError, match="call calibrate"):
        method.predict(test)

    def expected(val) -> float:  # 3 of 6 slices, evenly spaced: 0, 2 (2.5 rounds to even), 5
        chosen = val.subset([0, 2, 5])
        with torch.inference_mode():
            score = method.stage1(chosen.channel("flair"), chosen.brain).score
        return float(torch.quantile(score[binary_brain(chosen.brain)], 0.90))

    method.calibrate(val_a)
    threshold_a = method.mask_threshold
    assert threshold_a == pytest.approx(expected(val_a), rel=1e-6)
    method.calibrate(val_b)
    assert method.mask_threshold == pytest.approx(expected(val_b), rel=1e-6)
    assert method.mask_threshold != pytest.approx(threshold_a, rel=1e-3)

    before = method.mask_threshold
    method.predict(test)
    assert method.mask_threshold == before  # predicting test slices never moves it


def test_final_map_is_the_inpainting_residual_times_the_stage1_score() -> None:
    method = autoddpm(mask_quantile=50)
    method.mask_threshold = 0.4
    batch = toy_slices(2, size=32, lesions=True)
    x, brain = batch.channel("flair"), batch.brain
    score = torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) * binary_brain(brain)
    reconstruction = x + 1.0
    method.stage1 = lambda images, b: Stage1(reconstruction, score, 201)
    seen = {}

    def fake_repaint(model, x0, unknown, start, level, resamples, generator=None):
        seen.update(x0=x0, unknown=unknown, start=start, level=level, resamples=resamples)
        return torch.full_like(x0, 0.25), 250

    method.sampler = type("FakeSampler", (), {"repaint": staticmethod(fake_repaint)})()
    out = method.predict(batch)

    mask = dilate(score > 0.4)
    assert torch.equal(seen["unknown"][:, 0], mask)
    torch.testing.assert_close(seen["start"][:, 0], torch.where(mask, reconstruction, x) / 3.0)  # stitched, model units
    torch.testing.assert_close(seen["x0"][:, 0], x / 3.0)
    assert (seen["level"], seen["resamples"]) == (50, 5)
    torch.testing.assert_close(out.reconstruction, torch.full_like(x, 0.75))
    torch.testing.assert_close(out.anomaly_map, (x - 0.75).abs() * binary_brain(brain) * score)
    assert out.nfe.tolist() == [451, 451]


# ---------------------------------------------------------------------------------------------- perceptual
def test_ssim_dissimilarity_is_zero_for_identical_images_and_grows_with_change() -> None:
    x = toy_slices(2, size=32).channel("flair") / 3.0
    assert ssim_dissimilarity(x, x).abs().max() < 1e-5
    changed = x.clone()
    changed[:, 10:16, 10:16] += 1.0
    d = ssim_dissimilarity(x, changed)
    assert d.shape == x.shape and 0.0 <= d.min() and d.max() <= 1.0
    assert d[:, 11:15, 11:15].mean() > 10 * d[:, :4, :4].mean() + 0.05


class AbsDifference(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean(1, keepdim=True)


def test_lpips_is_read_from_a_local_export_file_only(tmp_path: Path) -> None:
    examples = (torch.zeros(2, 3, 32, 32), torch.ones(2, 3, 32, 32))
    batch = torch.export.Dim("batch")
    program = torch.export.export(AbsDifference(), examples, dynamic_shapes=({0: batch}, {0: batch}))
    path = tmp_path / "lpips.pt2"
    torch.export.save(program, path)
    method = autoddpm(perceptual="lpips", lpips_model=str(path))
    a, b = torch.randn(3, 32, 32), torch.randn(3, 32, 32)
    torch.testing.assert_close(method.perceptual(a, b), (a - b).abs())

    with pytest.raises(FileNotFoundError, match="no file at .*missing.pt2"):
        autoddpm(perceptual="lpips", lpips_model=str(tmp_path / "missing.pt2"))
    with pytest.raises(ValueError, match="needs lpips_model"):
        autoddpm(perceptual="lpips")


# ---------------------------------------------------------------------------------------------- reuse
def test_a_trained_ddpm_state_loads_and_only_calibration_is_missing() -> None:
    context = MethodContext("flair", 32, CPU, seed=0)
    ddpm = create_method("ddpm", context)
    method = create_method("autoddpm", context)
    method.load_state_dict(ddpm.state_dict())
    for ours, theirs in zip(method.net.state_dict().values(), ddpm.net.state_dict().values()):
        assert torch.equal(ours, theirs)
    assert math.isnan(method.mask_threshold)
    with pytest.raises(RuntimeError, match="call calibrate"):
        method.predict(toy_slices(1, size=32, lesions=True))
