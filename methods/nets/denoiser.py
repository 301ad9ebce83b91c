"""Time-conditioned ε-prediction UNet of the diffusion baselines (DDPM, AutoDDPM): diffusers ``UNet2DModel``
behind an optional pixel-unshuffle "patch" stem.

Choice of implementation (measured on this project's 2-core CPU, ``/tmp`` script kept in the report):
diffusers ``UNet2DModel`` and MONAI ``DiffusionModelUNet`` with the same widths, 1 res block per level and
attention on the same levels took the same time within the (heavy) timing noise of the shared machine,
e.g. 1.0 vs 1.1 ms per 64 x 64 slice and forward at batch 32, channels (32, 64, 64), patch 4, and 15 vs
17 ms per slice at full resolution with channels (16, 32, 64). diffusers is chosen because the
scheduler (``DDPMScheduler``) already comes from it, so the whole diffusion path has one dependency and
one timestep convention, and its UNet takes any channel count for the patch stem.

CPU-sized deviation from the reference network (MONAI UNet, channels (128, 256, 256), attention on the
two deeper levels, 1 res block, full resolution): the image is first folded into ``patch²`` channels
with ``PixelUnshuffle(patch)`` (as in "simple diffusion", Hoogeboom et al. 2023), the UNet runs at
``size / patch`` and the output is unfolded again. Patch 4 cuts the per-slice cost about 15x at 64 px;
without it one slice costs 15-30 ms per network evaluation here, i.e. minutes per slice at NFE 451.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import UNet2DModel
from torch import nn


class DenoiserUNet(nn.Module):
    """``eps = net(x_t, t)`` for ``x_t`` ``[B, 1, H, W]`` and integer timesteps ``t`` ``[B]``.

    Args:
        image_size: side H = W of the input; must be divisible by ``patch * 2**(levels - 1)``.
        channels: width of each UNet level (each level after the first halves the resolution).
        attention: per level, whether its blocks have self-attention.
        layers_per_block: residual blocks per level.
        patch: pixel-unshuffle factor of the stem (1 = the UNet sees full resolution).
        norm_groups: GroupNorm groups (must divide every width).
    """

    def __init__(
        self,
        image_size: int,
        channels: Sequence[int] = (32, 64, 64),
        attention: Sequence[bool] = (False, True, True),
        layers_per_block: int = 1,
        patch: int = 4,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        if len(channels) != len(attention):
            raise ValueError(f"DenoiserUNet: {len(channels)} widths but {len(attention)} attention flags")
        factor = patch * 2 ** (len(channels) - 1)
        if image_size % factor:
            raise ValueError(
                f"DenoiserUNet: image size {image_size} must be divisible by patch x 2^(levels-1) = {factor}"
            )
        if any(c % norm_groups for c in channels):
            raise ValueError(f"DenoiserUNet: norm_groups={norm_groups} must divide every width {tuple(channels)}")
        self.fold = nn.PixelUnshuffle(patch)
        self.unfold = nn.PixelShuffle(patch)
        self.unet = UNet2DModel(
            sample_size=image_size // patch,
            in_channels=patch * patch,
            out_channels=patch * patch,
            block_out_channels=tuple(channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
            norm_num_groups=norm_groups,
            # one head on the narrowest attention level, as the reference (num_head_channels = last width)
            attention_head_dim=min((c for c, a in zip(channels, attention) if a), default=channels[-1]),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.unet(self.fold(x), t, return_dict=False)  # type: ignore[operator]  # diffusers' stubs hide __call__
        return self.unfold(out[0])
