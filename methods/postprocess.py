"""Post-processing of residual maps shared by reconstruction-based methods.

Each step is a per-method option recorded in the result row (baselines.md: "with" and "without" can be
compared): brain-mask erosion, a median filter, and the residual type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

ResidualKind = Literal["abs", "positive", "squared"]


def binary_brain(brain: torch.Tensor) -> torch.Tensor:
    """Binary brain mask from a (possibly soft, area-resized) one: every pixel with brain > 0.5."""
    return brain > 0.5


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion of ``[B, H, W]`` masks with a disk of ``radius`` pixels (0 = unchanged)."""
    if radius <= 0:
        return mask.bool()
    r = torch.arange(-radius, radius + 1, device=mask.device)
    disk = ((r[:, None] ** 2 + r[None, :] ** 2) <= radius**2).float()[None, None]
    outside = (~mask.bool()).float()[:, None]
    # a pixel survives erosion iff no outside pixel lies within the disk around it
    touched = F.conv2d(F.pad(outside, (radius,) * 4, value=1.0), disk)
    return touched[:, 0] == 0


def median_filter(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``size x size`` median filter of ``[B, H, W]`` maps with reflect padding (1 = unchanged).

    Equals ``scipy.ndimage.median_filter(m, size, mode="reflect")`` per image for odd ``size``
    (scipy's "reflect" is torch's "symmetric"-style edge mirroring, emulated here by index flipping).
    """
    if size <= 1:
        return maps
    pad = size // 2
    padded = _pad_reflect_with_edge(maps, pad)
    patches = padded.unfold(1, size, 1).unfold(2, size, 1)  # [B, H, W, size, size]
    return patches.reshape(*maps.shape, size * size).median(dim=-1).values


def _pad_reflect_with_edge(maps: torch.Tensor, pad: int) -> torch.Tensor:
    """Pad ``[B, H, W]`` mirroring about the edge *including* the edge pixel (scipy's "reflect")."""
    h, w = maps.shape[-2:]
    rows = torch.cat([torch.arange(pad - 1, -1, -1), torch.arange(h), torch.arange(h - 1, h - 1 - pad, -1)])
    cols = torch.cat([torch.arange(pad - 1, -1, -1), torch.arange(w), torch.arange(w - 1, w - 1 - pad, -1)])
    return maps[:, rows.to(maps.device)][:, :, cols.to(maps.device)]


@dataclass(frozen=True)
class ResidualScoring:
    """Turn an input and its reconstruction into an anomaly map.

    Attributes:
        residual: ``abs`` = |x - x̂|, ``positive`` = max(x - x̂, 0) (hyperintensity prior),
            ``squared`` = (x - x̂)².
        erosion: radius of the disk the binary brain mask is eroded with before masking the map.
        median: side of the median filter applied to the masked map (1 = none).
    """

    residual: ResidualKind = "abs"
    erosion: int = 0
    median: int = 1

    def __call__(self, x: torch.Tensor, reconstruction: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
        diff = x - reconstruction
        if self.residual == "abs":
            res = diff.abs()
        elif self.residual == "positive":
            res = diff.clamp_min(0)
        elif self.residual == "squared":
            res = diff.square()
        else:
            raise ValueError(f"unknown residual kind {self.residual!r}; expected abs, positive or squared")
        masked = res * erode(binary_brain(brain), self.erosion)
        return median_filter(masked, self.median)
