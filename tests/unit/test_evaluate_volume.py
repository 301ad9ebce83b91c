"""The slab view of the threshold protocols: which threshold each protocol applies to the slab, which protocols
have no slab view, and the whole-volume table (false-positive columns bold at their minimum, NaN footnotes)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.evaluate import evaluate
from benchmark.evaluate_volume import VolumeOptions, evaluate_slab, slab_oracle
from benchmark.predict import Predictions
from benchmark.thresholds import binarise
from benchmark.volume_metrics import compute_volume_metrics
from datasets.slices import SliceSet
from reports.volume import VOLUME_METRICS, volume_table


def _slab() -> tuple[SliceSet, tuple[int, ...]]:
    """Two lesion subjects (3 slices, a lesion on the middle one) and one healthy subject (2 slices)."""
    n, size = 8, 8
    labels = torch.zeros(n, size, size, dtype=torch.bool)
    labels[1, 2:5, 2:5] = True
    labels[4, 3:6, 3:6] = True
    images = torch.zeros(n, 1, size, size)
    subjects = ("a", "a", "a", "b", "b", "b", "h", "h")
    slab = SliceSet(images, torch.ones(n, size, size), labels, ("flair",), subjects, (0, 1, 2, 0, 1, 2, 0, 1))
    return slab, (1, 4)


def _maps(slab: SliceSet) -> Predictions:
    g = torch.Generator().manual_seed(0)
    maps = 0.3 * torch.rand(slab.labels.shape, generator=g) + slab.labels.float()
    maps[6, 0, 0] = 0.9  # a bright pixel on the healthy subject
    return Predictions(maps, None, None, torch.ones(len(maps), dtype=torch.long), 1.0)


def _results(slab: SliceSet, view: tuple[int, ...], pred: Predictions):
    test = slab.subset(list(view))
    test_pred = Predictions(pred.anomaly_maps[list(view)], None, None, pred.nfe[list(view)], 0.5)
    val = slab.subset([6, 7])  # healthy slices stand in for the validation set
    val_pred = Predictions(pred.anomaly_maps[[6, 7]], None, None, pred.nfe[[6, 7]], 0.1)
    protocols = ("oracle_global", "val_fpr", "oracle_per_image")
    return evaluate(test_pred, test, "flair", protocols, val_pred, val, n_boot=10)


def test_each_protocol_applies_its_threshold_to_the_slab() -> None:
    slab, view = _slab()
    pred = _maps(slab)
    results = _results(slab, view, pred)
    volume = evaluate_slab(results, pred, slab, VolumeOptions(min_component_voxels=1), 1, 0.5, n_boot=10)
    by_protocol = {r.protocol: r for r in volume}
    assert set(by_protocol) == {"oracle_global", "val_fpr"}  # a per-image threshold has no slab view
    # val_fpr transfers the threshold chosen on validation data unchanged
    val_fpr = next(r for r in results if r.protocol == "val_fpr")
    assert by_protocol["val_fpr"].row["vol_threshold"] == val_fpr.row["threshold"]
    # oracle_global chooses its own: the slab oracle, whose segmentation is what the row is computed on
    oracle = slab_oracle(pred, slab)
    assert by_protocol["oracle_global"].row["vol_threshold"] == oracle.threshold
    segmentation = binarise(pred.anomaly_maps, slab.brain, oracle)
    assert torch.equal(by_protocol["oracle_global"].segmentation, segmentation)
    expected = compute_volume_metrics(
        segmentation, pred.anomaly_maps, slab.labels, slab.brain, slab.subjects, min_component_voxels=1, n_boot=10
    )
    assert by_protocol["oracle_global"].row["vol_dice"] == pytest.approx(expected.values["vol_dice"])
    assert expected.values["vol_dice"] == pytest.approx(1.0)  # the lesions are separable: the oracle finds them
    assert by_protocol["oracle_global"].row["vol_healthy_subject_fp"] > 0  # the bright healthy pixel is flagged
    assert by_protocol["oracle_global"].row["vol_view"] == "slab"
    per_subject = by_protocol["val_fpr"].per_subject
    assert list(per_subject["subject"]) == ["a", "b", "h"] and set(per_subject["protocol"]) == {"val_fpr"}


def _volume_row(method: str, fp: float, dice: float, **extra) -> dict:
    row = {
        "dataset": "toy", "protocol": "oracle_global", "status": "ok", "method_label": method,
        "method_key": method.lower(), "modality": "flair", "seed": 0, "vol_view": "slab", "vol_degenerate": False,
        "vol_n_subjects": 3, "vol_n_lesion_subjects": 3, "vol_n_healthy_subjects": 0,
    }  # fmt: skip
    row |= {metric: 0.5 for metric in VOLUME_METRICS}
    return row | {"vol_dice": dice, "vol_healthy_slice_fp": fp} | extra


def test_volume_table_bolds_the_lowest_false_positive_share_and_footnotes_nan() -> None:
    reason = "no healthy test subject"
    missing = {"vol_healthy_subject_fp": float("nan"), "vol_healthy_subject_fp_nan_reason": reason}
    rows = pd.DataFrame(
        [_volume_row("A", fp=0.10, dice=0.6, **missing), _volume_row("B", fp=0.02, dice=0.4, **missing)]
    )
    markdown = volume_table(rows, "oracle_global", "toy", ["flair"], ()).to_markdown()
    line = {
        row.split("|")[1].strip(): row
        for row in markdown.splitlines()
        if row.startswith("| A") or row.startswith("| B")
    }
    assert "**0.020**" in line["B"] and "**0.100**" not in line["A"]  # FP share: lower is better
    assert "**0.600**" in line["A"] and "**0.400**" not in line["B"]  # Dice: higher is better
    assert f"vol_healthy_subject_fp: {reason}" in markdown
    assert "3 subjects, 3 with lesions, 0 healthy" in markdown
