"""Frequency masking of IterMask² (itermask2.md §2): the high-pass image ``x_s``.

The centred spectrum's low band (bins closer than ``r`` to the centre) gets a constant amplitude while its
phase is kept; the other bins are unchanged; the real part of the inverse transform is ``x_s``. It keeps
the anatomy's edges and fine structure but not the intensities a lesion changes.
"""

from __future__ import annotations

import torch

#: Radius of the low band at :data:`RADIUS_REFERENCE_SIZE` px (the paper: r = 15 at 128 x 128).
DEFAULT_RADIUS = 15.0
RADIUS_REFERENCE_SIZE = 128


def scaled_radius(radius: float, image_size: int, reference_size: int | None = RADIUS_REFERENCE_SIZE) -> float:
    """``radius`` given at ``reference_size`` px, rescaled to ``image_size`` (r/H constant).

    ``reference_size=None`` means ``radius`` is already in frequency bins at ``image_size``.
    """
    if radius <= 0:
        raise ValueError(f"frequency mask radius must be > 0, got {radius}")
    if reference_size is None:
        return float(radius)
    if reference_size <= 0:
        raise ValueError(f"radius reference size must be > 0, got {reference_size}")
    return float(radius) * image_size / reference_size


def low_band(height: int, width: int, radius: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Boolean ``[H, W]``: bins whose Euclidean distance from the centre ``(H//2, W//2)`` is ``< radius``."""
    rows = torch.arange(height, device=device, dtype=torch.float64) - height // 2
    cols = torch.arange(width, device=device, dtype=torch.float64) - width // 2
    return (rows[:, None] ** 2 + cols[None, :] ** 2).sqrt() < radius


def high_pass(x: torch.Tensor, radius: float, low_band_amplitude: float = 1.0) -> torch.Tensor:
    """``x_s`` of every image in ``x`` (``[..., H, W]``, any leading dims), same shape and dtype.

    Args:
        x: images, real.
        radius: low-band radius in frequency bins at this image size (see :func:`scaled_radius`).
        low_band_amplitude: amplitude given to the low-band bins (official code: 1; 0 is nearly the same).
    """
    if x.ndim < 2 or x.is_complex():
        raise ValueError(f"high_pass: expected real [..., H, W] images, got {tuple(x.shape)} {x.dtype}")
    dims = (-2, -1)
    # float64 keeps x_s within ~1e-12 of the exact formula (float32 FFTs drift by ~1e-6 at 128 px)
    spectrum = torch.fft.fftshift(torch.fft.fft2(x.double(), dim=dims), dim=dims)
    band = low_band(x.shape[-2], x.shape[-1], radius, x.device)
    amplitude = torch.where(band, torch.full_like(spectrum.real, low_band_amplitude), spectrum.abs())
    masked = torch.polar(amplitude, spectrum.angle())
    return torch.fft.ifft2(torch.fft.ifftshift(masked, dim=dims), dim=dims).real.to(x.dtype)
