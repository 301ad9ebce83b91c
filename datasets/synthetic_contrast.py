"""MR contrasts of the synthetic subjects: tissue and lesion intensities, bias field, Rician noise.

Intensities are drawn per subject and contrast as ratios to the subject's white-matter level
(:data:`TISSUE_RATIOS`, :data:`LESION_RATIOS`, calibrated with the statistics command against real scans at
64 and 128 px); a voxel's noise-free signal is the partial-volume mix of its GM/WM/CSF fractions, each tissue
modulated by the subject's within-tissue variation (:mod:`datasets.synthetic_texture`), lesions are blended in
with soft edges and a heterogeneous texture on two scales, then a
smooth multiplicative bias field (cubic polynomial, like TorchIO's ``RandomBiasField``) and Rician
noise are applied. Outside the brain the signal is exactly 0 (skull-stripped, as in BraTS), except in
the ATLAS layout, whose real data are not skull-stripped: there a crude head (CSF/dura, skull, scalp
shells; :func:`add_head`) surrounds the brain and the rest is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from scipy import ndimage as ndi

from datasets.synthetic_anatomy import AnatomyBox, interp_separable
from datasets.synthetic_lesions import ENHANCING, NECROSIS, OEDEMA, STROKE, smooth_noise

#: (low, high) ratio to WM of grey matter and CSF per contrast, drawn per subject.
TISSUE_RATIOS: dict[str, dict[str, tuple[float, float]]] = {
    "t1": {"gm": (0.52, 0.66), "csf": (0.12, 0.25)},
    "t1ce": {"gm": (0.55, 0.69), "csf": (0.15, 0.30)},
    "t2": {"gm": (1.45, 1.80), "csf": (3.0, 4.3)},
    "flair": {"gm": (1.05, 1.25), "csf": (0.25, 0.40)},
    "dwi": {"gm": (1.08, 1.30), "csf": (0.25, 0.40)},
}
#: Relative strength of the within-tissue inhomogeneity per contrast (calibrated on real scans: T2 has the most
#: fine structure for its intensity spread).
INHOMOGENEITY_SCALE: dict[str, float] = {"t1": 1.0, "t1ce": 1.0, "t2": 1.4, "flair": 1.0, "dwi": 1.0}
#: (low, high) ratio to WM of each lesion compartment per contrast, drawn per subject.
LESION_RATIOS: dict[int, dict[str, tuple[float, float]]] = {
    OEDEMA: {"flair": (1.3, 1.8), "t2": (2.0, 2.8), "t1": (0.6, 0.8), "t1ce": (0.62, 0.82), "dwi": (1.0, 1.3)},
    ENHANCING: {"flair": (1.2, 1.6), "t2": (1.6, 2.2), "t1": (0.6, 0.8), "t1ce": (1.4, 2.0), "dwi": (1.1, 1.5)},
    NECROSIS: {"flair": (0.8, 1.3), "t2": (3.0, 4.5), "t1": (0.35, 0.55), "t1ce": (0.35, 0.55), "dwi": (0.4, 0.8)},
    STROKE: {"flair": (1.3, 1.8), "t2": (2.0, 3.0), "t1": (0.45, 0.75), "t1ce": (0.45, 0.75), "dwi": (1.6, 2.6)},
}
#: Crude head of the ATLAS layout (T1): (outer distance from the brain in mm, ratio to WM) per shell.
HEAD_SHELLS = ((2.5, 0.25), (8.0, 0.08), (13.0, 0.85))
INT16_MAX = 32767


@dataclass(frozen=True)
class Contrast:
    """One contrast of one subject: tissue levels, lesion ratios, bias coefficients, noise."""

    name: str
    wm: float  # white-matter level (arbitrary scanner units, as in BraTS)
    gm_ratio: float
    csf_ratio: float
    lesion_ratios: dict[int, float]
    bias: np.ndarray  # [4, 4, 4] polynomial coefficients c_ijk of x^i y^j z^k (i+j+k <= 3)
    noise_sigma: float  # Rician noise std, same units as ``wm``
    heterogeneity: float  # lesion texture amplitude (relative)
    inhomogeneity: float  # std of the log intensity variation inside each tissue class

    @staticmethod
    def draw(
        rng: np.random.Generator,
        name: str,
        noise_level: float,
        bias_strength: float,
        lesion_contrast: float,
        inhomogeneity: float,
    ) -> Contrast:
        tissue = TISSUE_RATIOS[name]
        wm = rng.uniform(300.0, 1200.0)
        gm = rng.uniform(*tissue["gm"])
        csf = rng.uniform(*tissue["csf"])
        lesion = {c: 1.0 + (rng.uniform(*r[name]) - 1.0) * lesion_contrast for c, r in LESION_RATIOS.items()}
        bias = np.zeros((4, 4, 4))
        for i in range(4):
            for j in range(4 - i):
                for k in range(4 - i - j):
                    if i + j + k:
                        bias[i, j, k] = rng.uniform(-1.0, 1.0) * bias_strength / (i + j + k)
        sigma = noise_level * wm * rng.uniform(0.7, 1.3)
        heterogeneity = rng.uniform(0.08, 0.18)
        spread = inhomogeneity * INHOMOGENEITY_SCALE[name] * rng.uniform(0.7, 1.3)
        return Contrast(
            name, float(wm), float(gm), float(csf), lesion, bias, float(sigma), float(heterogeneity), float(spread)
        )


def draw_contrasts(
    rng: np.random.Generator,
    modalities: tuple[str, ...],
    noise_level: float,
    bias_strength: float,
    lesion_contrast: float,
    inhomogeneity: float,
) -> dict[str, Contrast]:
    return {m: Contrast.draw(rng, m, noise_level, bias_strength, lesion_contrast, inhomogeneity) for m in modalities}


@dataclass(frozen=True)
class BrainVoxels:
    """The brain voxels of a subject as 1-D arrays (``np.nonzero`` order of ``anatomy.brain``)."""

    coords: tuple[np.ndarray, np.ndarray, np.ndarray]  # full-grid indices
    index: np.ndarray  # int32 on the anatomy box: position in the 1-D arrays, -1 outside the brain
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    modulation: np.ndarray  # [3 (GM, WM, CSF), n]: unit-variance relative intensity variation per tissue

    @staticmethod
    def of(anatomy: AnatomyBox, modulation: np.ndarray) -> BrainVoxels:
        """The brain voxels of ``anatomy`` and their tissue variation (``modulation``: ``[3, *box shape]``)."""
        inside = np.nonzero(anatomy.brain)
        index = np.full(anatomy.brain.shape, -1, np.int32)
        index[inside] = np.arange(inside[0].size, dtype=np.int32)
        x, y, z = (v + s.start for v, s in zip(inside, anatomy.box))
        tissue = (anatomy.gm[inside], anatomy.wm[inside], anatomy.csf[inside])
        return BrainVoxels((x, y, z), index, *tissue, modulation[:, inside[0], inside[1], inside[2]])


def lesion_region(classes: np.ndarray, bbox: tuple[slice, ...], pad: int = 3) -> tuple[slice, ...] | None:
    """Bounding box (relative to ``bbox``) of all lesion voxels, padded, within ``bbox``."""
    idx = np.argwhere(classes[bbox] > 0)
    if idx.size == 0:
        return None
    lo, hi = idx.min(0) - pad, idx.max(0) + pad + 1
    return tuple(slice(max(0, int(a)), min(s.stop - s.start, int(b))) for a, b, s in zip(lo, hi, bbox))


def render(
    contrast: Contrast,
    brain: BrainVoxels,
    box: tuple[slice, ...],
    classes: np.ndarray,
    shape: tuple[int, int, int],
    texture_seed: int,
    noise_rng: np.random.Generator,
    head: tuple[tuple[np.ndarray, ...], np.ndarray] | None = None,
) -> np.ndarray:
    """The int16 volume of one contrast.

    Args:
        brain: the brain voxels and their tissue fractions; ``box``: the anatomy box they index.
        classes: the subject's lesion classes on the full grid.
        head: (ATLAS) voxels outside the brain and their T1 ratios to WM (:func:`add_head`).
    """
    gm, wm, csf = np.exp(np.float32(contrast.inhomogeneity) * brain.modulation)
    signal = contrast.wm * (brain.wm * wm + contrast.gm_ratio * brain.gm * gm + contrast.csf_ratio * brain.csf * csf)
    region = lesion_region(classes, box)
    if region is not None:
        at = brain.index[region]
        inside = at >= 0
        dense = np.zeros(at.shape, np.float32)
        dense[inside] = signal[at[inside]]
        _paint(dense, classes[box][region], inside, contrast, texture_seed)
        signal[at[inside]] = dense[inside]
    coords: tuple[np.ndarray, ...] = brain.coords
    if head is not None:
        coords = tuple(np.concatenate([c, h]) for c, h in zip(coords, head[0]))
        signal = np.concatenate([signal, np.float32(contrast.wm) * head[1]])
    signal *= np.exp(_log_bias(contrast.bias, coords, shape))
    noise = noise_rng.standard_normal((2, signal.size), dtype=np.float32) * np.float32(contrast.noise_sigma)
    signal = np.sqrt((signal + noise[0]) ** 2 + noise[1] ** 2)  # Rician magnitude
    volume = np.zeros(shape, np.int16)
    volume[coords] = np.clip(np.rint(signal), 1, INT16_MAX).astype(np.int16)
    return volume


def _paint(signal: np.ndarray, classes: np.ndarray, brain: np.ndarray, contrast: Contrast, texture_seed: int) -> None:
    """Blend the lesion compartments into the dense ``signal`` with soft edges and a texture on two scales."""
    lut = np.zeros(8, np.float32)
    for c, ratio in contrast.lesion_ratios.items():
        lut[c] = contrast.wm * ratio
    mask = (classes > 0).astype(np.float32)
    weight = ndi.gaussian_filter(mask, 0.7)
    level = ndi.gaussian_filter(lut[classes] * mask, 0.7) / np.maximum(weight, 1e-3)
    box = cast(tuple[slice, slice, slice], tuple(slice(0, n) for n in classes.shape))  # classes is 3-D
    fine, coarse = (smooth_noise(texture_seed + k, box, spacing, channels=1)[0] for k, spacing in enumerate((1.5, 5.0)))
    level *= 1.0 + np.float32(contrast.heterogeneity / np.sqrt(2.0)) * (fine + coarse)  # heterogeneous interior
    weight = np.minimum(weight * 1.5, 1.0) * brain  # ~1 inside the label, soft over ~1 voxel outside
    signal *= 1.0 - weight
    signal += level * weight


def _log_bias(coeffs: np.ndarray, coords: tuple[np.ndarray, ...], shape: tuple[int, int, int]) -> np.ndarray:
    """Log bias field sum c_ijk x^i y^j z^k (x, y, z scaled to [-1, 1] over the grid) at ``coords``."""
    powers = []
    for n in shape:
        u = (2.0 * np.arange(n) / (n - 1) - 1.0).astype(np.float32)
        powers.append(np.stack([u**p for p in range(4)]))
    x, y, z = powers
    yz = np.einsum("ijk,jy,kz->iyz", coeffs.astype(np.float32), y, z)  # [4, ny, nz]: small
    out = np.zeros(coords[0].shape, np.float32)
    for i in range(4):
        out += x[i][coords[0]] * yz[i][coords[1], coords[2]]
    return out


def add_head(brain_full: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Voxels of a crude head around the brain and their T1 ratios to WM (ATLAS layout).

    Distances are computed on a 2 mm grid and interpolated; returns (indices per axis, ratios).
    """
    coarse = brain_full[::2, ::2, ::2]
    dist = ndi.distance_transform_edt(~coarse).astype(np.float32) * 2.0
    pos = [np.arange(n) / 2.0 for n in brain_full.shape]
    dist_full = interp_separable(dist, pos)
    outer = HEAD_SHELLS[-1][0]
    shell = (~brain_full) & (dist_full < outer)
    d = dist_full[shell]
    ratio = np.full(d.shape, HEAD_SHELLS[-1][1], np.float32)
    for edge, value in reversed(HEAD_SHELLS[:-1]):
        ratio[d < edge] = value
    ratio *= np.clip((outer - d) / 1.5, 0.0, 1.0)  # soft outer edge of the scalp
    keep = ratio > 0
    return tuple(i[keep] for i in np.nonzero(shell)), ratio[keep]
