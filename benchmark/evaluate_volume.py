"""The whole-volume view of one set of predictions: the threshold protocols applied to the test *slab* (every
test subject's brain slices of the slice range, lesion and lesion-free, healthy test subjects included) and
scored per subject (:mod:`benchmark.volume_metrics`).

The slice view (:mod:`benchmark.evaluate`) and this one read the same maps: the slab's predictions contain the
test slices' predictions at ``Splits.test_view``. Per protocol:

* ``oracle_global`` chooses its own threshold on the slab: the grid value that maximises the mean per-subject
  3-D Dice over the lesion subjects (each subject's slab stacked into one "image" so that the one grid search of
  :mod:`benchmark.thresholds` scores per-subject Dice unchanged);
* ``val_fpr`` and ``val_labelled`` transfer the threshold they chose on validation data (no test label read);
* per-image protocols (``oracle_per_image``) and a method's own segmentations have no slab counterpart: a
  threshold per lesion slice says nothing about the slices without one.

The fields are merged into the protocol's result row with the prefix ``vol_`` (``vol_view`` names the test view,
``vol_threshold*`` the threshold, ``vol_degenerate*`` the degeneracy as in the slice view).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from benchmark.evaluate import ProtocolResult, degeneracy, segmented_brain_share
from benchmark.predict import Predictions
from benchmark.thresholds import ThresholdResult, binarise, oracle_global
from benchmark.volume_metrics import (
    DEFAULT_DETECTION_OVERLAP,
    DEFAULT_MIN_COMPONENT_VOXELS,
    DEFAULT_SLICE_SCORE_PERCENTILE,
    compute_volume_metrics,
    stack_subject_volumes,
)
from datasets.slices import SliceSet

#: Protocols with one global threshold, which the slab view applies (see the module docstring).
SLAB_PROTOCOLS: frozenset[str] = frozenset({"oracle_global", "val_fpr", "val_labelled"})
SLAB_VIEW = "slab"


@dataclass(frozen=True)
class VolumeOptions:
    """The whole-volume evaluation's settings (config ``volume.*``)."""

    enabled: bool = True
    min_component_voxels: int = DEFAULT_MIN_COMPONENT_VOXELS
    detection_overlap: float = DEFAULT_DETECTION_OVERLAP
    slice_score_percentile: float = DEFAULT_SLICE_SCORE_PERCENTILE

    @classmethod
    def from_mapping(cls, volume: Mapping[str, Any]) -> VolumeOptions:
        """From the ``volume`` config group (checked by :func:`benchmark.config.validate_config`); absent keys
        take the defaults."""
        return cls(
            enabled=bool(volume.get("enabled", True)),
            min_component_voxels=int(volume.get("min_component_voxels", DEFAULT_MIN_COMPONENT_VOXELS)),
            detection_overlap=float(volume.get("detection_overlap", DEFAULT_DETECTION_OVERLAP)),
            slice_score_percentile=float(volume.get("slice_score_percentile", DEFAULT_SLICE_SCORE_PERCENTILE)),
        )


@dataclass(frozen=True)
class SlabResult:
    """One protocol's whole-volume result: row fields, the slab segmentation and the per-subject records."""

    protocol: str
    row: dict[str, float | str | bool]
    segmentation: torch.Tensor  # bool [N_slab, H, W]
    per_subject: pd.DataFrame


def evaluate_slab(
    slice_results: Sequence[ProtocolResult],
    slab_pred: Predictions,
    slab: SliceSet,
    options: VolumeOptions,
    slice_step: int,
    max_brain_share: float,
    seed: int = 0,
    n_boot: int = 1000,
) -> list[SlabResult]:
    """The slab view of every slice-view result whose protocol has a global threshold (:data:`SLAB_PROTOCOLS`)."""
    results = []
    for result in slice_results:
        if result.protocol not in SLAB_PROTOCOLS or result.threshold is None:
            continue
        threshold = slab_oracle(slab_pred, slab) if result.protocol == "oracle_global" else result.threshold
        segmentation = binarise(slab_pred.anomaly_maps, slab.brain, threshold)
        metrics = compute_volume_metrics(
            segmentation, slab_pred.anomaly_maps, slab.labels, slab.brain, slab.subjects,
            slice_step=slice_step,
            min_component_voxels=options.min_component_voxels,
            detection_overlap=options.detection_overlap,
            slice_score_percentile=options.slice_score_percentile,
            n_boot=n_boot, seed=seed,
        )  # fmt: skip
        share = segmented_brain_share(segmentation, slab.brain)
        reason = degeneracy(threshold, share, max_brain_share)
        row: dict[str, float | str | bool] = {
            "vol_view": SLAB_VIEW,
            "vol_threshold": threshold.threshold,
            "vol_threshold_norm": threshold.threshold_norm,
            "vol_threshold_objective": threshold.objective,
            "vol_at_grid_edge": threshold.at_grid_edge,
            "vol_segmented_brain_share": share,
            "vol_degenerate": bool(reason),
            "vol_degenerate_reason": reason,
            "vol_min_component_voxels": options.min_component_voxels,
            "vol_detection_overlap": options.detection_overlap,
            "vol_slice_score_percentile": options.slice_score_percentile,
            **metrics.flat(),
        }
        per_subject = metrics.per_subject.assign(protocol=result.protocol)
        results.append(SlabResult(result.protocol, row, segmentation, per_subject))
    return results


def slab_oracle(slab_pred: Predictions, slab: SliceSet) -> ThresholdResult:
    """``oracle_global`` on the slab: the threshold maximising mean per-subject 3-D Dice over lesion subjects
    (ORACLE: reads the test labels). Subjects without a lesion voxel are left out of the objective (their
    Dice is 1 for an empty prediction, which would reward thresholds that miss everything); their false
    positives are what the healthy-tissue metrics report."""
    maps = stack_subject_volumes(slab_pred.anomaly_maps, slab.subjects, fill=0.0)
    labels = stack_subject_volumes(slab.labels, slab.subjects, fill=False)
    brain = stack_subject_volumes(slab.brain, slab.subjects, fill=0.0)
    lesion = labels.flatten(1).any(1)
    return oracle_global(maps[lesion], labels[lesion], brain[lesion])
