"""Diffusion machinery shared by DDPM and AutoDDPM: intensity mapping, noise, schedule, batched samplers.

Conventions (diffusers ``DDPMScheduler``): timesteps ``t = 0 … T-1``; ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1-ᾱ_t) ε``
with ``ᾱ_t = ∏_{s<=t} (1 - β_s)``; an ancestral step at ``t`` gives ``x_{t-1}``, and the step at ``t = 0``
gives the clean image (``ᾱ_{-1} = 1``). Every sampling loop runs over the whole batch (one network call
per step for all slices), inside the caller's ``torch.inference_mode``; the per-step coefficients are
computed once per schedule as Python floats, so a step is a few fused tensor ops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from diffusers import DDPMScheduler

from methods.simplex import simplex_noise

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseKind = Literal["gaussian", "simplex"]
NOISE_KINDS: tuple[str, ...] = ("gaussian", "simplex")


@dataclass(frozen=True)
class IntensityScaling:
    """Affine map between this suite's intensities and the diffusion model's range, without clipping.

    ``model = (x - offset) / scale``: with the defaults the background (-3) maps to -1 and the brain's
    90th percentile (+3) to +1, the range DDPMs are usually trained on, while hyperintense lesions
    (above +3) stay above +1. Nothing on the way is clamped (the reference clamps to [0, 1]), and the
    scheduler is built with ``clip_sample=False``, so a bright lesion survives the round trip.
    """

    scale: float = 3.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"IntensityScaling: scale must be > 0, got {self.scale}")

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.offset) / self.scale

    def from_model(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.scale + self.offset


@dataclass(frozen=True)
class NoiseSource:
    """The diffusion noise ε: standard Gaussian, or standardised multi-octave simplex noise (AnoDDPM)."""

    kind: NoiseKind = "gaussian"
    simplex_octaves: int = 6
    simplex_persistence: float = 0.8
    simplex_base_cells: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise ValueError(f"unknown diffusion noise {self.kind!r}; expected one of {', '.join(NOISE_KINDS)}")

    def __call__(self, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise of the shape, device and dtype of ``like``."""
        if self.kind == "gaussian":
            return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
        noise = simplex_noise(
            tuple(like.shape), generator, like.device,
            self.simplex_octaves, self.simplex_persistence, self.simplex_base_cells,
        )  # fmt: skip
        return noise.to(like.dtype)


class DiffusionSchedule:
    """Linear-β DDPM schedule (diffusers ``DDPMScheduler``, ε-prediction, no sample clipping) and the
    per-timestep coefficients of the forward process and of the ancestral step, computed once."""

    def __init__(
        self,
        timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        device: torch.device | str = "cpu",
    ) -> None:
        self.scheduler = DDPMScheduler(
            num_train_timesteps=timesteps,
            beta_schedule="linear",
            beta_start=beta_start,
            beta_end=beta_end,
            clip_sample=False,
            prediction_type="epsilon",
            variance_type="fixed_small",
        )
        self.timesteps = timesteps
        self.identity = {"timesteps": timesteps, "beta_start": beta_start, "beta_end": beta_end, "betas": "linear"}
        # alphas_cumprod is set in DDPMScheduler.__init__, which diffusers' untyped @register_to_config hides
        ab = self.scheduler.alphas_cumprod.double()  # type: ignore[attr-defined]
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        beta = 1.0 - ab / ab_prev  # = β_t, derived like DDPMScheduler.step does
        # posterior mean  c0 x̂0 + ct x_t  with  x̂0 = (x_t - sqrt(1-ᾱ_t) ε) / sqrt(ᾱ_t)
        c0 = ab_prev.sqrt() * beta / (1.0 - ab)
        ct = (1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab)
        self._mean_x = (c0 / ab.sqrt() + ct).tolist()
        self._mean_eps = (c0 * (1.0 - ab).sqrt() / ab.sqrt()).tolist()
        self._sigma = (beta * (1.0 - ab_prev) / (1.0 - ab)).clamp_min(0.0).sqrt().tolist()  # 0 at t = 0
        self._sqrt_alpha = (1.0 - beta).sqrt().tolist()
        self._sqrt_beta = beta.sqrt().tolist()
        self.sqrt_ab = ab.sqrt().float().to(device)
        self.sqrt_one_minus_ab = (1.0 - ab).sqrt().float().to(device)
        self._t = torch.arange(timesteps, device=device)

    def check_level(self, level: int, name: str) -> int:
        """``level`` as an int, or a clear error when it is no timestep of this schedule."""
        if not 0 <= int(level) < self.timesteps or int(level) != level:
            raise ValueError(f"{name} must be an integer timestep in 0..{self.timesteps - 1}, got {level}")
        return int(level)

    def q_sample(self, x0: torch.Tensor, t: int | torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward process in one shot: ``sqrt(ᾱ_t) x0 + sqrt(1-ᾱ_t) noise`` (``t`` an int or ``[B]``)."""
        a, b = self.sqrt_ab[t], self.sqrt_one_minus_ab[t]
        if a.dim():  # one timestep per sample
            shape = (-1,) + (1,) * (x0.dim() - 1)
            a, b = a.view(shape), b.view(shape)
        return a * x0 + b * noise

    def timestep_batch(self, t: int, batch: int) -> torch.Tensor:
        """The long ``[batch]`` timestep tensor the network takes at step ``t`` (a view, no allocation)."""
        return self._t[t].expand(batch)

    def step(self, x_t: torch.Tensor, eps: torch.Tensor, t: int, noise: torch.Tensor | None) -> torch.Tensor:
        """One ancestral step ``x_t -> x_{t-1}`` (= ``DDPMScheduler.step`` with ``variance_noise=noise``)."""
        out = torch.add(x_t * self._mean_x[t], eps, alpha=-self._mean_eps[t])
        if self._sigma[t] > 0.0:
            if noise is None:
                raise ValueError(f"step at t={t} > 0 needs noise")
            out.add_(noise, alpha=self._sigma[t])
        return out

    def renoise(self, x_prev: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """One forward step ``x_{t-1} -> x_t``: ``sqrt(1-β_t) x_{t-1} + sqrt(β_t) noise``."""
        return torch.add(x_prev * self._sqrt_alpha[t], noise, alpha=self._sqrt_beta[t])


class CountingModel:
    """Wraps an ε-model and counts its (batched) calls: the NFE per slice of a sampling loop."""

    def __init__(self, model: EpsModel) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x, t)


@dataclass(frozen=True)
class RepaintState:
    """The merged sample after one RePaint update; ``level`` = its timestep (-1 = clean)."""

    level: int
    resample: int
    x: torch.Tensor


@dataclass(frozen=True)
class DiffusionSampler:
    """Batched partial-diffusion reconstruction (AnoDDPM) and RePaint-style inpainting (AutoDDPM)."""

    schedule: DiffusionSchedule
    noise: NoiseSource

    def reconstruct(
        self, model: EpsModel, x0: torch.Tensor, level: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, int]:
        """Noise ``x0`` to ``level`` in one shot, then ancestral steps ``level … 0``.

        Returns the reconstruction and the number of network calls (``level + 1``, each for the whole batch).
        """
        level = self.schedule.check_level(level, "noise level")
        counted = CountingModel(model)
        x = self.schedule.q_sample(x0, level, self.noise(x0, generator))
        for t in range(level, -1, -1):
            eps = counted(x, self.schedule.timestep_batch(t, x.shape[0]))
            x = self.schedule.step(x, eps, t, self.noise(x, generator) if t > 0 else None)
        return x, counted.calls

    def repaint_steps(
        self,
        model: EpsModel,
        x0: torch.Tensor,
        unknown: torch.Tensor,
        start: torch.Tensor,
        level: int,
        resamples: int,
        generator: torch.Generator | None = None,
    ) -> Iterator[RepaintState]:
        """RePaint from ``level``: yields the merged sample after every update, the clean merge last.

        ``start`` (e.g. the stitched image) is noised to ``level``; then for ``t = level … 1`` and each of
        ``resamples`` passes: one network call on the current ``x_t``; the unknown pixels (``unknown``
        True) take the ancestral step to ``t-1``, the known ones are ``x0`` re-noised to ``t-1`` from
        scratch; between passes the merge is re-noised one step back to ``t``. The last state keeps the
        clean ``x0`` on known pixels. One noise draw serves both the step (unknown pixels) and the
        re-noised original (known pixels): they use disjoint pixels, so the draws stay independent.
        """
        level = self.schedule.check_level(level, "inpainting level")
        if level < 1 or resamples < 1:
            raise ValueError(f"RePaint needs level >= 1 and resamples >= 1, got {level}, {resamples}")
        x = self.schedule.q_sample(start, level, self.noise(start, generator))
        for t in range(level, 0, -1):
            timestep = self.schedule.timestep_batch(t, x.shape[0])
            for u in range(resamples):
                eps = model(x, timestep)
                z = self.noise(x, generator)
                x = torch.where(unknown, self.schedule.step(x, eps, t, z), self.schedule.q_sample(x0, t - 1, z))
                yield RepaintState(t - 1, u, x)
                if u < resamples - 1:
                    x = self.schedule.renoise(x, t, self.noise(x, generator))
        yield RepaintState(-1, 0, torch.where(unknown, x, x0))

    def repaint(
        self,
        model: EpsModel,
        x0: torch.Tensor,
        unknown: torch.Tensor,
        start: torch.Tensor,
        level: int,
        resamples: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, int]:
        """The final inpainted image of :meth:`repaint_steps` and its network calls (``level x resamples``)."""
        counted = CountingModel(model)
        state = None
        # Only the last state is wanted: it is read after the loop.
        for state in self.repaint_steps(counted, x0, unknown, start, level, resamples, generator):  # noqa: B007
            pass
        assert state is not None  # the generator always yields the final merge
        return state.x, counted.calls
