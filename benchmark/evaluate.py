"""The one evaluation path: threshold protocol → binary segmentation → metrics → result row.

It never looks at which method produced the maps: it reads only :class:`Predictions` and the split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from benchmark.metrics import compute_metrics
from benchmark.predict import Predictions
from benchmark.thresholds import ORACLE_PROTOCOLS, binarise, choose_threshold
from datasets.slices import SliceSet


@dataclass(frozen=True)
class ProtocolResult:
    """Metrics of one method on one test set under one threshold protocol."""

    protocol: str
    row: dict[str, float | str | bool]  # flat metrics + threshold fields (merged into the result row)
    segmentation: torch.Tensor  # bool [N, H, W]
    per_image: dict[str, np.ndarray]  # per-image scores (for CIs, paired tests, size plots)


def needs_validation_maps(protocols: Sequence[str]) -> bool:
    """Whether any protocol needs the method's maps on the validation split."""
    return any(p not in ORACLE_PROTOCOLS for p in protocols)


def evaluate(
    test_pred: Predictions,
    test: SliceSet,
    modality: str,
    protocols: Sequence[str],
    val_pred: Predictions | None = None,
    val: SliceSet | None = None,
    seed: int = 0,
    n_boot: int = 1000,
) -> list[ProtocolResult]:
    """Evaluate ``test_pred`` on ``test`` under every protocol in ``protocols`` (in that order).

    ``modality`` is the input channel the method saw; SSIM compares it with the reconstruction.
    """
    has_reconstruction = test_pred.reconstructions is not None
    results = []
    for protocol in protocols:
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
        metrics = compute_metrics(
            segmentation,
            test_pred.anomaly_maps,
            test.labels,
            test.brain,
            inputs=test.channel(modality) if has_reconstruction else None,
            reconstruction=test_pred.reconstructions,
            subjects=test.subjects,
            n_boot=n_boot,
            seed=seed,
        )
        row = threshold.record() | metrics.flat()
        results.append(ProtocolResult(protocol, row, segmentation, metrics.per_image))
    return results

