"""DAE baseline: denoising auto-encoder trained to remove coarse noise (Kascenas et al., MIDL 2022)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from datasets.slices import SliceSet
from methods.base import MethodContext, TrainBudget, TrainLog, register
from methods.nets.dae_unet import FullSkipUNet
from methods.postprocess import ResidualKind, ResidualScoring, binary_brain
from methods.reconstruction import SingleNetworkReconstruction
from methods.training import train_networks

NoiseSign = Literal["both", "positive", "negative"]

#: Sign of the coarse training noise → the paper's Table 1 row suffix (the configs' row labels).
NOISE_SIGNS: dict[NoiseSign, str] = {"both": "[-inf,+inf]", "positive": "[0,+inf]", "negative": "[-inf,0]"}


def coarse_noise(
    brain: torch.Tensor, sigma: float, resolution: int, sign: NoiseSign, generator: torch.Generator
) -> torch.Tensor:
    """The DAE corruption for a batch: ``[B, H, W]`` noise, zero outside the binary brain mask.

    N(0, ``sigma``) is drawn on a ``resolution`` x ``resolution`` grid, made one-signed there (before
    upsampling, so the field stays dense and of one sign everywhere: +|N| or -|N|), bilinearly
    upsampled to the slice size, rolled by a random offset per image and restricted to the brain.
    """
    b, h, w = brain.shape
    coarse = torch.randn(b, 1, resolution, resolution, generator=generator, device=brain.device) * sigma
    if sign == "positive":
        coarse = coarse.abs()
    elif sign == "negative":
        coarse = -coarse.abs()
    elif sign != "both":
        raise ValueError(f"unknown noise sign {sign!r}; expected both, positive or negative")
    noise = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)[:, 0]
    dy = torch.randint(h, (b,), generator=generator, device=brain.device)
    dx = torch.randint(w, (b,), generator=generator, device=brain.device)
    return roll_per_image(noise, dy, dx) * binary_brain(brain)


def roll_per_image(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """``torch.roll(images[i], (dy[i], dx[i]), dims=(-2, -1))`` for every image of ``[B, H, W]``, in one gather."""
    b, h, w = images.shape
    rows = (torch.arange(h, device=images.device) - dy[:, None]) % h  # output row i reads row i - dy
    cols = (torch.arange(w, device=images.device) - dx[:, None]) % w
    return images[torch.arange(b, device=images.device)[:, None, None], rows[:, :, None], cols[:, None, :]]


def scaled_radius(radius_at_128: int, image_size: int) -> int:
    """An erosion radius given at 128 px, scaled to ``image_size`` (at least 1 when non-zero)."""
    if radius_at_128 <= 0:
        return 0
    return max(1, round(radius_at_128 * image_size / 128))


@register("dae")
class DenoisingAE(SingleNetworkReconstruction):
    """Full-skip UNet trained to remove coarse, brain-masked noise; map = post-processed |x - x̂|.

        ``noise_sign`` sets the sign of the training noise (the paper's Table 1 rows): ``both`` = plain N(0, σ)
        (row ``[-inf,+inf]``), ``positive`` = +|N| (hyperintense prior, ``[0,+inf]``), ``negative`` = -|N|
        (hypointense prior, ``[-inf,0]``); the sign is taken on the coarse grid before upsampling. Loss: MSE to the
    clean image over brain pixels.
        Optimiser Adam(amsgrad) with weight decay, cosine learning-rate decay over the step budget.
        Map: |x - x̂| x eroded binary brain mask, then a 5 x 5 median filter.
    """

    label = "DAE"
    deviations = (
        "Noise σ is expressed on this suite's scale (reference 0.2 on [0, p99] images ≈ 1.3 here, config `noise_std`).",
        "One input modality per model (the reference denoises all four BraTS modalities jointly).",
        "Random roll drawn per image (reference: one roll per batch); foreground = stored brain mask "
        "> 0.5 (reference: sum of intensities > 0.01).",
        "Brain-mask erosion is a disk of radius `erosion_at_128` scaled to the image size (reference: "
        "5 x 5 average pool > 0.95 at 128 px, about a radius-2 disk).",
        "Cosine schedule decays once over the step budget (reference: CosineAnnealingLR with T_max = 100 "
        "epochs of 32 batches, i.e. cyclic over 2100 epochs); best weights on the validation loss are kept.",
        "The CPU default (configs/method/dae.yaml) uses levels 16-32-64-128 (reference 64-128-256-512) "
        "and 200 steps at lr 1e-3 (reference ~67k steps at 1e-4).",
    )

    def __init__(
        self,
        context: MethodContext,
        noise_sign: NoiseSign = "both",
        widths: Sequence[int] = (64, 128, 256, 512),
        noise_std: float = 1.3,
        noise_res: int = 16,
        residual: ResidualKind = "abs",
        erosion_at_128: int = 2,
        median: int = 5,
        **params: Any,
    ) -> None:
        super().__init__(context, **params)
        if noise_sign not in NOISE_SIGNS:
            raise ValueError(f"DAE noise_sign {noise_sign!r} unknown; expected one of {', '.join(NOISE_SIGNS)}")
        self.sign: NoiseSign = noise_sign
        self.noise_std = float(noise_std)
        self.noise_res = int(noise_res)
        self.net = FullSkipUNet(1, 1, widths).to(context.device)
        self.scoring = ResidualScoring(
            residual=residual, erosion=scaled_radius(erosion_at_128, context.image_size), median=median
        )

    def corrupt(self, x: torch.Tensor, brain: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` plus coarse noise of sign ``noise_sign`` inside the brain."""
        return x + coarse_noise(brain, self.noise_std, self.noise_res, self.sign, generator)

    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        modality = self.context.modality

        def masked_mse(batch: SliceSet, generator: torch.Generator) -> torch.Tensor:
            x = batch.channel(modality)
            inside = binary_brain(batch.brain).float()
            denoised = self.net(self.corrupt(x, batch.brain, generator)[:, None])[:, 0]
            return ((denoised - x).square() * inside).sum() / inside.sum().clamp_min(1.0)

        optimizer = torch.optim.Adam(
            self.net.parameters(), lr=budget.lr, weight_decay=budget.weight_decay, amsgrad=True
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(budget.steps, 1))
        return train_networks(
            [self.net],
            masked_mse,
            train,
            val,
            budget,
            optimizer,
            self.context.seed,
            scheduler,
            description=f"{self.display_name} {NOISE_SIGNS[self.sign]} {modality}",
            progress=self.context.progress,
            on_log=self.context.on_log,
        )
