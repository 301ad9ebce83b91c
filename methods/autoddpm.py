"""AutoDDPM (Bercea et al., ICML 2023): mask, stitch and re-sample with a trained DDPM."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from datasets.slices import SliceSet
from methods.base import MethodContext, MethodOutput, register
from methods.ddpm import DDPM, DDPM_DEVIATIONS
from methods.perceptual import PerceptualKind, make_perceptual
from methods.postprocess import binary_brain


@dataclass(frozen=True)
class Stage1:
    """AutoDDPM stage 1 on a batch: the partial-diffusion reconstruction and the combined score.

    Attributes:
        reconstruction: ``[B, H, W]`` x̂ from the noise level (suite units).
        score: ``[B, H, W]`` clip(|x - x̂| / p95, 0, 1) x perceptual map, zero outside the brain.
        nfe: network calls per slice spent on it.
    """

    reconstruction: torch.Tensor
    score: torch.Tensor
    nfe: int


def dilate(mask: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Binary dilation of ``[B, H, W]`` masks with a ``size x size`` square."""
    return F.max_pool2d(mask[:, None].float(), size, stride=1, padding=size // 2)[:, 0] > 0


@register("autoddpm")
class AutoDDPM(DDPM):
    """Stage 1: DDPM reconstruction from t = ``noise_level`` (200); residual / its per-image 95th percentile,
    clipped to [0, 1], times a perceptual map = score; mask = dilate3x3(score > threshold), the threshold
    being the ``mask_quantile``-th percentile of the score on healthy validation brain pixels
    (:meth:`calibrate`; no test data). Stage 2: stitch (original outside the mask, x̂ inside). Stage 3:
    RePaint from t = ``inpaint_level`` (50) with ``resamples`` (5) passes per step, the unmasked pixels
    re-noised from the original at every step. Map = |x - x_inpaint| x score.

    NFE per slice = (noise_level + 1) + inpaint_level x resamples = 201 + 250 = 451 at the defaults.
    The network and its training are DDPM's (same :meth:`training_identity`): a trained DDPM state loads
    here unchanged, then only :meth:`calibrate` runs.
    """

    label = "AutoDDPM"
    deviations = DDPM_DEVIATIONS + (
        "Perceptual map: offline substitute (1 - SSIM) / 2 (Gaussian window 11, σ 1.5), named in the row label; "
        "the reference's LPIPS (SqueezeNet, ImageNet weights downloaded at run time) is used only with a local "
        "torch.export file (param lpips_model).",
        "Stage-1 mask threshold = the mask_quantile-th percentile (95) of the stage-1 score on healthy "
        "validation brain pixels (at most calibration_slices slices), chosen in calibrate() (reference: a fixed "
        "0.13 tuned on healthy validation data for LPIPS on [0, 1] images).",
        "The residual's per-image 95th percentile is taken over brain pixels (reference: the whole image).",
        "Inpainting starts from the stitched image noised to t = 50 (reference: x̂ noised; the known pixels are "
        "replaced after the first step either way); re-noising between resamples uses β_t (the reference indexes "
        "β_(t-1)); one noise draw serves the step (masked pixels) and the re-noised original (other pixels).",
    )

    def __init__(
        self,
        context: MethodContext,
        inpaint_level: int = 50,
        resamples: int = 5,
        residual_percentile: float = 95.0,
        mask_quantile: float = 95.0,
        dilation: int = 3,
        perceptual: PerceptualKind = "ssim",
        lpips_model: str | None = None,
        calibration_slices: int = 32,
        calibration_batch_size: int = 32,
        **params: Any,
    ) -> None:
        super().__init__(context, **params)
        self.inpaint_level = self.schedule.check_level(inpaint_level, "inpaint_level")
        if self.inpaint_level < 1 or resamples < 1:
            raise ValueError(f"AutoDDPM: need inpaint_level >= 1 and resamples >= 1, got {inpaint_level}, {resamples}")
        for name, q in (("residual_percentile", residual_percentile), ("mask_quantile", mask_quantile)):
            if not 0.0 < q <= 100.0:
                raise ValueError(f"AutoDDPM: {name} must be in (0, 100], got {q}")
        if calibration_slices < 1 or calibration_batch_size < 1:
            raise ValueError("AutoDDPM: calibration_slices and calibration_batch_size must be >= 1")
        self.resamples = int(resamples)
        self.residual_percentile = float(residual_percentile)
        self.mask_quantile = float(mask_quantile)
        self.dilation = int(dilation)
        self.perceptual = make_perceptual(perceptual, lpips_model, context.device)
        self.calibration_slices = int(calibration_slices)
        self.calibration_batch_size = int(calibration_batch_size)
        self.mask_threshold = math.nan

    def stage1(self, x: torch.Tensor, brain: torch.Tensor) -> Stage1:
        """Reconstruction and combined score of ``[B, H, W]`` slices (call inside inference mode)."""
        reconstruction, nfe = self.reconstruct(x, self.noise_level)
        region = binary_brain(brain)
        residual = (x - reconstruction).abs()
        in_brain = residual.masked_fill(~region, math.nan).flatten(1)
        scale = torch.nanquantile(in_brain, self.residual_percentile / 100, dim=1)
        scale = torch.nan_to_num(scale, nan=1.0).clamp_min(1e-6)[:, None, None]  # no brain pixel: score 0 anyway
        perceptual = self.perceptual(self.intensity.to_model(x), self.intensity.to_model(reconstruction))
        score = (residual / scale).clamp(0.0, 1.0) * perceptual * region
        return Stage1(reconstruction, score, nfe)

    @torch.inference_mode()
    def calibrate(self, val: SliceSet) -> None:
        """Mask threshold = ``mask_quantile``-th percentile of the stage-1 score on healthy val brain pixels."""
        if len(val) == 0:
            raise ValueError("AutoDDPM.calibrate: the validation split is empty; the mask threshold needs it")
        n = min(self.calibration_slices, len(val))
        chosen = val.subset(torch.linspace(0, len(val) - 1, n).round().long().unique())
        scores = []
        for batch in chosen.batches(self.calibration_batch_size):
            batch = batch.to(self.device)
            stage1 = self.stage1(batch.channel(self.context.modality), batch.brain)
            scores.append(stage1.score[binary_brain(batch.brain)].float().cpu())
        values = torch.cat(scores)
        if values.numel() == 0:
            raise ValueError("AutoDDPM.calibrate: the validation slices contain no brain pixel")
        self.mask_threshold = float(torch.quantile(values, self.mask_quantile / 100))

    @torch.inference_mode()
    def predict(self, batch: SliceSet) -> MethodOutput:
        if math.isnan(self.mask_threshold):
            raise RuntimeError(
                "AutoDDPM: the stage-1 mask threshold is not set; call calibrate(val) on healthy validation "
                "slices before predict (a DDPM checkpoint carries no threshold)"
            )
        x = batch.channel(self.context.modality)
        stage1 = self.stage1(x, batch.brain)
        unknown = dilate(stage1.score > self.mask_threshold, self.dilation)
        stitched = torch.where(unknown, stage1.reconstruction, x)
        inpainted, nfe = self.sampler.repaint(
            self.net,
            self.intensity.to_model(x[:, None]),
            unknown[:, None],
            self.intensity.to_model(stitched[:, None]),
            self.inpaint_level,
            self.resamples,
        )
        inpainted = self.intensity.from_model(inpainted)[:, 0]
        return MethodOutput(
            anomaly_map=self.scoring(x, inpainted, batch.brain) * stage1.score,
            reconstruction=inpainted,
            nfe=torch.full((len(batch),), stage1.nfe + nfe, dtype=torch.long),
        )

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"mask_threshold": self.mask_threshold}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Loads an AutoDDPM state, or a trained DDPM state (no threshold: :meth:`calibrate` must follow)."""
        super().load_state_dict(state)
        self.mask_threshold = float(state.get("mask_threshold", math.nan))
