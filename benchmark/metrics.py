"""The one metric implementation of the benchmark (protocol.md §3): pure functions on torch tensors.

Nothing here knows which method produced a map. Every function takes ``[N, H, W]`` stacks (``[N, 1, H,
W]`` is accepted and squeezed) on any device and returns CPU results (python floats, CPU tensors or
numpy arrays).

Conventions (each one is tested in ``tests/unit/test_metrics.py``):

* **Brain region.** A pixel is *brain* where ``brain > 0``. The brain mask is soft after area resizing;
  its soft edge is still brain, so ``> 0`` (not ``> 0.5``) is the region where a prediction may be
  positive. Predictions are always intersected with it (``pred & (brain > 0)``). Labels are *not*
  masked: a lesion pixel outside the brain region counts as a false negative for Dice, sensitivity and
  precision (it cannot be predicted, and hiding it would flatter every method equally). The
  threshold-free AUROC/AUPRC are computed over brain pixels only (protocol §3), so such pixels do not
  enter them. (The official IterMask² code multiplies by the soft mask and then thresholds at 0.5 inside
  ``dice_score`` but not inside sensitivity/precision — inconsistent; we use one region everywhere.)
* **Empty masks.** With TP, FP, FN counted per image (brain-restricted prediction):

  - Dice = 2TP / (2TP + FP + FN); empty prediction *and* empty label -> 1; exactly one empty -> 0.
  - Sensitivity = TP / (TP + FN); empty label -> 1 if the prediction is empty too, else 0.
  - Precision = TP / (TP + FP); empty prediction -> 0 when the label has a lesion (as in the official
    code), 1 when the label is empty too.

  So "both empty" is perfect agreement (1) for all three and every other 0/0 is 0. Test slices always
  contain a lesion (protocol §2), so the both-empty case only matters for hand-made inputs; for every
  real test slice precision of an empty prediction is 0, exactly as the official code.
* **Per-image vs pooled.** ``dice``/``sens``/``prec`` are per-image values averaged over images (the
  paper's convention); ``*_pooled`` sum TP/FP/FN over all images first.
* **Size bins.** Lesion pixels per slice (label sum, at the slice's own resolution) against the bounds
  200 and 800 given for 128x128, scaled by area: ``bound * H * W / 128**2`` (64x64 -> 50 and 200).
  small: ``n < b1``; medium: ``b1 <= n < b2``; large: ``n >= b2`` (as the official code).
* **SSIM.** torchmetrics' functional SSIM (gaussian window, sigma 1.5 -> 11x11, k1 0.01, k2 0.03). Its
  own default ``data_range=None`` is ``max(range(preds), range(target))`` of the tensors passed (i.e. of
  whatever batch it is called on); we never rely on it and always pass a data_range fixed for the whole
  set:

  - ``ssim_paper``: the official recipe: both images multiplied by ``brain * (1 - label)`` (the soft
    brain mask as given), SSIM averaged over the whole image, then over images; data_range = max - min
    of ``reconstruction * brain`` over the whole set (what the official test.py passes). The many
    zeroed pixels are identical in both images and score SSIM = 1, which inflates it.
  - ``ssim_normal``: SSIM map between the unmodified input and the reconstruction whose pixels outside
    normal brain (background and lesion) are replaced by the input's, so only differences in normal
    tissue count; averaged over normal-brain pixels (``brain > 0 & ~label``) of each image, then over
    images. data_range = max - min of the *input* over the brain pixels of the whole set, which does not
    depend on the method, so every method is scored with the same SSIM constants.
* **AUROC / AUPRC.** Pooled over all brain pixels of the set; sort-based, ties handled as scikit-learn's
  ``roc_auc_score`` (trapezoidal ROC) and ``average_precision_score`` (step-wise AP). NaN when the
  brain pixels contain no positive (or, for AUROC, no negative) pixel. Their bootstrap CIs
  (:func:`pixel_auc_ci`) histogram the scores per subject (exact up to 16384 distinct values,
  quantile bins beyond), so 1000 resamples of a BraTS-sized test set take about a second on a CPU.
* **CIs.** 95 % percentile bootstrap over subjects (:mod:`benchmark.bootstrap`); every metric of one
  call uses the same resamples (same seed), and so do two methods on the same test set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure as _tm_ssim

from benchmark.bootstrap import (
    DEFAULT_LEVEL,
    bootstrap_mean_ci,
    bootstrap_ratio_ci,
    draw_subject_counts,
    interval_from_samples,
    subject_index,
)

#: Size-bin bounds (lesion pixels) at the reference resolution below.
SIZE_BOUNDS: tuple[float, float] = (200.0, 800.0)
#: The resolution at which :data:`SIZE_BOUNDS` are defined.
REFERENCE_SHAPE: tuple[int, int] = (128, 128)
SIZE_BINS: tuple[str, str, str] = ("small", "medium", "large")

#: SSIM settings of the official code (torchmetrics defaults, stated explicitly).
SSIM_SIGMA = 1.5
SSIM_KERNEL = 11
SSIM_K1 = 0.01
SSIM_K2 = 0.03

#: Headline metrics that :func:`compute_metrics` puts in ``MetricResult.values`` (always all of them;
#: NaN where not computable, e.g. SSIM without a reconstruction).
HEADLINE_KEYS: tuple[str, ...] = (
    "dice", "sens", "prec",
    "dice_pooled", "sens_pooled", "prec_pooled",
    "dice_small", "dice_medium", "dice_large",
    "ssim_paper", "ssim_normal",
    "auroc", "auprc",
)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------
def as_nhw(x: torch.Tensor, name: str = "tensor") -> torch.Tensor:
    """``[N, H, W]`` view of ``x`` (``[N, 1, H, W]`` is squeezed); a clear error for other shapes."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name}: expected [N, H, W] or [N, 1, H, W], got shape {tuple(x.shape)}")
    return x


def brain_region(brain: torch.Tensor) -> torch.Tensor:
    """Boolean ``[N, H, W]`` brain region: ``brain > 0`` (the soft edge counts as brain)."""
    brain = as_nhw(brain, "brain")
    return brain if brain.dtype == torch.bool else brain > 0


def _as_bool(x: torch.Tensor, name: str) -> torch.Tensor:
    x = as_nhw(x, name)
    return x if x.dtype == torch.bool else x > 0


def _check_same(shape: torch.Size, **others: torch.Tensor | None) -> None:
    for name, t in others.items():
        if t is not None and t.shape != shape:
            raise ValueError(f"{name}: shape {tuple(t.shape)} does not match {tuple(shape)}")


def _prepare(pred: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (brain-restricted prediction, label) on the prediction's device."""
    p = _as_bool(pred, "pred")
    y = _as_bool(labels, "labels").to(p.device)
    _check_same(p.shape, labels=y)
    if brain is not None:
        b = brain_region(brain).to(p.device)
        _check_same(p.shape, brain=b)
        p = p & b
    return p, y


# --------------------------------------------------------------------------------------------------
# overlap metrics
# --------------------------------------------------------------------------------------------------
def confusion_counts(
    pred: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image (TP, FP, FN) as int64 CPU tensors ``[N]``; ``pred`` is restricted to ``brain > 0``."""
    p, y = _prepare(pred, labels, brain)
    tp = (p & y).flatten(1).sum(1)
    fp = (p & ~y).flatten(1).sum(1)
    fn = (~p & y).flatten(1).sum(1)
    return tp.cpu().long(), fp.cpu().long(), fn.cpu().long()


def _ratio(num: torch.Tensor, den: torch.Tensor, both_empty: torch.Tensor) -> torch.Tensor:
    """num / den in float64; 0/0 -> 1 where ``both_empty`` else 0."""
    num = num.double()
    den = den.double()
    out = torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))
    return torch.where((den == 0) & both_empty, torch.ones_like(out), out)


def dice_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """Dice = 2TP / (2TP + FP + FN); both masks empty -> 1, exactly one empty -> 0 (float64)."""
    tp, fp, fn = (torch.as_tensor(v) for v in (tp, fp, fn))
    return _ratio(2 * tp, 2 * tp + fp + fn, (tp + fp + fn) == 0)


def sensitivity_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """TP / (TP + FN); empty label -> 1 if the prediction is empty too, else 0 (float64)."""
    tp, fp, fn = (torch.as_tensor(v) for v in (tp, fp, fn))
    return _ratio(tp, tp + fn, (tp + fp + fn) == 0)


def precision_from_counts(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
    """TP / (TP + FP); empty prediction -> 0 if the label has a lesion, 1 if it is empty too (float64)."""
    tp, fp, fn = (torch.as_tensor(v) for v in (tp, fp, fn))
    return _ratio(tp, tp + fp, (tp + fp + fn) == 0)


def dice_per_image(pred: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image Dice, float64 CPU ``[N]`` (conventions in the module docstring)."""
    return dice_from_counts(*confusion_counts(pred, labels, brain))


def sensitivity_per_image(pred: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image sensitivity (recall), float64 CPU ``[N]``."""
    return sensitivity_from_counts(*confusion_counts(pred, labels, brain))


def precision_per_image(pred: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image precision, float64 CPU ``[N]``."""
    return precision_from_counts(*confusion_counts(pred, labels, brain))


def pooled_scores(pred: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor | None = None) -> dict[str, float]:
    """Pooled-pixel ``{"dice_pooled", "sens_pooled", "prec_pooled"}``: TP/FP/FN summed over all images."""
    tp, fp, fn = (c.sum().reshape(1) for c in confusion_counts(pred, labels, brain))
    return {
        "dice_pooled": float(dice_from_counts(tp, fp, fn)[0]),
        "sens_pooled": float(sensitivity_from_counts(tp, fp, fn)[0]),
        "prec_pooled": float(precision_from_counts(tp, fp, fn)[0]),
    }


# --------------------------------------------------------------------------------------------------
# lesion-size strata
# --------------------------------------------------------------------------------------------------
def scaled_size_bounds(
    shape: Sequence[int],
    bounds: Sequence[float] = SIZE_BOUNDS,
    reference_shape: Sequence[int] = REFERENCE_SHAPE,
) -> tuple[float, float]:
    """``bounds`` (pixels at ``reference_shape``) scaled by area to ``shape`` = (H, W)."""
    factor = (shape[-2] * shape[-1]) / (reference_shape[0] * reference_shape[1])
    return float(bounds[0]) * factor, float(bounds[1]) * factor


def lesion_size_bins(
    labels: torch.Tensor,
    bounds: Sequence[float] = SIZE_BOUNDS,
    reference_shape: Sequence[int] = REFERENCE_SHAPE,
) -> torch.Tensor:
    """Bin index per slice, int64 CPU ``[N]``: 0 small (< b1), 1 medium (b1 <= n < b2), 2 large (>= b2).

    ``n`` is the slice's number of lesion pixels; the bounds are scaled to the slice size by area.
    """
    y = _as_bool(labels, "labels")
    b1, b2 = scaled_size_bounds(y.shape, bounds, reference_shape)
    n = y.flatten(1).sum(1).cpu().double()
    return (n >= b1).long() + (n >= b2).long()


def size_stratified_dice(
    dice: torch.Tensor | np.ndarray,
    labels: torch.Tensor,
    bounds: Sequence[float] = SIZE_BOUNDS,
    reference_shape: Sequence[int] = REFERENCE_SHAPE,
) -> dict[str, float]:
    """Mean per-image Dice per lesion-size bin and the number of slices per bin.

    Args:
        dice: per-image Dice ``[N]`` (e.g. from :func:`dice_per_image`).
        labels: the lesion masks ``[N, H, W]`` that define the bins.

    Returns:
        ``{"dice_small", "dice_medium", "dice_large", "n_small", "n_medium", "n_large"}``; the mean of an
        empty bin is NaN, counts are floats (so the dict stays float-valued).
    """
    d = torch.as_tensor(np.asarray(dice, dtype=np.float64)).flatten()
    bins = lesion_size_bins(labels, bounds, reference_shape)
    if bins.numel() != d.numel():
        raise ValueError(f"size_stratified_dice: {d.numel()} Dice values but {bins.numel()} label slices")
    out: dict[str, float] = {}
    for index, name in enumerate(SIZE_BINS):
        sel = d[bins == index]
        out[f"dice_{name}"] = float(sel.mean()) if sel.numel() else math.nan
        out[f"n_{name}"] = float(sel.numel())
    return out


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------
def _ssim_chunks(
    preds: torch.Tensor, target: torch.Tensor, data_range: float, chunk: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-image SSIM ``[N]`` and the SSIM maps (list of ``[n, H, W]`` chunks), in float32 or float64."""
    scores, maps = [], []
    for start in range(0, preds.shape[0], chunk):
        p = preds[start : start + chunk, None]
        t = target[start : start + chunk, None]
        s, m = _tm_ssim(
            p, t,
            gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=SSIM_KERNEL,
            reduction="none", data_range=float(data_range), k1=SSIM_K1, k2=SSIM_K2,
            return_full_image=True,
        )  # fmt: skip
        scores.append(s.reshape(-1))
        maps.append(m[:, 0])
    return torch.cat(scores), maps


def _float_images(inputs: torch.Tensor, reconstruction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = as_nhw(inputs, "inputs")
    r = as_nhw(reconstruction, "reconstruction").to(x.device)
    _check_same(x.shape, reconstruction=r)
    dtype = torch.promote_types(x.dtype, r.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    return x.to(dtype), r.to(dtype)


def ssim_paper(
    inputs: torch.Tensor,
    reconstruction: torch.Tensor,
    labels: torch.Tensor,
    brain: torch.Tensor,
    data_range: float | None = None,
    chunk: int = 256,
) -> torch.Tensor:
    """Per-image SSIM the official way; its mean over images is the headline ``ssim_paper``.

    Both images are multiplied by ``brain * (1 - label)`` (soft brain mask as given) and SSIM is averaged
    over the whole image. ``data_range`` defaults to max - min of ``reconstruction * brain`` over the
    whole set (official test.py). Returns float64 CPU ``[N]``.
    """
    x, r = _float_images(inputs, reconstruction)
    y = _as_bool(labels, "labels").to(x.device)
    b = as_nhw(brain, "brain").to(x.device, x.dtype)
    _check_same(x.shape, labels=y, brain=b)
    keep = b * (~y).to(x.dtype)
    if data_range is None:
        rb = r * b
        data_range = float(rb.max() - rb.min())
        if not data_range > 0:  # constant reconstruction: SSIM undefined
            return torch.full((x.shape[0],), math.nan, dtype=torch.float64)
    if not data_range > 0:
        raise ValueError(f"ssim_paper: data_range must be > 0, got {data_range}")
    scores, _ = _ssim_chunks(r * keep, x * keep, data_range, chunk)
    return scores.double().cpu()


def ssim_normal(
    inputs: torch.Tensor,
    reconstruction: torch.Tensor,
    labels: torch.Tensor,
    brain: torch.Tensor,
    data_range: float | None = None,
    chunk: int = 256,
) -> torch.Tensor:
    """Per-image mean of the SSIM map over normal-brain pixels (``brain > 0`` and not lesion).

    The reconstruction's pixels outside normal brain are replaced by the input's, so only normal-tissue
    differences enter the map. ``data_range`` defaults to max - min of the input over the brain pixels
    of the whole set. Returns float64 CPU ``[N]`` (NaN for an image without normal-brain pixels).
    """
    x, r = _float_images(inputs, reconstruction)
    y = _as_bool(labels, "labels").to(x.device)
    region = brain_region(brain).to(x.device)
    _check_same(x.shape, labels=y, brain=region)
    normal = region & ~y
    if data_range is None:
        if not bool(region.any()):
            raise ValueError("ssim_normal: no brain pixel in the set, cannot derive data_range")
        xb = x[region]
        data_range = float(xb.max() - xb.min())
        if not data_range > 0:  # constant input: SSIM undefined
            return torch.full((x.shape[0],), math.nan, dtype=torch.float64)
    if not data_range > 0:
        raise ValueError(f"ssim_normal: data_range must be > 0, got {data_range}")
    r = torch.where(normal, r, x)
    _, maps = _ssim_chunks(r, x, data_range, chunk)
    full = torch.cat(maps).double()
    w = normal.double()
    count = w.flatten(1).sum(1)
    total = (full * w).flatten(1).sum(1)
    out = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))
    return out.cpu()


# --------------------------------------------------------------------------------------------------
# threshold-free pixel metrics
# --------------------------------------------------------------------------------------------------
def _distinct_counts(
    scores: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One sort of flat ``scores``: (distinct values ascending, each score's index among them, positives and
    negatives per distinct value as int64). Raises ValueError for mismatched sizes or non-finite scores."""
    s = scores.reshape(-1)
    t = targets.reshape(-1).to(s.device).bool()
    if s.numel() != t.numel():
        raise ValueError(f"{s.numel()} scores but {t.numel()} targets")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("anomaly scores contain NaN or inf")
    distinct, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    pos = torch.bincount(inverse[t], minlength=distinct.numel())
    return distinct, inverse, pos, counts - pos


def _auc_from_distinct(pos: torch.Tensor, neg: torch.Tensor) -> tuple[float, float]:
    """(AUROC, AP) from positives / negatives per distinct score (ascending order)."""
    tps = torch.cumsum(pos.flip(0), 0).double()
    fps = torch.cumsum(neg.flip(0), 0).double()
    auroc, ap = _auc_from_cumulative(tps[None], fps[None])
    return float(auroc[0]), float(ap[0])


def _auc_from_cumulative(tps: torch.Tensor, fps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(AUROC, AP) per row from cumulative weighted TP/FP counts ``[B, E]`` at descending distinct
    thresholds (the last column holds the totals). NaN where undefined."""
    p_total = tps[:, -1:]
    n_total = fps[:, -1:]
    zero = torch.zeros_like(p_total)
    safe_p = torch.where(p_total > 0, p_total, torch.ones_like(p_total))
    safe_n = torch.where(n_total > 0, n_total, torch.ones_like(n_total))
    tpr = torch.cat([zero, tps / safe_p], dim=1)
    fpr = torch.cat([zero, fps / safe_n], dim=1)
    auroc = torch.trapezoid(tpr, fpr, dim=1)
    predicted = tps + fps
    precision = torch.where(predicted > 0, tps / torch.where(predicted > 0, predicted, 1.0), 0.0)
    recall = torch.cat([zero, tps / safe_p], dim=1)
    ap = (torch.diff(recall, dim=1) * precision).sum(1)
    nan = torch.full_like(auroc, math.nan)
    ap = torch.where(p_total[:, 0] > 0, ap, nan)
    auroc = torch.where((p_total[:, 0] > 0) & (n_total[:, 0] > 0), auroc, nan)
    return auroc, ap


def _auc_from_histograms(pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(AUROC, AP) per row from weighted positives / negatives per score bin ``[B, E]`` in descending score
    order: the trapezoid and step sums of :func:`_auc_from_cumulative` in closed form, fewer passes
    (AUROC = sum_j neg_j (TP_j - pos_j / 2) / (P N), AP = sum_j pos_j TP_j / (TP_j + FP_j) / P, with TP / FP
    cumulative; equal up to float summation order). NaN where undefined."""
    tps = torch.cumsum(pos, 1)
    fps = torch.cumsum(neg, 1)
    p_total, n_total = tps[:, -1], fps[:, -1]
    auroc = ((tps - 0.5 * pos) * neg).sum(1) / (p_total * n_total)
    predicted = tps + fps
    ap = (pos * tps / torch.where(predicted > 0, predicted, 1.0)).sum(1) / p_total
    nan = torch.full_like(auroc, math.nan)
    return torch.where((p_total > 0) & (n_total > 0), auroc, nan), torch.where(p_total > 0, ap, nan)


def roc_pr_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """(AUROC, average precision) of flat ``scores`` vs boolean ``targets``; sort-based, exact with ties.

    Matches scikit-learn's ``roc_auc_score`` (trapezoid over the ROC at distinct thresholds) and
    ``average_precision_score`` (sum of (R_n - R_{n-1}) P_n). NaN where undefined (no positive; for
    AUROC also no negative).
    """
    if scores.numel() == 0:
        return math.nan, math.nan
    _, _, pos, neg = _distinct_counts(scores, targets)
    return _auc_from_distinct(pos, neg)


def pixel_auc(maps: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor) -> tuple[float, float]:
    """(AUROC, AUPRC) over all brain pixels (``brain > 0``) of the set, pooled."""
    m = as_nhw(maps, "maps")
    region = brain_region(brain).to(m.device)
    y = _as_bool(labels, "labels").to(m.device)
    _check_same(m.shape, labels=y, brain=region)
    return roc_pr_from_scores(m[region], y[region])


def pixel_auroc(maps: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor) -> float:
    """Pixel-level AUROC over all brain pixels of the set."""
    return pixel_auc(maps, labels, brain)[0]


def pixel_auprc(maps: torch.Tensor, labels: torch.Tensor, brain: torch.Tensor) -> float:
    """Pixel-level AUPRC (average precision) over all brain pixels of the set."""
    return pixel_auc(maps, labels, brain)[1]


def _score_bins(
    distinct: torch.Tensor, inverse: torch.Tensor, counts: torch.Tensor, max_bins: int
) -> tuple[torch.Tensor, int]:
    """Bin index (ascending score order) per score from :func:`_distinct_counts`' output; exact (one bin per
    distinct value) when there are at most ``max_bins`` distinct values, otherwise quantile bins whose edges
    are the sorted scores at ``max_bins - 1`` evenly spaced positions. Equal scores share a bin."""
    if distinct.numel() <= max_bins:
        return inverse, distinct.numel()
    n = int(counts.sum())
    positions = torch.linspace(0, n - 1, max_bins + 1, device=distinct.device).long()[1:-1]
    # the score at sorted position p is the first distinct value whose cumulative count exceeds p
    at = torch.searchsorted(torch.cumsum(counts, 0), positions, right=True)
    edges = torch.unique(distinct[at], sorted=True)
    return torch.bucketize(distinct, edges, right=True)[inverse], edges.numel() + 1


def pixel_auc_ci(
    maps: torch.Tensor,
    labels: torch.Tensor,
    brain: torch.Tensor,
    subjects: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    max_bins: int = 16384,
) -> dict[str, tuple[float, float, float]]:
    """Subject-bootstrap CIs of pixel AUROC and AUPRC: ``{"auroc": (point, low, high), "auprc": ...}``.

    The point estimate is exact (:func:`pixel_auc`). For the resamples, the brain pixels' scores are put
    into at most ``max_bins`` bins (one per distinct value when there are no more than that, which makes
    the resamples exact too; otherwise quantile bins, an approximation of order 1 / max_bins) and
    histogrammed per subject; a resample's curves are then ``draw_counts @ histograms`` followed by a
    cumulative sum — all resamples at once. One sort of the brain scores (``torch.unique``) serves the
    point estimate and the bins. Draws are those of :mod:`benchmark.bootstrap` with the same seed.
    """
    m = as_nhw(maps, "maps")
    region = brain_region(brain).to(m.device)
    y = _as_bool(labels, "labels").to(m.device)
    _check_same(m.shape, labels=y, brain=region)
    if len(subjects) != m.shape[0]:
        raise ValueError(f"pixel_auc_ci: {m.shape[0]} images but {len(subjects)} subject ids")
    scores = m[region]
    targets = y[region]
    nan3 = (math.nan, math.nan, math.nan)
    if scores.numel() == 0:
        return {"auroc": nan3, "auprc": nan3}
    distinct, inverse, pos_d, neg_d = _distinct_counts(scores, targets)
    point = _auc_from_distinct(pos_d, neg_d)
    bins, n_bins = _score_bins(distinct, inverse, pos_d + neg_d, max_bins)
    image_index, k = subject_index(subjects)
    subject_of_image = torch.as_tensor(image_index, device=m.device)
    # pixels of m[region] are image-major: the subject of each pixel, then one histogram cell per
    # (subject, bin, target) in one bincount
    cell = torch.repeat_interleave(subject_of_image, region.flatten(1).sum(1))
    cell.mul_(n_bins).add_(bins).mul_(2).add_(targets.long())
    hist = torch.bincount(cell, minlength=k * n_bins * 2).reshape(k, n_bins, 2).double()
    # descending score order: highest bin first
    pos, neg = hist[..., 1].flip(1).contiguous(), hist[..., 0].flip(1).contiguous()
    counts = torch.as_tensor(draw_subject_counts(k, n_boot, seed), dtype=torch.float64, device=m.device)
    chunk = max(1, 2**22 // n_bins)
    aurocs, aps = [], []
    for start in range(0, n_boot, chunk):
        c = counts[start : start + chunk]
        auroc, ap = _auc_from_histograms(c @ pos, c @ neg)
        aurocs.append(auroc)
        aps.append(ap)
    return {
        "auroc": (point[0], *interval_from_samples(torch.cat(aurocs).cpu().numpy(), level)),
        "auprc": (point[1], *interval_from_samples(torch.cat(aps).cpu().numpy(), level)),
    }


# --------------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------------
@dataclass
class MetricResult:
    """What :func:`compute_metrics` returns.

    Attributes:
        values: flat headline metrics (all of :data:`HEADLINE_KEYS`, plus ``n_small``, ``n_medium``,
            ``n_large``, ``n_images``, ``n_subjects``); NaN where not computable.
        per_image: numpy arrays ``[N]``: ``dice``, ``sens``, ``prec``, ``tp``, ``fp``, ``fn``,
            ``lesion_px``, ``size_bin`` (0 small / 1 medium / 2 large) and, with a reconstruction,
            ``ssim_paper``, ``ssim_normal``. For CIs and paired tests (same image order as the input).
        subjects: subject id of every image.
        ci: ``{metric: (mean, low, high)}`` 95 % bootstrap CIs over subjects for the headline metrics
            that have a value (empty when ``n_boot == 0``).
    """

    values: dict[str, float]
    per_image: dict[str, np.ndarray]
    subjects: tuple[str, ...]
    ci: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """``values`` plus ``<metric>_lo`` / ``<metric>_hi`` for every CI: one flat result-row dict."""
        out = dict(self.values)
        for key, (_, low, high) in self.ci.items():
            out[f"{key}_lo"] = low
            out[f"{key}_hi"] = high
        return out


@dataclass(frozen=True)
class ThresholdFreeMetrics:
    """The metrics of a prediction set that no threshold changes: SSIM of the reconstruction and pixel
    AUROC/AUPRC of the maps, with their CIs. They cost most of a cell's evaluation (SSIM's 11x11 windows, the
    pixel bootstrap), so a cell computes them once and every protocol's row reuses them
    (:func:`compute_metrics`'s ``threshold_free``)."""

    values: dict[str, float]  # ssim_paper, ssim_normal, auroc, auprc (NaN where not computable)
    per_image: dict[str, np.ndarray]  # ssim_paper, ssim_normal (with a reconstruction)
    ci: dict[str, tuple[float, float, float]]


def threshold_free_metrics(
    maps: torch.Tensor | None,
    labels: torch.Tensor,
    brain: torch.Tensor,
    *,
    inputs: torch.Tensor | None = None,
    reconstruction: torch.Tensor | None = None,
    subjects: Sequence[str] | None = None,
    ssim_paper_range: float | None = None,
    ssim_normal_range: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    pixel_ci: bool = True,
) -> ThresholdFreeMetrics:
    """SSIM (with ``inputs`` and ``reconstruction``) and AUROC/AUPRC (with ``maps``) and their subject
    bootstrap CIs; arguments as in :func:`compute_metrics`."""
    y = _as_bool(labels, "labels")
    n = y.shape[0]
    subjects = tuple(str(i) for i in range(n)) if subjects is None else tuple(str(s) for s in subjects)
    if len(subjects) != n:
        raise ValueError(f"compute_metrics: {n} images but {len(subjects)} subject ids")
    if (inputs is None) != (reconstruction is None):
        raise ValueError("compute_metrics: give both inputs and reconstruction for SSIM, or neither")
    values = {"ssim_paper": math.nan, "ssim_normal": math.nan, "auroc": math.nan, "auprc": math.nan}
    per_image: dict[str, np.ndarray] = {}
    ci: dict[str, tuple[float, float, float]] = {}
    if inputs is not None and reconstruction is not None:  # both or neither (checked above)
        sp = ssim_paper(inputs, reconstruction, y, brain, data_range=ssim_paper_range)
        sn = ssim_normal(inputs, reconstruction, y, brain, data_range=ssim_normal_range)
        per_image["ssim_paper"] = sp.numpy()
        per_image["ssim_normal"] = sn.numpy()
        values["ssim_paper"] = float(np.nanmean(sp.numpy())) if bool((~sp.isnan()).any()) else math.nan
        values["ssim_normal"] = float(np.nanmean(sn.numpy())) if bool((~sn.isnan()).any()) else math.nan
        if n_boot > 0 and n > 0:
            for key in ("ssim_paper", "ssim_normal"):
                if not math.isnan(values[key]):
                    ci[key] = bootstrap_mean_ci(per_image[key], subjects, n_boot=n_boot, seed=seed)
    if maps is not None and pixel_ci and n_boot > 0 and n > 0:
        pixel_cis = pixel_auc_ci(maps, y, brain, subjects, n_boot=n_boot, seed=seed)
        values["auroc"], values["auprc"] = pixel_cis["auroc"][0], pixel_cis["auprc"][0]
        if not math.isnan(values["auprc"]):
            ci.update(pixel_cis)
    elif maps is not None:
        values["auroc"], values["auprc"] = pixel_auc(maps, y, brain)
    return ThresholdFreeMetrics(values, per_image, ci)


def compute_metrics(
    pred: torch.Tensor,
    maps: torch.Tensor | None,
    labels: torch.Tensor,
    brain: torch.Tensor,
    *,
    inputs: torch.Tensor | None = None,
    reconstruction: torch.Tensor | None = None,
    subjects: Sequence[str] | None = None,
    size_bounds: Sequence[float] = SIZE_BOUNDS,
    reference_shape: Sequence[int] = REFERENCE_SHAPE,
    ssim_paper_range: float | None = None,
    ssim_normal_range: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    pixel_ci: bool = True,
    threshold_free: ThresholdFreeMetrics | None = None,
) -> MetricResult:
    """All headline metrics of one (method, threshold protocol) on a test set.

    Args:
        pred: binary predictions ``[N, H, W]`` (restricted to ``brain > 0`` here).
        maps: the anomaly maps ``[N, H, W]`` for AUROC/AUPRC, or None (then those are NaN).
        labels: lesion masks ``[N, H, W]``.
        brain: brain masks ``[N, H, W]`` (soft or binary).
        inputs, reconstruction: input images and pseudo-healthy reconstructions ``[N, H, W]`` for SSIM;
            both or neither (without them the SSIM values are NaN).
        subjects: subject id per image (CIs resample subjects); default: every image its own subject.
        size_bounds, reference_shape: lesion-size bins (see :func:`lesion_size_bins`).
        ssim_paper_range, ssim_normal_range: SSIM data ranges (None: the documented defaults).
        n_boot: bootstrap resamples for the CIs (0: no CIs).
        seed: bootstrap seed.
        pixel_ci: also bootstrap AUROC/AUPRC (weighted pixel pass per resample; the slowest part).
        threshold_free: the SSIM / AUROC / AUPRC part computed earlier by :func:`threshold_free_metrics` on the
            same maps, labels, brain, reconstruction, subjects, ``n_boot`` and ``seed`` (a cell's protocols share
            it); None computes it here.

    Returns:
        :class:`MetricResult`. ``values`` keys:

        - ``dice``, ``sens``, ``prec``: per-image Dice / sensitivity / precision averaged over images.
        - ``dice_pooled``, ``sens_pooled``, ``prec_pooled``: from TP/FP/FN summed over all pixels.
        - ``dice_small``, ``dice_medium``, ``dice_large``: mean per-image Dice per lesion-size bin (NaN if
          the bin is empty); ``n_small``, ``n_medium``, ``n_large``: slices per bin.
        - ``ssim_paper``, ``ssim_normal``: see the module docstring (NaN without a reconstruction).
        - ``auroc``, ``auprc``: pooled over brain pixels (NaN without maps).
        - ``n_images``, ``n_subjects``.
    """
    p, y = _prepare(pred, labels, brain)
    n = p.shape[0]
    if threshold_free is None:
        threshold_free = threshold_free_metrics(
            maps, labels, brain, inputs=inputs, reconstruction=reconstruction, subjects=subjects,
            ssim_paper_range=ssim_paper_range, ssim_normal_range=ssim_normal_range, n_boot=n_boot, seed=seed,
            pixel_ci=pixel_ci,
        )  # fmt: skip
    subjects = tuple(str(i) for i in range(n)) if subjects is None else tuple(str(s) for s in subjects)
    if len(subjects) != n:
        raise ValueError(f"compute_metrics: {n} images but {len(subjects)} subject ids")

    tp, fp, fn = confusion_counts(p, y)
    dice = dice_from_counts(tp, fp, fn)
    sens = sensitivity_from_counts(tp, fp, fn)
    prec = precision_from_counts(tp, fp, fn)
    bins = lesion_size_bins(y, size_bounds, reference_shape)

    values: dict[str, float] = {
        "dice": float(dice.mean()) if n else math.nan,
        "sens": float(sens.mean()) if n else math.nan,
        "prec": float(prec.mean()) if n else math.nan,
    }
    values.update(pooled_scores(p, y))
    values.update(size_stratified_dice(dice, y, size_bounds, reference_shape))
    per_image: dict[str, np.ndarray] = {
        "dice": dice.numpy(),
        "sens": sens.numpy(),
        "prec": prec.numpy(),
        "tp": tp.numpy(),
        "fp": fp.numpy(),
        "fn": fn.numpy(),
        "lesion_px": y.flatten(1).sum(1).cpu().numpy(),
        "size_bin": bins.numpy(),
    }

    values.update(threshold_free.values)
    per_image.update(threshold_free.per_image)
    values["n_images"] = float(n)
    values["n_subjects"] = float(len(set(subjects)))

    ci: dict[str, tuple[float, float, float]] = {}
    if n_boot > 0 and n > 0:
        for key in ("dice", "sens", "prec"):
            ci[key] = bootstrap_mean_ci(per_image[key], subjects, n_boot=n_boot, seed=seed)
        tpf, fpf, fnf = (c.double().numpy() for c in (tp, fp, fn))
        ci["dice_pooled"] = bootstrap_ratio_ci(2 * tpf, 2 * tpf + fpf + fnf, subjects, n_boot=n_boot, seed=seed)
        ci["sens_pooled"] = bootstrap_ratio_ci(tpf, tpf + fnf, subjects, n_boot=n_boot, seed=seed)
        ci["prec_pooled"] = bootstrap_ratio_ci(tpf, tpf + fpf, subjects, n_boot=n_boot, seed=seed)
        for index, name in enumerate(SIZE_BINS):
            if values[f"n_{name}"] > 0:
                masked = np.where(per_image["size_bin"] == index, per_image["dice"], np.nan)
                ci[f"dice_{name}"] = bootstrap_mean_ci(masked, subjects, n_boot=n_boot, seed=seed)
        ci.update(threshold_free.ci)
    return MetricResult(values=values, per_image=per_image, subjects=subjects, ci=ci)
