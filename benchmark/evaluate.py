"""The one evaluation path: threshold protocol → binary segmentation → metrics → result row.

It never looks at which method produced the maps: it reads only :class:`Predictions` and the split.

Every row also says whether its segmentation is *degenerate* — not a lesion segmentation one should rank
(:func:`degeneracy`): its global threshold sits on the edge of the search grid, or it marks more than
``max_brain_share`` of the test brain (e.g. a threshold so low that nearly the whole brain is "lesion",
which buys a sensitivity near 1 at a precision near the lesion share). The tables mark such rows and never
bold them; :func:`degenerate_warnings` gives the runner one log message per degenerate result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.metrics import ThresholdFreeMetrics, as_nhw, brain_region, compute_metrics, threshold_free_metrics
from benchmark.predict import Predictions
from benchmark.thresholds import ThresholdResult, binarise, choose_threshold
from datasets.slices import SliceSet

#: Default largest share of the test brain a segmentation may mark before its row is degenerate.
DEFAULT_MAX_BRAIN_SHARE = 0.5


@dataclass(frozen=True)
class ProtocolResult:
    """Metrics of one method on one test set under one threshold protocol."""

    protocol: str
    row: dict[str, float | str | bool]  # flat metrics + threshold + degeneracy fields (merged into the result row)
    segmentation: torch.Tensor  # bool [N, H, W]
    per_image: dict[str, np.ndarray]  # per-image scores (for CIs, paired tests, size plots)
    threshold: ThresholdResult | None = None  # the chosen global or per-image threshold (None: own segmentation)


HEALTHY_VAL_PROTOCOLS = frozenset({"val_fpr"})  # read the maps of the healthy validation split
LABELLED_VAL_PROTOCOLS = frozenset({"val_labelled"})  # read the maps and labels of the validation lesion slices
NO_LABELLED_VAL = (
    "dataset has no lesion slice among its validation subjects; use protocols without val_labelled or give a "
    "split with lesion-bearing validation subjects"
)


def needs_validation_maps(protocols: Sequence[str]) -> bool:
    """Whether any protocol needs the method's maps on the healthy validation split."""
    return any(p in HEALTHY_VAL_PROTOCOLS for p in protocols)


def needs_labelled_validation(protocols: Sequence[str]) -> bool:
    """Whether any protocol needs the method's maps on the labelled validation set (``Splits.val_labelled``)."""
    return any(p in LABELLED_VAL_PROTOCOLS for p in protocols)


def evaluate(
    test_pred: Predictions,
    test: SliceSet,
    modality: str,
    protocols: Sequence[str],
    val_pred: Predictions | None = None,
    val: SliceSet | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    *,
    labelled_val_pred: Predictions | None = None,
    labelled_val: SliceSet | None = None,
    max_brain_share: float = DEFAULT_MAX_BRAIN_SHARE,
) -> list[ProtocolResult]:
    """Evaluate ``test_pred`` on ``test`` under every protocol in ``protocols`` (in that order).

    ``modality`` is the input channel the method saw; SSIM compares it with the reconstruction.
    ``val_pred``/``val`` (healthy validation slices) serve ``val_fpr``; ``labelled_val_pred``/``labelled_val``
    (the validation subjects' lesion slices) serve ``val_labelled``. Both choose a threshold without reading
    a test label, which is then applied to the test maps. A result whose segmentation marks more than
    ``max_brain_share`` of the test brain is flagged degenerate.

    Raises:
        ValueError: ``val_labelled`` requested without a labelled validation set (:data:`NO_LABELLED_VAL`).
    """
    _check_labelled_validation(protocols, labelled_val_pred, labelled_val)
    check_max_brain_share(max_brain_share)  # before any slow part
    shared = _threshold_free(test_pred, test, modality, seed, n_boot)  # the same for every protocol
    results = []
    for protocol in protocols:
        if protocol in LABELLED_VAL_PROTOCOLS:
            threshold = _labelled_val_threshold(protocol, labelled_val_pred, labelled_val)  # type: ignore[arg-type]
        else:
            threshold = choose_threshold(
                protocol,
                test_maps=test_pred.anomaly_maps,
                test_labels=test.labels,
                brain=test.brain,
                val_maps=None if val_pred is None else val_pred.anomaly_maps,
                val_brain=None if val is None else val.brain,
                val_labels=None if val is None else val.labels,
            )
        segmentation = binarise(test_pred.anomaly_maps, test.brain, threshold)
        results.append(_result(threshold, segmentation, test_pred, test, seed, n_boot, max_brain_share, shared))
    return results


def _threshold_free(
    test_pred: Predictions, test: SliceSet, modality: str, seed: int, n_boot: int
) -> ThresholdFreeMetrics:
    """SSIM and AUROC/AUPRC of the test predictions (with CIs): computed once, shared by the protocols' rows."""
    has_reconstruction = test_pred.reconstructions is not None
    return threshold_free_metrics(
        test_pred.anomaly_maps,
        test.labels,
        test.brain,
        inputs=test.channel(modality) if has_reconstruction else None,
        reconstruction=test_pred.reconstructions,
        subjects=test.subjects,
        n_boot=n_boot,
        seed=seed,
    )


def _check_labelled_validation(
    protocols: Sequence[str], labelled_val_pred: Predictions | None, labelled_val: SliceSet | None
) -> None:
    """Fail before any work when ``val_labelled`` is requested without its set or the method's maps on it."""
    if not needs_labelled_validation(protocols):
        return
    if labelled_val is None:
        raise ValueError(f"threshold protocol 'val_labelled' has no labelled validation set: {NO_LABELLED_VAL}")
    if labelled_val_pred is None:
        raise ValueError(
            "threshold protocol 'val_labelled' needs labelled_val_pred (the method's maps on labelled_val); got None"
        )


def _labelled_val_threshold(protocol: str, pred: Predictions, labelled: SliceSet) -> ThresholdResult:
    """The threshold chosen on the labelled validation set only: no test map or label is passed."""
    return choose_threshold(protocol, val_maps=pred.anomaly_maps, val_brain=labelled.brain, val_labels=labelled.labels)


def evaluate_segmentation(
    protocol: str,
    segmentation: torch.Tensor,
    test_pred: Predictions,
    test: SliceSet,
    modality: str,
    is_oracle: bool,
    seed: int = 0,
    n_boot: int = 1000,
    max_brain_share: float = DEFAULT_MAX_BRAIN_SHARE,
) -> ProtocolResult:
    """Metrics of a binary ``segmentation`` ``[N, H, W]`` that a method chose itself (e.g. IterMask²'s
    human–AI oracle, ``protocol="human_ai"``), with the same fields as :func:`evaluate`'s rows. AUROC/AUPRC
    and SSIM come from ``test_pred`` (threshold-free); the threshold fields are NaN and ``threshold_objective``
    is the mean per-image Dice. Degenerate only through ``max_brain_share`` (there is no grid)."""
    if segmentation.shape != test.labels.shape:
        raise ValueError(
            f"evaluate_segmentation({protocol}): segmentation {tuple(segmentation.shape)} "
            f"does not match the test labels {tuple(test.labels.shape)}"
        )
    chosen = ThresholdResult(protocol, math.nan, math.nan, math.nan, math.nan, is_oracle=is_oracle)
    check_max_brain_share(max_brain_share)  # before any slow part
    shared = _threshold_free(test_pred, test, modality, seed, n_boot)
    result = _result(chosen, segmentation.bool().cpu(), test_pred, test, seed, n_boot, max_brain_share, shared)
    result.row["threshold_objective"] = result.row["dice"]
    return result


def _result(
    threshold: ThresholdResult,
    segmentation: torch.Tensor,
    test_pred: Predictions,
    test: SliceSet,
    seed: int,
    n_boot: int,
    max_brain_share: float,
    threshold_free: ThresholdFreeMetrics,
) -> ProtocolResult:
    """The one metric computation behind every row (metrics, threshold fields, degeneracy fields);
    ``threshold_free``: the test predictions' SSIM / AUROC / AUPRC (:func:`_threshold_free`)."""
    share = segmented_brain_share(segmentation, test.brain)
    reason = degeneracy(threshold, share, max_brain_share)
    metrics = compute_metrics(
        segmentation,
        test_pred.anomaly_maps,
        test.labels,
        test.brain,
        subjects=test.subjects,
        n_boot=n_boot,
        seed=seed,
        threshold_free=threshold_free,
    )
    row = (
        threshold.record()
        | metrics.flat()
        | {
            "segmented_brain_share": share,
            "max_brain_share": max_brain_share,
            "degenerate": bool(reason),
            "degenerate_reason": reason,
        }
    )
    per_image = metrics.per_image | {"threshold": _per_image_thresholds(threshold, len(test))}
    chosen = None if math.isnan(threshold.threshold) and threshold.per_image is None else threshold
    return ProtocolResult(threshold.protocol, row, segmentation, per_image, chosen)


def _per_image_thresholds(threshold: ThresholdResult, n: int) -> np.ndarray:
    """The raw threshold each test image was binarised with (per-image protocols differ per image)."""
    if threshold.per_image is not None:
        return threshold.per_image.double().numpy()
    return np.full(n, threshold.threshold, dtype=np.float64)


def segmented_brain_share(segmentation: torch.Tensor, brain: torch.Tensor) -> float:
    """Share of the set's brain pixels (``brain > 0``, pooled over all images) that ``segmentation`` marks.

    Marks outside the brain are not counted (predictions are restricted to the brain everywhere). NaN when
    there is no brain pixel.
    """
    region = brain_region(brain)
    marked = as_nhw(segmentation, "segmentation").bool().to(region.device) & region
    n_brain = int(region.sum())
    return int(marked.sum()) / n_brain if n_brain else math.nan


def check_max_brain_share(max_brain_share: float) -> None:
    """``max_brain_share`` must be a share of the brain in (0, 1]."""
    if not 0.0 < max_brain_share <= 1.0:
        raise ValueError(f"max_brain_share must be in (0, 1], got {max_brain_share}")


def degeneracy(threshold: ThresholdResult, brain_share: float, max_brain_share: float) -> str:
    """Why a result is degenerate ("" when it is not): its global threshold is on the edge of the search grid
    and/or its segmentation marks more than ``max_brain_share`` of the brain.

    Only a *global* threshold's edge flag counts: ``oracle_per_image`` sets ``at_grid_edge`` when at least one
    image's best lies on an edge, which says nothing about the row as a whole (its brain share still does).
    """
    check_max_brain_share(max_brain_share)
    reasons = []
    if threshold.at_grid_edge and threshold.per_image is None:
        reasons.append(f"threshold at grid edge (normalised {threshold.threshold_norm:g})")
    if brain_share > max_brain_share:
        reasons.append(f"segments {100 * brain_share:.0f} % of the brain (max {100 * max_brain_share:.0f} %)")
    return "; ".join(reasons)


def degenerate_warnings(results: Sequence[ProtocolResult]) -> list[str]:
    """One message per degenerate result (protocol and reason), for the runner to log with the cell key."""
    return [
        f"{r.protocol}: degenerate segmentation ({r.row['degenerate_reason']}); "
        f"DSC {float(r.row['dice']):.3f}, Sens. {float(r.row['sens']):.3f}, Prec. {float(r.row['prec']):.3f} "
        "are not comparable (marked in the tables, never bold)"
        for r in results
        if r.row.get("degenerate")
    ]
