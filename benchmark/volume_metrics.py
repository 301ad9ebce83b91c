"""Whole-volume metrics on a *slab* test set: every brain slice of each test subject's slice range.

A slab is an ``[N, H, W]`` stack whose slices are contiguous per subject and in increasing z within a
subject (every ``eval_slice_step``-th slice of the range, lesion and lesion-free slices, healthy subjects
included). A subject's slices, stacked, are its *volume* ``[K, H, W]``. Pure functions on torch tensors,
nothing here knows which method produced a map.

Conventions (each one is tested in ``tests/unit/test_volume_metrics.py``):

* **Regions and empty masks** as :mod:`benchmark.metrics`: brain is ``brain > 0``; the segmentation is
  intersected with it; labels are not masked; 3-D Dice / sensitivity / precision of a subject use its
  TP/FP/FN summed over its slices with the same empty-mask conventions (both empty -> 1, other 0/0 -> 0).
* **Lesion and healthy subjects.** A *lesion subject* has at least one label voxel in its slab, a
  *healthy subject* none. ``vol_dice``/``vol_sens``/``vol_prec``, the volume bins and
  ``vol_lesionwise_dice`` are means over lesion subjects; ``vol_healthy_subject_*`` over healthy ones;
  ``vol_healthy_slice_fp`` over every subject with a lesion-free slice; ``vol_fp_components`` over all.
* **Volume bins.** ``lesion_volume_ref`` = label voxels of the slab x ``slice_step`` x ``128**2 / (H W)``:
  the lesion's pixels over the whole slice range at the 128x128 reference resolution. Bounds
  :data:`VOLUME_BOUNDS` = 20 x the slice bounds of :data:`benchmark.metrics.SIZE_BOUNDS`, i.e. 20 slices
  (the configs' slice ranges) each at the slice bound: small < 4000 <= medium < 16000 <= large.
* **Slice scores.** Per slice the :data:`DEFAULT_SLICE_SCORE_PERCENTILE`-th percentile of the map over its
  brain pixels (numpy's linear interpolation); ``vol_slice_auroc``/``vol_slice_auprc`` rank the slab's
  slices by it against "the slice has a label voxel" (sort-based, scikit-learn conventions). NaN when all
  slices are positive or all negative (AUPRC too: with only positives it says nothing).
* **Components.** 3-D connected components of a subject's volume with full 3x3x3 (26-) connectivity
  (``scipy.ndimage.label``); with ``slice_step > 1`` neighbouring slab slices are ``slice_step`` raw
  slices apart and still connect. Label and segmentation components of fewer than
  ``min_component_voxels`` voxels are ignored: a small label component is no lesion, a small
  segmentation component is removed before every component-wise count (voxel-wise Dice keeps it).
  A lesion is *found* when at least ``detection_overlap`` of its voxels lie in kept segmentation
  components; an FP component (``vol_fp_components``) is a kept segmentation component that touches no
  label voxel (of any size); a subject is *flagged* when it has a kept segmentation component.
* **Lesion-wise Dice** (BraTS 2023, Saluja et al., github.com/rachitsaluja/BraTS-2023-Metrics, eval.py):
  each label component L is matched to the kept segmentation components that intersect L dilated by one
  voxel (3x3x3); its Dice is against the union of those components; kept segmentation components that
  match no label component are FPs; the subject's score is sum(Dice_L) / (n_L + n_FP), 1 with neither.
  Where we deviate: one lesion class (BraTS scores WT, TC and ET separately); the dilation is one voxel
  with the 26-neighbourhood (BraTS: ``generate_binary_structure(3, 2)`` for 1 to 3 iterations per
  challenge); label components are not first merged when their dilations touch (BraTS merges them); the
  size threshold is ours (``min_component_voxels`` in slab voxels, applied to label *and* segmentation
  components; BraTS drops label components of <= 50 (MET: 2) mm^3 and keeps every predicted one). As in
  BraTS, a segmentation component matched only to an ignored small label component is not an FP.
* **CIs.** 95 % percentile bootstrap over all subjects of the slab (:mod:`benchmark.bootstrap`, the same
  resamples for every key of one call); a resample's mean is over the drawn subjects of the key's
  subset (lesion, healthy, ...). ``vol_lesion_sens`` (found / all lesions, pooled) gets a ratio CI; the
  slice AUROC/AUPRC and the counts get none.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import ndimage

from benchmark.bootstrap import bootstrap_mean_ci, bootstrap_ratio_ci
from benchmark.metrics import (
    REFERENCE_SHAPE,
    SIZE_BINS,
    SIZE_BOUNDS,
    as_nhw,
    brain_region,
    dice_from_counts,
    precision_from_counts,
    roc_pr_from_scores,
    sensitivity_from_counts,
)

#: Slices of the configs' slice ranges; the volume bounds are this many slices at the slice bounds.
_RANGE_SLICES = 20
#: Lesion-volume bin bounds in reference voxels (see the module docstring): (4000, 16000).
VOLUME_BOUNDS: tuple[float, float] = (_RANGE_SLICES * SIZE_BOUNDS[0], _RANGE_SLICES * SIZE_BOUNDS[1])
DEFAULT_MIN_COMPONENT_VOXELS: int = 4
DEFAULT_DETECTION_OVERLAP: float = 0.1
DEFAULT_SLICE_SCORE_PERCENTILE: float = 99.0

#: Every key of ``VolumeMetricResult.values``.
VOLUME_KEYS: tuple[str, ...] = (
    "vol_dice", "vol_sens", "vol_prec",
    "vol_dice_small", "vol_dice_medium", "vol_dice_large",
    "vol_healthy_slice_fp", "vol_healthy_subject_fp", "vol_healthy_subject_flagged",
    "vol_slice_auroc", "vol_slice_auprc",
    "vol_lesion_sens", "vol_fp_components", "vol_lesionwise_dice",
    "vol_n_subjects", "vol_n_lesion_subjects", "vol_n_healthy_subjects",
)  # fmt: skip

_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
_OFFSETS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int64)  # [27, 3]
_SCORE_CHUNK = 1024


# --------------------------------------------------------------------------------------------------
# slab layout
# --------------------------------------------------------------------------------------------------
def subject_slabs(subjects: Sequence[str]) -> list[tuple[str, slice]]:
    """(subject, slice of positions) per subject in slab order; ValueError if a subject's slices are not contiguous."""
    slabs: list[tuple[str, slice]] = []
    seen: set[str] = set()
    start = 0
    ids = [str(s) for s in subjects]
    for i in range(1, len(ids) + 1):
        if i < len(ids) and ids[i] == ids[start]:
            continue
        if ids[start] in seen:
            raise ValueError(
                f"slab: the slices of subject {ids[start]!r} are not contiguous (again at position {start}); "
                "a slab holds each subject's slices in one run"
            )
        seen.add(ids[start])
        slabs.append((ids[start], slice(start, i)))
        start = i
    return slabs


def _slab_index(subjects: Sequence[str]) -> tuple[list[tuple[str, slice]], torch.Tensor, torch.Tensor]:
    """Slabs, the subject number ``[N]`` and the position within its subject ``[N]`` of every slice."""
    slabs = subject_slabs(subjects)
    lengths = torch.tensor([s.stop - s.start for _, s in slabs], dtype=torch.long)
    starts = torch.tensor([s.start for _, s in slabs], dtype=torch.long)
    owner = torch.repeat_interleave(torch.arange(len(slabs)), lengths)
    return slabs, owner, torch.arange(len(subjects)) - starts[owner]


def stack_subject_volumes(x: torch.Tensor, subjects: Sequence[str], fill: float | bool = 0) -> torch.Tensor:
    """``[N, H, W]`` slab tensor -> ``[S, Kmax * H, W]``: each subject's slices stacked along rows into one
    'image', padded with ``fill`` (brain padding 0 => padding is outside the brain).

    Lets :func:`benchmark.thresholds.oracle_global` / ``dice_curve`` compute per-subject 3-D Dice unchanged.
    """
    t = as_nhw(x, "stack_subject_volumes")
    if len(subjects) != t.shape[0]:
        raise ValueError(f"stack_subject_volumes: {t.shape[0]} slices but {len(subjects)} subject ids")
    slabs, owner, position = _slab_index(subjects)
    k_max = max(s.stop - s.start for _, s in slabs) if slabs else 0
    out = torch.full((len(slabs), k_max, *t.shape[1:]), fill, dtype=t.dtype, device=t.device)
    out[owner.to(t.device), position.to(t.device)] = t
    return out.reshape(len(slabs), k_max * t.shape[1], t.shape[2])


# --------------------------------------------------------------------------------------------------
# per-slice scores and per-subject components
# --------------------------------------------------------------------------------------------------
def _row_counts(mask: torch.Tensor) -> torch.Tensor:
    """True entries per row of a boolean ``[N, ...]`` tensor, int64 on its device (on the CPU numpy's count:
    several times faster than torch's bool reductions)."""
    flat = mask.flatten(1)
    if flat.device.type == "cpu":
        return torch.from_numpy(np.count_nonzero(flat.numpy(), axis=1))
    return flat.sum(1)


def slice_scores(maps: torch.Tensor, region: torch.Tensor, percentile: float) -> torch.Tensor:
    """Per slice the ``percentile``-th percentile of ``maps`` over its ``region`` pixels (numpy's linear
    interpolation), float64 CPU ``[N]``; NaN for a slice without region pixel or with a NaN or inf score
    on one. Top-k of the region's scores (the rest set to the dtype's lowest finite value) instead of a sort."""
    flat_maps = maps.flatten(1)
    flat_region = region.to(maps.device).flatten(1)
    lowest = torch.finfo(maps.dtype).min
    out = []
    for start in range(0, flat_maps.shape[0], _SCORE_CHUNK):
        r = flat_region[start : start + _SCORE_CHUNK]
        m = torch.where(r, flat_maps[start : start + _SCORE_CHUNK], lowest)
        n = _row_counts(r)
        valid = (n > 0) & torch.isfinite(m.amax(1)) & torch.isfinite(m.amin(1))
        position = percentile / 100.0 * (n - 1).clamp(min=0).double()
        low = position.floor().long()
        frac = position - low
        # descending order: ascending rank j of a row with n region pixels is descending rank n - 1 - j
        k = int((n - low).max().clamp(min=1))
        top = torch.topk(m, k, dim=1).values.double()
        a = top.gather(1, (n - 1 - low).clamp(min=0)[:, None])[:, 0]
        b = top.gather(1, (n - 2 - low).clamp(min=0)[:, None])[:, 0]
        score = torch.where(frac > 0, a + (b - a) * frac, a)
        out.append(torch.where(valid, score, math.nan).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@dataclass(frozen=True)
class _Components:
    """Component counts of one subject (see the module docstring)."""

    n_lesions: int
    n_found: int
    n_fp_components: int
    lesionwise_dice: float
    flagged: bool


def _labelled(mask: np.ndarray, min_voxels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """26-connected component ids, voxels per id and which ids have >= ``min_voxels`` (id 0 never)."""
    cc, n = ndimage.label(mask, structure=_STRUCTURE)
    size = np.bincount(cc.ravel(), minlength=n + 1)
    kept = size >= min_voxels
    kept[0] = False
    return cc, size, kept


def _subject_components(seg: np.ndarray, lab: np.ndarray, min_voxels: int, overlap: float) -> _Components:
    """Lesion detection, FP components and BraTS-2023 lesion-wise Dice of one ``[K, H, W]`` volume."""
    seg_cc, seg_size, seg_kept = _labelled(seg, min_voxels)
    n_kept = int(seg_kept.sum())
    if not lab.any():
        return _Components(0, 0, n_kept, 1.0 if n_kept == 0 else 0.0, n_kept > 0)
    lab_cc, lab_size, lab_kept = _labelled(lab, min_voxels)
    in_kept = seg_kept[seg_cc]
    covered = np.bincount(lab_cc[in_kept], minlength=lab_size.size)
    touches_label = np.zeros(seg_size.size, dtype=bool)
    touches_label[seg_cc[in_kept & lab]] = True
    # (label id, segmentation id) pairs where a kept segmentation voxel lies in the label component's
    # one-voxel 3x3x3 dilation, i.e. a label voxel is among the segmentation voxel's 27 neighbours
    coords = np.stack(np.nonzero(in_kept), axis=1)
    neighbours = np.pad(lab_cc, 1)[tuple((coords[:, None, :] + 1 + _OFFSETS[None]).transpose(2, 0, 1))]
    seg_ids = np.broadcast_to(seg_cc[in_kept][:, None], neighbours.shape)
    hit = neighbours > 0
    codes = np.unique(neighbours[hit].astype(np.int64) * seg_size.size + seg_ids[hit])
    pair_lab, pair_seg = codes // seg_size.size, codes % seg_size.size
    matched = np.zeros(seg_size.size, dtype=bool)
    matched[pair_seg] = True
    union = np.bincount(pair_lab, weights=seg_size[pair_seg], minlength=lab_size.size)
    # |L & union| = covered[L]: every kept component that overlaps L is among those matched to it
    lesion_dice = 2.0 * covered[lab_kept] / (lab_size[lab_kept] + union[lab_kept])
    n_lesions = int(lab_kept.sum())
    n_fp_lesionwise = int((seg_kept & ~matched).sum())
    denominator = n_lesions + n_fp_lesionwise
    return _Components(
        n_lesions=n_lesions,
        n_found=int((covered[lab_kept] / lab_size[lab_kept] >= overlap).sum()),
        n_fp_components=int((seg_kept & ~touches_label).sum()),
        lesionwise_dice=float(lesion_dice.sum() / denominator) if denominator else 1.0,
        flagged=n_kept > 0,
    )


# --------------------------------------------------------------------------------------------------
# everything at once
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VolumeMetricResult:
    """What :func:`compute_volume_metrics` returns.

    Attributes:
        values: every key of :data:`VOLUME_KEYS` (NaN where not computable).
        ci: 95 % subject-bootstrap ``(low, high)`` of the mean-over-subjects keys (and ``vol_lesion_sens``)
            that have a value; empty when ``n_boot == 0``.
        reasons: key -> why its value is NaN, for exactly the NaN keys.
        per_subject: one row per subject in slab order (columns in :func:`compute_volume_metrics`).
    """

    values: dict[str, float]
    ci: dict[str, tuple[float, float]]
    reasons: dict[str, str]
    per_subject: pd.DataFrame

    def flat(self) -> dict[str, float | str]:
        """One result row: ``values``, ``<key>_lo`` / ``<key>_hi`` per CI, ``<key>_nan_reason`` per reason."""
        out: dict[str, float | str] = dict(self.values)
        for key, (low, high) in self.ci.items():
            out[f"{key}_lo"] = low
            out[f"{key}_hi"] = high
        for key, reason in self.reasons.items():
            out[f"{key}_nan_reason"] = reason
        return out


def _mask(x: torch.Tensor, name: str) -> torch.Tensor:
    t = as_nhw(x, name)
    return t if t.dtype == torch.bool else t > 0


def _check_inputs(
    segmentation: torch.Tensor,
    anomaly_maps: torch.Tensor,
    labels: torch.Tensor,
    brain: torch.Tensor,
    subjects: Sequence[str],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(segmentation & brain, maps, labels, brain region) on the maps' device, shapes checked."""
    m = as_nhw(anomaly_maps, "anomaly_maps")
    if not m.dtype.is_floating_point:
        m = m.double()
    tensors = {
        "segmentation": _mask(segmentation, "segmentation"),
        "labels": _mask(labels, "labels"),
        "brain": brain_region(brain),
    }
    for name, t in tensors.items():
        if t.shape != m.shape:
            raise ValueError(f"compute_volume_metrics: {name} shape {tuple(t.shape)} != anomaly_maps {tuple(m.shape)}")
    if len(subjects) != m.shape[0]:
        raise ValueError(f"compute_volume_metrics: {m.shape[0]} slices but {len(subjects)} subject ids")
    if m.shape[0] == 0:
        raise ValueError("compute_volume_metrics: the slab is empty")
    region = tensors["brain"].to(m.device)
    return tensors["segmentation"].to(m.device) & region, m, tensors["labels"].to(m.device), region


def _check_brain(slabs: list[tuple[str, slice]], brain_px: np.ndarray) -> None:
    for subject, rows in slabs:
        if not brain_px[rows].any():
            raise ValueError(f"compute_volume_metrics: subject {subject!r} has no brain pixel (brain > 0) in its slab")
        empty = np.flatnonzero(brain_px[rows] == 0)
        if empty.size:
            raise ValueError(
                f"compute_volume_metrics: subject {subject!r}: slab slice {int(empty[0])} (slab position "
                f"{rows.start + int(empty[0])}) has no brain pixel; a slab holds brain slices only"
            )


def _check_options(slice_step: int, min_component_voxels: int, detection_overlap: float, percentile: float) -> None:
    if slice_step < 1:
        raise ValueError(f"compute_volume_metrics: slice_step must be >= 1, got {slice_step}")
    if min_component_voxels < 1:
        raise ValueError(f"compute_volume_metrics: min_component_voxels must be >= 1, got {min_component_voxels}")
    if not 0.0 < detection_overlap <= 1.0:
        raise ValueError(f"compute_volume_metrics: detection_overlap must be in (0, 1], got {detection_overlap}")
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"compute_volume_metrics: slice_score_percentile must be in [0, 100], got {percentile}")


def _volume_bins(volume_ref: np.ndarray, lesion: np.ndarray) -> np.ndarray:
    """Bin name per subject ("none" for healthy subjects)."""
    index = (volume_ref >= VOLUME_BOUNDS[0]).astype(np.int64) + (volume_ref >= VOLUME_BOUNDS[1])
    return np.where(lesion, np.asarray(SIZE_BINS, dtype=object)[index], "none")


def _mean(values: np.ndarray, subset: np.ndarray) -> float:
    return float(values[subset].mean()) if subset.any() else math.nan


def compute_volume_metrics(
    segmentation: torch.Tensor,
    anomaly_maps: torch.Tensor,
    labels: torch.Tensor,
    brain: torch.Tensor,
    subjects: Sequence[str],
    *,
    slice_step: int = 1,
    min_component_voxels: int = DEFAULT_MIN_COMPONENT_VOXELS,
    detection_overlap: float = DEFAULT_DETECTION_OVERLAP,
    slice_score_percentile: float = DEFAULT_SLICE_SCORE_PERCENTILE,
    n_boot: int = 1000,
    seed: int = 0,
) -> VolumeMetricResult:
    """All whole-volume metrics of one (method, threshold) on a slab (conventions: module docstring).

    Args:
        segmentation: binary ``[N, H, W]`` (intersected with ``brain > 0`` here as well).
        anomaly_maps: float ``[N, H, W]`` for the slice scores (finite on brain pixels).
        labels: lesion masks ``[N, H, W]``.
        brain: brain masks ``[N, H, W]`` (soft; ``> 0`` is brain); every slice needs a brain pixel.
        subjects: subject id per slice, each subject's slices contiguous (increasing z).
        slice_step: the slab's slice step (scales ``lesion_volume_ref``).
        min_component_voxels, detection_overlap, slice_score_percentile: see the module docstring.
        n_boot, seed: subject bootstrap (0 resamples: no CIs).

    Returns:
        :class:`VolumeMetricResult`; ``per_subject`` columns: subject, healthy, n_slices, lesion_voxels,
        lesion_volume_ref, volume_bin (small / medium / large, "none" when healthy), dice, sens, prec,
        healthy_slice_fp (NaN without a lesion-free slice), brain_fp_share, n_lesions, n_found,
        n_fp_components, lesionwise_dice, flagged.

    Raises:
        ValueError: shapes that disagree, non-contiguous subjects, a subject or slice without brain pixel,
            non-finite scores on brain pixels, options out of range.
    """
    _check_options(slice_step, min_component_voxels, detection_overlap, slice_score_percentile)
    seg, maps, lab, region = _check_inputs(segmentation, anomaly_maps, labels, brain, subjects)
    slabs, owner_t, _ = _slab_index(subjects)
    owner = owner_t.numpy()
    n_subjects = len(slabs)
    ids = [subject for subject, _ in slabs]

    def per_subject_sum(per_slice: torch.Tensor | np.ndarray) -> np.ndarray:
        return np.bincount(owner, weights=np.asarray(per_slice, dtype=np.float64), minlength=n_subjects)

    brain_px = _row_counts(region).cpu().numpy()
    _check_brain(slabs, brain_px)
    scores = slice_scores(maps, region, slice_score_percentile)
    if bool(scores.isnan().any()):
        subject = ids[owner[int(torch.nonzero(scores.isnan())[0])]]
        raise ValueError(f"compute_volume_metrics: subject {subject!r}: NaN or inf scores on brain pixels")

    lesion_px, flagged_px, tp_px = (_row_counts(x).cpu().numpy() for x in (lab, seg, seg & lab))
    tp, fp, fn = (torch.as_tensor(per_subject_sum(c)) for c in (tp_px, flagged_px - tp_px, lesion_px - tp_px))
    free = lesion_px == 0
    lesion_voxels = per_subject_sum(lesion_px)
    lesion = lesion_voxels > 0
    free_brain = per_subject_sum(np.where(free, brain_px, 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        healthy_slice_fp = np.where(free_brain > 0, per_subject_sum(np.where(free, flagged_px, 0)) / free_brain, np.nan)
    brain_fp_share = per_subject_sum(flagged_px) / per_subject_sum(brain_px)
    h, w = maps.shape[1:]
    volume_ref = lesion_voxels * slice_step * (REFERENCE_SHAPE[0] * REFERENCE_SHAPE[1]) / (h * w)

    seg_np, lab_np = seg.cpu().numpy(), lab.cpu().numpy()
    parts = [
        _subject_components(seg_np[rows], lab_np[rows], min_component_voxels, detection_overlap) for _, rows in slabs
    ]
    table = pd.DataFrame(
        {
            "subject": ids,
            "healthy": ~lesion,
            "n_slices": [rows.stop - rows.start for _, rows in slabs],
            "lesion_voxels": lesion_voxels.astype(np.int64),
            "lesion_volume_ref": volume_ref,
            "volume_bin": _volume_bins(volume_ref, lesion),
            "dice": dice_from_counts(tp, fp, fn).numpy(),
            "sens": sensitivity_from_counts(tp, fp, fn).numpy(),
            "prec": precision_from_counts(tp, fp, fn).numpy(),
            "healthy_slice_fp": healthy_slice_fp,
            "brain_fp_share": brain_fp_share,
            "n_lesions": [p.n_lesions for p in parts],
            "n_found": [p.n_found for p in parts],
            "n_fp_components": [p.n_fp_components for p in parts],
            "lesionwise_dice": [p.lesionwise_dice for p in parts],
            "flagged": [p.flagged for p in parts],
        }
    )
    return _summarise(table, scores, torch.as_tensor(~free), n_boot, seed)


def _summarise(
    table: pd.DataFrame, scores: torch.Tensor, positive: torch.Tensor, n_boot: int, seed: int
) -> VolumeMetricResult:
    """Headline values, CIs and NaN reasons from the per-subject table and the slice scores."""
    lesion = ~table["healthy"].to_numpy()
    healthy = ~lesion
    has_free = table["healthy_slice_fp"].notna().to_numpy()
    flagged = table["flagged"].to_numpy().astype(np.float64)
    # key -> (per-subject values, subset of subjects averaged, reason when the subset is empty)
    means: dict[str, tuple[np.ndarray, np.ndarray, str]] = {
        "vol_dice": (table["dice"].to_numpy(), lesion, "no lesion test subject"),
        "vol_sens": (table["sens"].to_numpy(), lesion, "no lesion test subject"),
        "vol_prec": (table["prec"].to_numpy(), lesion, "no lesion test subject"),
    }
    for name in SIZE_BINS:
        subset = (table["volume_bin"] == name).to_numpy()
        means[f"vol_dice_{name}"] = (table["dice"].to_numpy(), subset, f"no lesion subject in the {name} volume bin")
    means["vol_healthy_slice_fp"] = (
        table["healthy_slice_fp"].to_numpy(),
        has_free,
        "no subject has a lesion-free slice",
    )
    means["vol_healthy_subject_fp"] = (table["brain_fp_share"].to_numpy(), healthy, "no healthy test subject")
    means["vol_healthy_subject_flagged"] = (flagged, healthy, "no healthy test subject")
    means["vol_fp_components"] = (table["n_fp_components"].to_numpy(), np.ones_like(lesion), "no test subject")
    means["vol_lesionwise_dice"] = (table["lesionwise_dice"].to_numpy(), lesion, "no lesion test subject")

    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    ci: dict[str, tuple[float, float]] = {}
    ids = table["subject"].tolist()
    for key, (per_subject, subset, reason) in means.items():
        values[key] = _mean(per_subject.astype(np.float64), subset)
        if math.isnan(values[key]):
            reasons[key] = reason
        elif n_boot > 0:
            masked = np.where(subset, per_subject.astype(np.float64), np.nan)
            ci[key] = bootstrap_mean_ci(masked, ids, n_boot=n_boot, seed=seed)[1:]

    n_positive = int(positive.sum())
    values["vol_slice_auroc"], values["vol_slice_auprc"] = roc_pr_from_scores(scores, positive)
    if n_positive in (0, positive.numel()):
        values["vol_slice_auroc"] = values["vol_slice_auprc"] = math.nan
        why = "no slab slice has a label voxel" if n_positive == 0 else "every slab slice has a label voxel"
        reasons["vol_slice_auroc"] = reasons["vol_slice_auprc"] = why

    found = table["n_found"].to_numpy().astype(np.float64)
    lesions = table["n_lesions"].to_numpy().astype(np.float64)
    values["vol_lesion_sens"] = float(found.sum() / lesions.sum()) if lesions.sum() > 0 else math.nan
    if math.isnan(values["vol_lesion_sens"]):
        reasons["vol_lesion_sens"] = "no label component of at least min_component_voxels voxels"
    elif n_boot > 0:
        ci["vol_lesion_sens"] = bootstrap_ratio_ci(found, lesions, ids, n_boot=n_boot, seed=seed)[1:]

    values["vol_n_subjects"] = float(len(ids))
    values["vol_n_lesion_subjects"] = float(lesion.sum())
    values["vol_n_healthy_subjects"] = float(healthy.sum())
    return VolumeMetricResult(values={k: values[k] for k in VOLUME_KEYS}, ci=ci, reasons=reasons, per_subject=table)
