"""Image statistics of pre-processed slices, to compare a dataset's tissue and lesions with another's.

Pure numpy functions on ``[N, H, W]`` arrays (images of one modality, soft brain weights, bool lesion labels),
as the loader's :class:`~datasets.slices.SliceSet` holds them. *Healthy tissue* is every pixel with brain weight
above :data:`HEALTHY_BRAIN` and no lesion label: the brain's soft edge after area resizing mixes tissue with
background and is left out. :mod:`datasets.dataset_statistics` applies these per modality and subject.
"""

from __future__ import annotations

import numpy as np

HEALTHY_BRAIN = 0.99
"""Brain weight a pixel needs to count as tissue (the resized brain mask is soft at the brain's edge)."""

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
"""Intensity quantiles reported for healthy tissue (numpy's linear interpolation)."""


def healthy_mask(brain: np.ndarray, labels: np.ndarray, threshold: float = HEALTHY_BRAIN) -> np.ndarray:
    """Pixels of healthy tissue: brain weight > ``threshold`` and no lesion label."""
    return (brain > threshold) & ~labels.astype(bool)


def lesion_tissue_mask(brain: np.ndarray, labels: np.ndarray, threshold: float = HEALTHY_BRAIN) -> np.ndarray:
    """Lesion pixels inside the brain: lesion label and brain weight > ``threshold``."""
    return (brain > threshold) & labels.astype(bool)


def intensity_summary(values: np.ndarray) -> dict[str, float | dict[str, float]]:
    """Mean, standard deviation (population, ``ddof=0``) and :data:`QUANTILES` of ``values``; NaN without any."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "quantiles": {str(q): nan for q in QUANTILES}}
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "quantiles": {str(q): float(x) for q, x in zip(QUANTILES, np.quantile(v, QUANTILES))},
    }


def neighbour_difference(images: np.ndarray, mask: np.ndarray) -> float:
    """Texture: the mean absolute difference of horizontal neighbours, ``|x[.., i, j+1] - x[.., i, j]|`` (along
    the last axis), over the pairs whose two pixels are both in ``mask``; NaN without such a pair.

    Smooth images give small values; fine structure and noise at the working resolution give large ones.
    """
    both = mask[..., 1:] & mask[..., :-1]
    if not both.any():
        return float("nan")
    diff = np.abs(np.diff(images.astype(np.float64), axis=-1))
    return float(diff[both].mean())


def contrast(images: np.ndarray, lesion: np.ndarray, healthy: np.ndarray) -> float:
    """Lesion-to-healthy contrast ``(mean lesion - mean healthy) / std healthy`` (population std) of the pixels
    in the two masks; NaN when either mask is empty or healthy tissue is constant."""
    if not lesion.any() or not healthy.any():
        return float("nan")
    h = images[healthy].astype(np.float64)
    sd = float(h.std())
    if not sd > 0:
        return float("nan")
    return float((images[lesion].astype(np.float64).mean() - h.mean()) / sd)


PATCH_COVERAGE = 0.9
"""Share of a spectrum patch's pixels that must be healthy tissue (real brain masks have holes where CSF is 0)."""


def patch_size(image_size: int) -> int:
    """Side of the square patches of :func:`radial_power_spectrum`: a quarter of the slice (16 px at 64 px,
    32 px at 128 px), so that patches cover the same anatomy at every working resolution."""
    return max(4, image_size // 4)


def tissue_patches(
    images: np.ndarray, mask: np.ndarray, size: int, coverage: float = PATCH_COVERAGE
) -> tuple[np.ndarray, np.ndarray]:
    """Every ``size x size`` patch, on a grid of stride ``size // 2`` from the top-left corner, whose share of
    pixels in ``mask`` is at least ``coverage``: the patches ``[P, size, size]`` (float64) and their masks
    ``[P, size, size]`` (bool; ``P`` may be 0)."""
    n, h, w = images.shape
    if h < size or w < size:
        return np.zeros((0, size, size)), np.zeros((0, size, size), dtype=bool)
    stride = max(1, size // 2)
    windows = np.lib.stride_tricks.sliding_window_view(images, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    inside = np.lib.stride_tricks.sliding_window_view(mask, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    keep = inside.mean(axis=(-2, -1)) >= coverage
    return windows[keep].astype(np.float64), inside[keep]


def radial_power_spectrum(patches: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of ``[P, S, S]`` patches of tissue whose pixels outside ``masks`` are
    ignored: ``power[k - 1]`` for radial frequency ``k = 1 .. S // 2`` (cycles per patch); NaN without a patch.

    Per patch: minus the mean of its masked pixels, zero outside the mask, times a 2-D Hann window ``w`` (outer
    product of ``np.hanning(S)``: no edge leakage); ``|FFT|^2`` divided by ``sum((w * mask)^2)``. That is
    averaged over patches, then over the frequencies ``(kx, ky)`` whose radius ``sqrt(kx^2 + ky^2)`` rounds to
    ``k``. White noise of variance s^2 reads about s^2 at every ``k`` whatever the mask (``k = 1`` a little low:
    the patch mean is removed).
    """
    p, s, _ = patches.shape
    half = s // 2
    if p == 0:
        return np.full(half, np.nan)
    m = masks.astype(np.float64)
    mean = (patches * m).sum(axis=(1, 2), keepdims=True) / m.sum(axis=(1, 2), keepdims=True)
    weight = np.outer(np.hanning(s), np.hanning(s)) * m
    power = np.abs(np.fft.fft2((patches - mean) * weight)) ** 2 / (weight**2).sum(axis=(1, 2), keepdims=True)
    return radial_average(power.mean(axis=0))[1 : half + 1]


def radial_average(power: np.ndarray) -> np.ndarray:
    """Mean of a square ``[S, S]`` array in FFT order over rings of integer radius ``round(|(kx, ky)|)``:
    ``out[k]`` for ``k = 0 .. S // 2`` (the corners beyond radius ``S // 2`` are left out)."""
    s = power.shape[0]
    f = np.fft.fftfreq(s) * s
    radius = np.rint(np.hypot(*np.meshgrid(f, f, indexing="ij"))).astype(np.int64)
    half = s // 2
    inside = radius <= half
    sums = np.bincount(radius[inside], weights=power[inside], minlength=half + 1)
    counts = np.bincount(radius[inside], minlength=half + 1)
    return sums / counts


SLOPE_FROM_K = 2
"""First radial frequency of the slope fit: removing each patch's mean also removes part of the power at k = 1
(white noise there reads about 10 % low), so k = 1 is shown but not fitted."""


def spectrum_slope(power: np.ndarray) -> float:
    """Slope of ``log power`` against ``log k`` for ``power[k - 1]`` over ``k >= SLOPE_FROM_K`` (least squares over
    the bins with positive, finite power): about 0 for white noise, more negative for smoother images; NaN with
    fewer than two usable bins."""
    k = np.arange(1, power.size + 1, dtype=np.float64)
    ok = np.isfinite(power) & (power > 0) & (k >= SLOPE_FROM_K)
    if ok.sum() < 2:
        return float("nan")
    slope, _ = np.polyfit(np.log(k[ok]), np.log(power[ok]), 1)
    return float(slope)


def lesion_shares(brain: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per slice that has a lesion pixel: lesion pixels divided by the slice's brain weight (sum of the soft
    brain mask), i.e. the share of the brain the lesion covers on that slice."""
    lesion = labels.astype(bool).reshape(len(labels), -1)
    has = lesion.any(axis=1)
    weight = brain.reshape(len(brain), -1).astype(np.float64).sum(axis=1)
    return lesion[has].sum(axis=1) / np.maximum(weight[has], 1e-12)


def density_histogram(values: np.ndarray, edges: np.ndarray) -> list[float]:
    """Histogram of ``values`` over ``edges`` as a density (integrates to the share of values inside the
    edges' span; values outside are not counted); zeros without values."""
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64).ravel(), bins=edges)
    total = max(int(np.asarray(values).size), 1)
    return [float(c) for c in counts / (total * np.diff(edges))]
