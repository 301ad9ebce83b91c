"""Perceptual difference maps for AutoDDPM's stage-1 mask: an offline 1 - SSIM map, or LPIPS from a local file.

The reference uses LPIPS with an ImageNet SqueezeNet whose weights are downloaded at run time, which
is impossible offline. The default substitute is the local structural dissimilarity ``(1 - SSIM) / 2``
(Gaussian window 11, σ 1.5; in [0, 1], 0 = identical). Real LPIPS stays available when the user points
``lpips_model`` at a local ``torch.export`` file, made once where the ``lpips`` package and its weights exist::

    m = lpips.LPIPS(net="squeeze", spatial=True).eval()
    a, b = torch.zeros(2, 3, 64, 64), torch.ones(2, 3, 64, 64)  # the image size the benchmark runs at
    batch = torch.export.Dim("batch")  # two distinct example tensors: export merges one passed twice
    torch.export.save(torch.export.export(m, (a, b), dynamic_shapes=({0: batch}, {0: batch})), "lpips_squeeze.pt2")

Nothing here downloads anything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

PerceptualKind = Literal["ssim", "lpips"]
PerceptualMap = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def ssim_dissimilarity(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """``(1 - SSIM map) / 2`` of ``[B, H, W]`` images (same size as the input; 0 where identical)."""
    _, ssim_map = structural_similarity_index_measure(
        x[:, None], y[:, None], gaussian_kernel=True, sigma=1.5, kernel_size=11,
        data_range=data_range, reduction="none", return_full_image=True,
    )  # fmt: skip
    return (1.0 - ssim_map[:, 0]) / 2.0


class LocalLPIPS:
    """LPIPS spatial map from a local ``torch.export`` program ``(a, b) -> [B, 1, H, W]`` on 3-channel inputs."""

    def __init__(self, path: str | Path, device: torch.device) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"lpips_model: no file at {path}; expected a torch.export LPIPS program (see methods/perceptual.py "
                "for how to make one). Weights are never downloaded: use perceptual: ssim without one."
            )
        self.path = path
        self.module = torch.export.load(str(path)).module().to(device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = self.module(x[:, None].expand(-1, 3, -1, -1), y[:, None].expand(-1, 3, -1, -1))
        if out.dim() != 4 or out.shape[1] != 1 or out.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"{self.path}: LPIPS module returned shape {tuple(out.shape)}, expected [B, 1, "
                f"{x.shape[-2]}, {x.shape[-1]}] (export it with spatial=True at this image size)"
            )
        return out[:, 0]


def make_perceptual(kind: PerceptualKind, lpips_model: str | None, device: torch.device) -> PerceptualMap:
    """The perceptual map of AutoDDPM's stage 1 (inputs in the diffusion model's range, about [-1, 1])."""
    if kind == "ssim":
        if lpips_model is not None:
            raise ValueError("lpips_model is set but perceptual is 'ssim'; set perceptual: lpips to use it")
        return ssim_dissimilarity
    if kind == "lpips":
        if lpips_model is None:
            raise ValueError("perceptual: lpips needs lpips_model = a local torch.export file (never downloaded)")
        return LocalLPIPS(lpips_model, device)
    raise ValueError(f"unknown perceptual map {kind!r}; expected 'ssim' or 'lpips'")
