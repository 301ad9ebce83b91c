"""DDPM (AnoDDPM-style partial noising) and the shared diffusion pieces: forward process against the closed
form, ancestral step against diffusers, NFE = L + 1, intensity round trip of a bright lesion, simplex noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from methods import MethodContext, create_method
from methods.diffusion import DiffusionSampler, DiffusionSchedule, IntensityScaling, NoiseSource
from methods.simplex import simplex_basis, simplex_noise
from tests.tiny_config import method_config
from tests.toy_data import toy_slices

CPU = torch.device("cpu")


def alpha_bar(t: int) -> float:
    """ᾱ_t of the linear schedule β_s = 1e-4 + (0.02 - 1e-4) s / 999, s = 0..t (independent of diffusers)."""
    betas = 1e-4 + (0.02 - 1e-4) * np.arange(1000, dtype=np.float64) / 999
    return float(np.prod(1.0 - betas[: t + 1]))


class CountingStub(nn.Module):
    """A cheap ε-network: returns zeros and records the timesteps of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.timesteps: list[torch.Tensor] = []
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.timesteps.append(t.clone())
        if len(self.inputs) == 0:
            self.inputs.append(x.clone())
        return torch.zeros_like(x)


class OracleEps(nn.Module):
    """Returns the exact ε of ``x_t`` given the clean image ``x0`` (model units): x̂0 = x0 at every step."""

    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x0 = x0
        self.ab = torch.tensor([alpha_bar(t) for t in range(1000)], dtype=torch.float64)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.ab[t].view(-1, 1, 1, 1)
        return ((x.double() - ab.sqrt() * self.x0.double()) / (1 - ab).sqrt()).float()


def ddpm(**params) -> torch.nn.Module:
    return create_method("ddpm", MethodContext("flair", 32, CPU, seed=0), **params)


# ---------------------------------------------------------------------------------------------- schedule
@pytest.mark.parametrize("level", [0, 200, 250, 999])
def test_one_shot_noising_matches_the_closed_form(level: int) -> None:
    schedule = DiffusionSchedule()
    x0 = torch.tensor([[-1.0, 0.0], [0.7, 2.3]]).expand(20000, 1, 2, 2)
    generator = torch.Generator().manual_seed(level)
    noise = torch.randn(x0.shape, generator=generator)
    xt = schedule.q_sample(x0, level, noise)
    ab = alpha_bar(level)
    # statistics of x_L = sqrt(ᾱ_L) x0 + sqrt(1 - ᾱ_L) ε over many draws
    standard_error = math.sqrt(1 - ab) / math.sqrt(20000)
    torch.testing.assert_close(xt.mean(0), math.sqrt(ab) * x0[0], atol=4 * standard_error + 1e-6, rtol=0)
    torch.testing.assert_close(xt.std(0), torch.full((1, 2, 2), math.sqrt(1 - ab)), rtol=0.03, atol=1e-4)
    # and the same values as diffusers' add_noise (per-sample timesteps path included)
    reference = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False).add_noise(
        x0[:8], noise[:8], torch.full((8,), level)
    )
    torch.testing.assert_close(xt[:8], reference)
    torch.testing.assert_close(schedule.q_sample(x0[:8], torch.full((8,), level), noise[:8]), reference)


@pytest.mark.parametrize("t", [0, 1, 50, 200, 999])
def test_ancestral_step_equals_diffusers_step(t: int) -> None:
    schedule = DiffusionSchedule()
    reference = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    g = torch.Generator().manual_seed(t)
    x, eps = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    expected = reference.step(eps, t, x, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    # tolerance: diffusers forms 1 - ᾱ_t in float32 (relative error ~1e-4 at t = 1), the tables use float64
    torch.testing.assert_close(schedule.step(x, eps, t, noise if t > 0 else None), expected, atol=1e-5, rtol=2e-4)


def test_renoise_is_one_forward_step() -> None:
    schedule = DiffusionSchedule()
    x, z = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    beta = 1e-4 + (0.02 - 1e-4) * 37 / 999
    torch.testing.assert_close(schedule.renoise(x, 37, z), math.sqrt(1 - beta) * x + math.sqrt(beta) * z)


# ---------------------------------------------------------------------------------------------- sampling
def test_partial_diffusion_starts_at_level_l_and_calls_the_network_l_plus_1_times() -> None:
    level, batch = 30, 4000
    sampler = DiffusionSampler(DiffusionSchedule(), NoiseSource())
    stub = CountingStub()
    x0 = torch.full((batch, 1, 2, 2), 0.8)
    _, calls = sampler.reconstruct(stub, x0, level)
    assert calls == level + 1 == len(stub.timesteps)
    assert [int(t[0]) for t in stub.timesteps] == list(range(level, -1, -1))
    # one call per step for the whole batch
    assert all(t.shape == (batch,) and bool((t == t[0]).all()) for t in stub.timesteps)
    first = stub.inputs[0]  # what the network saw first: x0 noised to L in one shot
    ab = alpha_bar(level)
    assert abs(first.mean().item() - math.sqrt(ab) * 0.8) < 0.01
    assert abs(first.std().item() - math.sqrt(1 - ab)) < 0.01


@pytest.mark.parametrize("level", [5, 200])
def test_predict_reports_nfe_l_plus_1_per_slice(level: int) -> None:
    method = ddpm(noise_level=level)
    method.net = CountingStub()
    batch = toy_slices(3, size=32, lesions=True)
    out = method.predict(batch)
    assert out.nfe.tolist() == [level + 1] * 3
    assert len(method.net.timesteps) == level + 1


def test_bright_lesion_survives_the_intensity_round_trip() -> None:
    scaling = IntensityScaling()
    x = torch.tensor([-3.0, 0.0, 3.0, 5.5, 8.0])
    torch.testing.assert_close(scaling.from_model(scaling.to_model(x)), x)
    assert scaling.to_model(x)[-1] > 1.0  # a lesion at +8 lies above the healthy range and is kept there

    # the whole predict path: with the exact ε the reconstruction is the input, a +7 lesion included
    method = ddpm(noise_level=200)
    batch = toy_slices(2, size=32, lesions=True)
    x = batch.channel("flair").clone()
    x[batch.labels] = 7.0
    batch = type(batch)(
        images=torch.stack([x, batch.channel("t1")], dim=1), brain=batch.brain, labels=batch.labels,
        modalities=batch.modalities, subjects=batch.subjects, slice_index=batch.slice_index,
    )  # fmt: skip
    method.net = OracleEps(scaling.to_model(x[:, None]))
    torch.manual_seed(0)
    out = method.predict(batch)
    torch.testing.assert_close(out.reconstruction, x, atol=2e-3, rtol=0)
    assert out.reconstruction[batch.labels].min() > 6.99
    assert out.anomaly_map.max() < 2e-3


# ---------------------------------------------------------------------------------------------- simplex
def _reference_simplex(x: float, y: float, gradient) -> float:
    """Gustavson's 2-D simplex noise at one point, written out scalar by scalar."""
    f2, g2 = 0.5 * (math.sqrt(3) - 1), (3 - math.sqrt(3)) / 6
    s = (x + y) * f2
    i, j = math.floor(x + s), math.floor(y + s)
    t = (i + j) * g2
    x0, y0 = x - (i - t), y - (j - t)
    i1, j1 = (1, 0) if x0 > y0 else (0, 1)
    total = 0.0
    corners = (
        (x0, y0, i, j),
        (x0 - i1 + g2, y0 - j1 + g2, i + i1, j + j1),
        (x0 - 1 + 2 * g2, y0 - 1 + 2 * g2, i + 1, j + 1),
    )
    for dx, dy, ci, cj in corners:
        w = 0.5 - dx * dx - dy * dy
        if w > 0:
            gx, gy = gradient(ci, cj)
            total += w**4 * (gx * dx + gy * dy)
    return 70.0 * total


def test_simplex_basis_equals_the_scalar_algorithm() -> None:
    h, w, octaves, persistence, cells = 6, 8, 3, 0.8, 2.0

    def gradient(k: int, i: int, j: int) -> tuple[float, float]:
        angle = 0.37 * k + 1.3 * i + 2.9 * j + 0.1 * i * j
        return math.cos(angle), math.sin(angle)

    basis = simplex_basis(h, w, octaves, persistence, cells)
    g = torch.tensor([gradient(*map(int, p)) for p in basis.lattice], dtype=torch.float32).reshape(-1, 1)
    values = (basis.matrix @ g).reshape(h, w)
    for row in range(h):
        for col in range(w):
            expected = sum(
                persistence**k
                * _reference_simplex(
                    col * cells * 2**k / w, row * cells * 2**k / w, lambda i, j, k=k: gradient(k, i, j)
                )
                for k in range(octaves)
            )
            assert abs(values[row, col].item() - expected) < 1e-5


def test_simplex_noise_is_standardised_smooth_and_seeded() -> None:
    g = torch.Generator().manual_seed(0)
    noise = simplex_noise((6, 1, 32, 32), generator=g)
    torch.testing.assert_close(noise.mean(dim=(-2, -1)), torch.zeros(6, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(noise.std(dim=(-2, -1)), torch.ones(6, 1), atol=1e-4, rtol=0)
    lag1 = torch.corrcoef(torch.stack([noise[..., :-1].flatten(), noise[..., 1:].flatten()]))[0, 1]
    assert lag1 > 0.3  # spatially correlated (white noise: ~0)
    again = simplex_noise((6, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(noise, again)
    assert (noise[0] - noise[1]).abs().mean() > 0.5  # images get different fields


# ---------------------------------------------------------------------------------------------- config
def test_training_identity_is_shared_by_noise_levels_and_autoddpm_only() -> None:
    context = MethodContext("flair", 32, CPU, seed=0)
    base = ddpm().training_identity()
    assert ddpm(noise_level=250).training_identity() == base
    assert create_method("autoddpm", context).training_identity() == base
    assert ddpm(noise="simplex").training_identity() != base
    assert ddpm(channels=[16, 32, 32]).training_identity() != base


def test_family_configs_inherit_ddpm_yaml_and_share_its_trained_network() -> None:
    """ddpm_l250.yaml, ddpm_simplex.yaml and autoddpm.yaml inherit ddpm.yaml (Hydra defaults): their train
    budget is DDPM's, and the default configs' training identities are DDPM's except simplex (own noise)."""
    context = MethodContext("flair", 32, CPU, seed=0)
    configs = {name: method_config(name) for name in ("ddpm", "ddpm_l250", "ddpm_simplex", "autoddpm")}
    assert {name: cfg["label"] for name, cfg in configs.items()} == {
        "ddpm": "DDPM", "ddpm_l250": "DDPM L=250", "ddpm_simplex": "DDPM simplex", "autoddpm": "AutoDDPM 1-SSIM"
    }  # fmt: skip
    assert all(cfg["train"] == configs["ddpm"]["train"] for cfg in configs.values())
    assert {k: configs["autoddpm"]["params"][k] for k in configs["ddpm"]["params"]} == configs["ddpm"]["params"]
    assert configs["autoddpm"]["smoke_params"] == {"noise_level": 3, "inpaint_level": 2, "resamples": 2}
    identity = {name: create_method(cfg["name"], context, **cfg["params"]).training_identity()
                for name, cfg in configs.items()}  # fmt: skip
    assert identity["autoddpm"] == identity["ddpm"] == identity["ddpm_l250"] != identity["ddpm_simplex"]


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="noise_level must be an integer timestep in 0..999"):
        ddpm(noise_level=1000)
    with pytest.raises(ValueError, match="unknown diffusion noise 'pink'"):
        ddpm(noise="pink")
    with pytest.raises(ValueError, match="residual must be 'abs' or 'squared'"):
        ddpm(residual="positive")
    with pytest.raises(ValueError, match="image size 32 must be divisible"):
        ddpm(patch=16, channels=[32, 64, 64])
