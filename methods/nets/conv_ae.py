"""Convolutional auto-encoder with a dense bottleneck (Baur et al., MedIA 2021, "dense AE")."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from methods.nets.pointwise import PointwiseConv2d


def _down_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=5, stride=2, padding=2),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2),
    )


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size=5, stride=2, padding=2, output_padding=1),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2),
    )


class DenseBottleneckAE(nn.Module):
    """4 x [5x5 conv stride 2, BN, LeakyReLU] → dense z → mirrored transposed convs → 1x1 conv.

    At 128 x 128 input with widths 32-64-128-128 the encoder ends at 8 x 8 as in the reference; at
    other sizes the bottleneck grid is ``image_size / 2**len(widths)``.
    """

    def __init__(
        self,
        image_size: int,
        widths: Sequence[int] = (32, 64, 128, 128),
        latent_dim: int = 128,
        dropout: float = 0.2,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        factor = 2 ** len(widths)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by {factor} ({len(widths)} stride-2 stages)")
        self.grid = image_size // factor
        self.widths = tuple(widths)
        channels = (in_channels, *widths)
        self.encoder = nn.Sequential(*[_down_block(a, b) for a, b in zip(channels[:-1], channels[1:])])
        flat = widths[-1] * self.grid * self.grid
        self.to_latent = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, latent_dim))
        self.from_latent = nn.Linear(latent_dim, flat)
        rev = tuple(reversed(widths))
        self.decoder = nn.Sequential(*[_up_block(a, b) for a, b in zip(rev, (*rev[1:], rev[-1]))])
        self.head = PointwiseConv2d(rev[-1], in_channels)  # a 1x1 convolution (fast to one channel on the CPU)
        # channels-last convolutions: with the head above an AE training step 1.35x faster on the CPU (oneDNN); the
        # layout is internal (any input layout; output [B, C, H, W])
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub omits memory_format=

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.to_latent(self.encoder(x.contiguous(memory_format=torch.channels_last)))
        h = self.from_latent(z).view(x.shape[0], self.widths[-1], self.grid, self.grid)
        return self.head(self.decoder(h))
