"""95 % bootstrap confidence intervals over subjects (protocol.md §3, "Uncertainty").

A resample draws ``K`` subjects with replacement from the ``K`` subjects of the test set; a subject drawn
``c`` times contributes all of its slices ``c`` times. The statistic of a resample is therefore a
weighted statistic over images with weight = how often the image's subject was drawn, which lets every
resample be computed at once with numpy (a ``[n_boot, K]`` matrix of draw counts).

The interval is the percentile interval (2.5th and 97.5th percentiles of the resampled statistic for
``level = 0.95``); the point estimate is the statistic on the original data. All functions return
``(point, low, high)`` as python floats.

The draws depend only on ``(n_subjects, n_boot, seed)`` and the subjects' order of first appearance, so
two methods evaluated on the same test set with the same seed see the same resamples (common random
numbers); for a paired comparison use :func:`bootstrap_paired_diff_ci` on per-image scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_N_BOOT = 1000
DEFAULT_LEVEL = 0.95


def subject_index(subjects: Sequence[str]) -> tuple[np.ndarray, int]:
    """Subject position ``[N]`` (0..K-1, in order of first appearance) of every image, and K."""
    positions: dict[str, int] = {}
    index = np.fromiter(
        (positions.setdefault(str(s), len(positions)) for s in subjects), dtype=np.int64, count=len(subjects)
    )
    return index, len(positions)


def draw_subject_counts(n_subjects: int, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> np.ndarray:
    """``[n_boot, n_subjects]`` int64: how often each subject is drawn in each resample (rows sum to K)."""
    if n_subjects <= 0:
        raise ValueError("draw_subject_counts: need at least one subject")
    if n_boot <= 0:
        raise ValueError(f"draw_subject_counts: n_boot must be > 0, got {n_boot}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subjects, size=(n_boot, n_subjects))
    flat = draws + n_subjects * np.arange(n_boot)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_subjects).reshape(n_boot, n_subjects)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    low, high = np.percentile(finite, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def _check_length(values: np.ndarray, subjects: Sequence[str], name: str) -> None:
    if values.shape != (len(subjects),):
        raise ValueError(f"{name}: {values.shape} values but {len(subjects)} subject ids (need one per image)")


def bootstrap_ratio_ci(
    numerators: np.ndarray | Sequence[float],
    denominators: np.ndarray | Sequence[float],
    subjects: Sequence[str],
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float, float]:
    """CI of ``sum(numerators) / sum(denominators)`` over images (e.g. pooled Dice from TP/FP/FN).

    A resample with a zero denominator gives NaN and is left out of the percentiles.
    """
    num = np.asarray(numerators, dtype=np.float64).reshape(-1)
    den = np.asarray(denominators, dtype=np.float64).reshape(-1)
    _check_length(num, subjects, "bootstrap_ratio_ci")
    _check_length(den, subjects, "bootstrap_ratio_ci")
    index, k = subject_index(subjects)
    num_s = np.bincount(index, weights=num, minlength=k)
    den_s = np.bincount(index, weights=den, minlength=k)
    total = den_s.sum()
    point = float(num_s.sum() / total) if total > 0 else math.nan
    counts = draw_subject_counts(k, n_boot, seed).astype(np.float64)
    top = counts @ num_s
    bottom = counts @ den_s
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), np.nan)
    return (point, *_interval(samples, level))


def bootstrap_mean_ci(
    scores: np.ndarray | Sequence[float],
    subjects: Sequence[str],
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float, float]:
    """CI of the mean of per-image ``scores`` (NaN scores are ignored, e.g. images outside a size bin).

    The mean of a resample is over all slices of the drawn subjects (a subject with several slices
    counts once per draw, with all of its slices).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    valid = np.isfinite(s)
    return bootstrap_ratio_ci(np.where(valid, s, 0.0), valid.astype(np.float64), subjects, n_boot, seed, level)


def bootstrap_paired_diff_ci(
    scores_a: np.ndarray | Sequence[float],
    scores_b: np.ndarray | Sequence[float],
    subjects: Sequence[str],
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float, float]:
    """CI of mean(a - b) for two methods' per-image scores on the same images (paired by subject)."""
    a = np.asarray(scores_a, dtype=np.float64).reshape(-1)
    b = np.asarray(scores_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"bootstrap_paired_diff_ci: {a.shape} vs {b.shape} scores")
    return bootstrap_mean_ci(a - b, subjects, n_boot, seed, level)


def bootstrap_statistic_ci(
    statistic: Callable[[np.ndarray], float],
    subjects: Sequence[str],
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float, float]:
    """CI of any weighted statistic (one python call per resample; for statistics that are not ratios).

    ``statistic(weights)`` receives float64 weights ``[N]`` per image (how often the image's subject was
    drawn; all ones for the point estimate) and returns a float.
    """
    index, k = subject_index(subjects)
    point = float(statistic(np.ones(len(subjects), dtype=np.float64)))
    counts = draw_subject_counts(k, n_boot, seed).astype(np.float64)
    samples = np.array([float(statistic(row[index])) for row in counts])
    return (point, *_interval(samples, level))


def interval_from_samples(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile interval of resampled statistics (NaN samples ignored)."""
    return _interval(np.asarray(samples, dtype=np.float64), level)
