"""Degenerate results in benchmark.evaluate: the segmented brain share on a hand-built array, the grid-edge
and brain-share criteria (per-image edges do not count), the row fields and the runner's warning messages."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.evaluate import degeneracy, degenerate_warnings, evaluate, evaluate_segmentation, segmented_brain_share
from benchmark.predict import Predictions
from benchmark.thresholds import GridEdgeWarning, ThresholdResult
from tests.toy_data import toy_slices


def test_segmented_brain_share_counts_marked_brain_pixels_pooled_over_images() -> None:
    brain = torch.tensor([[[1.0, 1.0, 0.0], [0.3, 1.0, 0.0]],  # 4 brain pixels (the soft 0.3 counts)
                          [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])  # 3 brain pixels  # fmt: skip
    seg = torch.tensor([[[1, 0, 1], [1, 0, 0]],  # (0,0) and (1,0) in the brain; (0,2) outside: not counted
                        [[1, 1, 1], [0, 1, 0]]], dtype=torch.bool)  # only (1,1) in the brain  # fmt: skip
    assert segmented_brain_share(seg, brain) == pytest.approx(3 / 7)
    assert segmented_brain_share(torch.zeros_like(seg), brain) == 0.0
    assert math.isnan(segmented_brain_share(seg, torch.zeros_like(brain)))


def _threshold(protocol: str = "oracle_global", at_edge: bool = False, per_image: bool = False) -> ThresholdResult:
    return ThresholdResult(
        protocol, 0.1, 0.0, 0.0, 1.0, is_oracle=True, at_grid_edge=at_edge,
        per_image=torch.zeros(2, dtype=torch.float64) if per_image else None,
    )  # fmt: skip


def test_degeneracy_reasons() -> None:
    assert degeneracy(_threshold(), 0.10, 0.5) == ""
    assert degeneracy(_threshold(at_edge=True), 0.10, 0.5) == "threshold at grid edge (normalised 0)"
    assert degeneracy(_threshold(), 0.93, 0.5) == "segments 93 % of the brain (max 50 %)"
    both = degeneracy(_threshold(at_edge=True), 0.93, 0.5)
    assert both == "threshold at grid edge (normalised 0); segments 93 % of the brain (max 50 %)"
    # oracle_per_image: at_grid_edge = "some image at an edge", not a property of the row
    assert degeneracy(_threshold("oracle_per_image", at_edge=True, per_image=True), 0.10, 0.5) == ""
    per_image_share = degeneracy(_threshold("oracle_per_image", at_edge=True, per_image=True), 0.60, 0.5)
    assert per_image_share == "segments 60 % of the brain (max 50 %)"
    assert degeneracy(_threshold(), 0.50, 0.5) == ""  # "exceeds": equal is fine
    with pytest.raises(ValueError, match=r"max_brain_share must be in \(0, 1\], got 0"):
        degeneracy(_threshold(), 0.1, 0.0)


def _case() -> tuple:
    """Toy test set whose maps separate perfectly: healthy brain 0, lesions 1 (every grid value below 1 is
    perfect, so the first one, 0, wins: a global threshold on the grid edge)."""
    test = toy_slices(4, size=32, lesions=True, seed=3)
    maps = test.labels.float()
    return test, Predictions(maps, None, None, torch.ones(4, dtype=torch.long), 0.1)


def test_grid_edge_result_is_degenerate_and_warned() -> None:
    test, pred = _case()
    with pytest.warns(GridEdgeWarning):
        results = evaluate(pred, test, "flair", ["oracle_global", "oracle_per_image"], n_boot=0)
    edge, per_image = (r.row for r in results)
    lesion_share = float(test.labels.sum() / (test.brain > 0).sum())
    assert edge["at_grid_edge"] and edge["degenerate"] is True
    assert edge["degenerate_reason"] == "threshold at grid edge (normalised 0)"
    assert edge["segmented_brain_share"] == pytest.approx(lesion_share) and edge["max_brain_share"] == 0.5
    assert per_image["at_grid_edge"] and per_image["degenerate"] is False and per_image["degenerate_reason"] == ""
    messages = degenerate_warnings(results)
    assert len(messages) == 1 and messages[0].startswith("oracle_global: degenerate segmentation (threshold at grid")


def test_segmenting_most_of_the_brain_is_degenerate() -> None:
    test, pred = _case()
    whole_brain = (test.brain > 0).clone()
    result = evaluate_segmentation("human_ai", whole_brain, pred, test, "flair", is_oracle=True, n_boot=0)
    assert result.row["segmented_brain_share"] == 1.0 and result.row["degenerate"] is True
    assert result.row["degenerate_reason"] == "segments 100 % of the brain (max 50 %)"
    assert result.row["sens"] == 1.0  # the trap: perfect sensitivity from segmenting everything
    assert degenerate_warnings([result]) == [
        f"human_ai: degenerate segmentation (segments 100 % of the brain (max 50 %)); DSC {result.row['dice']:.3f}, "
        f"Sens. 1.000, Prec. {result.row['prec']:.3f} are not comparable (marked in the tables, never bold)"
    ]
    allowed = evaluate_segmentation(
        "human_ai", whole_brain, pred, test, "flair", is_oracle=True, n_boot=0, max_brain_share=1.0
    )
    assert allowed.row["degenerate"] is False and degenerate_warnings([allowed]) == []
    exact = evaluate_segmentation("human_ai", test.labels, pred, test, "flair", is_oracle=True, n_boot=0)
    assert exact.row["degenerate"] is False and exact.row["dice"] == 1.0


def test_protocol_rows_share_the_threshold_free_metrics_with_unchanged_values() -> None:
    """SSIM and AUROC/AUPRC are computed once per cell; every protocol's row equals compute_metrics run on that
    protocol's segmentation alone (the per-protocol recomputation this replaced), CIs included."""
    from benchmark.metrics import compute_metrics

    test = toy_slices(6, size=16, lesions=True, seed=3)
    generator = torch.Generator().manual_seed(0)
    maps = test.labels.float() + 0.7 * torch.rand(test.labels.shape, generator=generator)
    reconstruction = test.images[:, 0] + 0.1 * torch.rand(test.labels.shape, generator=generator)
    pred = Predictions(maps, reconstruction, None, torch.ones(len(test)), 0.0)
    results = evaluate(pred, test, "flair", ["oracle_global", "oracle_per_image"], n_boot=30, seed=4)
    for result in results:
        alone = compute_metrics(
            result.segmentation, maps, test.labels, test.brain, inputs=test.channel("flair"),
            reconstruction=reconstruction, subjects=test.subjects, n_boot=30, seed=4,
        ).flat()  # fmt: skip
        assert not math.isnan(alone["ssim_paper"]) and not math.isnan(alone["auroc_lo"])
        for key, value in alone.items():
            assert result.row[key] == pytest.approx(value, nan_ok=True, rel=0, abs=0), key
