"""DDPM baseline with AnoDDPM-style partial noising (Wyatt et al., CVPRW 2022), on diffusers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

from datasets.slices import SliceSet
from methods.base import AnomalyMethod, MethodContext, MethodOutput, TrainBudget, TrainLog, register
from methods.diffusion import DiffusionSampler, DiffusionSchedule, IntensityScaling, NoiseKind, NoiseSource
from methods.nets.denoiser import DenoiserUNet
from methods.postprocess import ResidualKind, ResidualScoring
from methods.training import train_networks

#: Deviations of the shared DDPM part (network, training, intensities); AutoDDPM inherits them.
DDPM_DEVIATIONS: tuple[str, ...] = (
    "CPU-sized network: diffusers UNet2DModel, channels (32, 64, 64), attention on the two deeper levels, "
    "1 res block, run at 1/4 resolution behind a 4x pixel-unshuffle stem (reference: MONAI "
    "DiffusionModelUNet (128, 256, 256) at full resolution); see methods/nets/denoiser.py.",
    "Training is a short step budget at a 20x higher constant learning rate (see the config; reference: Adam "
    "1e-4, batch 16, to convergence), so the network is far from converged on a CPU budget.",
    "Intensities are mapped to the model range by x / 3 (background -1, brain p90 +1) and back, with no "
    "clamping anywhere (the reference clamps to [0, 1], which would delete lesions above +3).",
    "The anomaly map is zeroed outside the binary brain mask (as for every method here).",
)


@register("ddpm")
class DDPM(AnomalyMethod):
    """ε-prediction DDPM (T = 1000, linear β 1e-4..0.02); anomaly map = |x - x̂| after partial diffusion.

    Inference (AnoDDPM): each slice is noised to step ``noise_level`` = L in one shot with the closed-form
    forward process, then denoised by ancestral sampling over L … 0, all slices of a batch together:
    NFE per slice = L + 1 (201 at L = 200). Gaussian noise by default; ``noise: simplex`` trains and
    samples with simplex noise instead (AnoDDPM's variant).

    Network (see :mod:`methods.nets.denoiser` for the measurement behind the choice): diffusers
    ``UNet2DModel``, chosen over MONAI ``DiffusionModelUNet`` because both ran equally fast on this CPU at
    64 px and diffusers already provides the scheduler; it runs behind a pixel-unshuffle stem to fit the
    CPU budget.
    """

    label = "DDPM"
    deviations = DDPM_DEVIATIONS + (
        "Simplex noise (params.noise: simplex) is this project's 2-D simplex implementation with one random gradient "
        "per lattice point, standardised per image to unit variance "
        "(reference: hashed gradients, unnormalised octave sum).",
    )

    def __init__(
        self,
        context: MethodContext,
        channels: Sequence[int] = (32, 64, 64),
        attention: Sequence[bool] = (False, True, True),
        layers_per_block: int = 1,
        patch: int = 4,
        norm_groups: int = 8,
        noise_level: int = 200,
        noise: NoiseKind = "gaussian",
        simplex_octaves: int = 6,
        simplex_persistence: float = 0.8,
        simplex_base_cells: float = 4.0,
        intensity_scale: float = 3.0,
        residual: ResidualKind = "abs",
        erosion: int = 0,
        median: int = 1,
        **params: Any,
    ) -> None:
        super().__init__(context, **params)
        self.net_config: dict[str, Any] = {
            "channels": [int(c) for c in channels],
            "attention": [bool(a) for a in attention],
            "layers_per_block": int(layers_per_block),
            "patch": int(patch),
            "norm_groups": int(norm_groups),
        }
        self.net = DenoiserUNet(context.image_size, **self.net_config).to(context.device)
        self.schedule = DiffusionSchedule(device=context.device)
        self.noise = NoiseSource(noise, simplex_octaves, simplex_persistence, simplex_base_cells)
        self.sampler = DiffusionSampler(self.schedule, self.noise)
        self.intensity = IntensityScaling(intensity_scale)
        self.noise_level = self.schedule.check_level(noise_level, "noise_level")
        if residual not in ("abs", "squared"):
            raise ValueError(f"{type(self).__name__}: residual must be 'abs' or 'squared', got {residual!r}")
        self.scoring = ResidualScoring(residual=residual, erosion=erosion, median=median)

    def networks(self) -> list[torch.nn.Module]:
        return [self.net]

    def training_identity(self) -> dict[str, Any]:
        """Everything that determines the trained network (not the inference settings).

        Cells whose identities and training budgets agree can share one trained network: DDPM at any
        noise level and AutoDDPM all train the same ε-model. The state after :meth:`fit` (before
        :meth:`calibrate`) loads into any method of the same identity via ``load_state_dict``.
        """
        return {
            "family": "ddpm-eps",
            "net": self.net_config,
            "noise": asdict(self.noise),
            "intensity": asdict(self.intensity),
            "schedule": self.schedule.identity,
        }

    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        modality = self.context.modality

        def eps_mse(batch: SliceSet, generator: torch.Generator) -> torch.Tensor:
            x0 = self.intensity.to_model(batch.channel(modality)[:, None])
            t = torch.randint(0, self.schedule.timesteps, (len(batch),), generator=generator, device=x0.device)
            noise = self.noise(x0, generator)
            return F.mse_loss(self.net(self.schedule.q_sample(x0, t, noise), t), noise)

        optimizer = torch.optim.Adam(self.net.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
        return train_networks(
            [self.net], eps_mse, train, val, budget, optimizer, self.context.seed,
            description=f"{self.display_name} {modality}",
            progress=self.context.progress,
            on_log=self.context.on_log,
        )  # fmt: skip

    def reconstruct(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, int]:
        """Partial-diffusion reconstruction of ``[B, H, W]`` slices (suite units) and its NFE per slice."""
        self.net.eval()
        y, nfe = self.sampler.reconstruct(self.net, self.intensity.to_model(x[:, None]), level)
        return self.intensity.from_model(y)[:, 0], nfe

    @torch.inference_mode()
    def predict(self, batch: SliceSet) -> MethodOutput:
        x = batch.channel(self.context.modality)
        reconstruction, nfe = self.reconstruct(x, self.noise_level)
        return MethodOutput(
            anomaly_map=self.scoring(x, reconstruction, batch.brain),
            reconstruction=reconstruction,
            nfe=torch.full((len(batch),), nfe, dtype=torch.long),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.net.eval()
