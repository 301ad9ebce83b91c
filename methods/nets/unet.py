"""Guided-diffusion-style UNet without a time input (IterMask², Cyclic-UNet).

Same topology as the UNet of the IterMask² public code (``models/unet.py``, adapted from OpenAI's
guided diffusion) with the options that code uses: residual blocks ``norm → SiLU → conv`` then
``norm → SiLU → dropout → zero-initialised conv`` with a 1x1 skip when the width changes, down- and
up-sampling *inside* residual blocks (average pooling / nearest upsampling), self-attention blocks at
the configured downsample factors and in the middle block, concatenated skip connections, and a
zero-initialised output convolution. There is no timestep embedding at all (the public code builds
one but never feeds it, so those parameters are unused; the "used parameters" of the paper-scale
config are exactly the parameters of this module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from methods.nets.dropout import Dropout

NormKind = Literal["batch", "group"]


@dataclass(frozen=True)
class UNetConfig:
    """Architecture hyper-parameters of :class:`UNet`.

    Attributes:
        base_channels: width of the first level.
        channel_mult: width multiplier per level; a level after the first halves the resolution.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_downsample: downsample factors (1 = full resolution) whose blocks get self-attention;
            the middle block always has one. (4, 8, 16) is 32², 16², 8² at 128 px.
        dropout: dropout rate inside the residual blocks.
        num_heads: attention heads.
        norm: ``batch`` (BatchNorm, the IterMask² code) or ``group`` (GroupNorm, up to 32 groups).
    """

    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_downsample: tuple[int, ...] = (4, 8, 16)
    dropout: float = 0.1
    num_heads: int = 1
    norm: NormKind = "batch"

    def __post_init__(self) -> None:
        if self.base_channels < 1 or not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"UNetConfig: need base_channels >= 1 and positive channel_mult, got {self}")
        if self.num_res_blocks < 1 or self.num_heads < 1 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNetConfig: need num_res_blocks >= 1, num_heads >= 1, 0 <= dropout < 1, got {self}")
        if self.norm not in ("batch", "group"):
            raise ValueError(f"UNetConfig: norm must be 'batch' or 'group', got {self.norm!r}")

    @property
    def downsample_factor(self) -> int:
        """Total downsampling of the deepest level (input sides must be divisible by it)."""
        return 2 ** (len(self.channel_mult) - 1)

    @classmethod
    def preset(cls, name: str) -> UNetConfig:
        """``paper`` (IterMask² at 128 px, ~5.9 M parameters) or ``small`` (CPU-sized)."""
        presets = {
            "paper": cls(),
            "small": cls(base_channels=16, channel_mult=(1, 2, 2, 4), num_res_blocks=1, attention_downsample=()),
        }
        try:
            return presets[name]
        except KeyError:
            raise ValueError(f"unknown UNet preset {name!r}; known presets: {', '.join(presets)}") from None


def _norm(kind: NormKind, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(32, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """``x → skip(x) + conv0(drop(SiLU(norm(conv(resample(SiLU(norm(x))))))))`` (guided diffusion)."""

    def __init__(
        self,
        channels: int,
        out_channels: int,
        dropout: float,
        norm: NormKind,
        resample: Literal["none", "up", "down"] = "none",
    ) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(_norm(norm, channels), nn.SiLU())
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        if resample == "down":
            self.resample: nn.Module = nn.AvgPool2d(2)
        elif resample == "up":
            self.resample = nn.Upsample(scale_factor=2, mode="nearest")
        else:
            self.resample = nn.Identity()
        self.out_layers = nn.Sequential(
            _norm(norm, out_channels),
            nn.SiLU(),
            Dropout(dropout),  # nn.Dropout's layer, cheaper mask on the CPU (methods/nets/dropout.py)
            _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.in_conv(self.resample(self.in_layers(x)))
        return self.skip(self.resample(x)) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Self-attention over all spatial positions, residual, zero-initialised output projection."""

    def __init__(self, channels: int, num_heads: int, norm: NormKind) -> None:
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"attention: {channels} channels not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm = _norm(norm, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        # per head a contiguous [q; k; v] block of channels, as guided diffusion's legacy ordering
        q, k, v = qkv.reshape(b, self.num_heads, 3 * c // self.num_heads, h * w).transpose(2, 3).chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v)  # [b, heads, hw, c/heads]
        out = out.transpose(2, 3).reshape(b, c, h * w)
        return x + self.proj_out(out).reshape(b, c, h, w)


class UNet(nn.Module):
    """Image-to-image UNet, ``[B, in_channels, H, W] → [B, out_channels, H, W]``, no timestep input."""

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        base = cfg.base_channels
        self.input_conv = nn.Conv2d(in_channels, base * cfg.channel_mult[0], 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels = [base * cfg.channel_mult[0]]
        ch, factor = skip_channels[0], 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                self.down.append(self._block(ch, base * mult, factor))
                ch = base * mult
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.down.append(ResBlock(ch, ch, cfg.dropout, cfg.norm, resample="down"))
                factor *= 2
                skip_channels.append(ch)
        self.middle = nn.Sequential(
            ResBlock(ch, ch, cfg.dropout, cfg.norm),
            AttentionBlock(ch, cfg.num_heads, cfg.norm),
            ResBlock(ch, ch, cfg.dropout, cfg.norm),
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [self._block(ch + skip_channels.pop(), base * mult, factor)]
                ch = base * mult
                if level and i == cfg.num_res_blocks:
                    layers.append(ResBlock(ch, ch, cfg.dropout, cfg.norm, resample="up"))
                    factor //= 2
                self.up.append(nn.Sequential(*layers))
        self.out = nn.Sequential(_norm(cfg.norm, ch), nn.SiLU(), _zero(nn.Conv2d(ch, out_channels, 3, padding=1)))
        # channels-last convolutions are ~25 % faster on CPU (oneDNN) and suit GPU kernels too; the layout is
        # internal: inputs of any layout are accepted and the output has the usual [B, C, H, W] shape
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub omits memory_format=

    def _block(self, channels: int, out_channels: int, factor: int) -> nn.Module:
        block = ResBlock(channels, out_channels, self.config.dropout, self.config.norm)
        if factor not in self.config.attention_downsample:
            return block
        return nn.Sequential(block, AttentionBlock(out_channels, self.config.num_heads, self.config.norm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.config.downsample_factor
        if x.ndim != 4 or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(f"UNet: expected [B, C, H, W] with H and W divisible by {f}, got {tuple(x.shape)}")
        h = self.input_conv(x.contiguous(memory_format=torch.channels_last))
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = self.middle(h)
        for block in self.up:
            h = block(torch.cat([h, skips.pop()], dim=1))
        return self.out(h)
