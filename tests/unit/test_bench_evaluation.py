"""Tests of benchmark.bench_evaluation: the synthetic cell it times and the results it reports."""

from __future__ import annotations

import json

import pytest

from benchmark import bench_evaluation as BE


def test_synthetic_cell_layout():
    scale = BE.Scale(subjects=10, slices=4, size=16, slice_step=2)
    cell = BE.synthetic_cell(scale, seed=3)
    assert len(cell.slab) == 40 and cell.slab.brain.shape == (40, 16, 16)
    lesion = cell.slab.labels.flatten(1).any(1).reshape(10, 4).any(1)
    assert not lesion[4] and not lesion[9] and lesion[[0, 1, 2, 3, 5, 6, 7, 8]].all()  # every fifth healthy
    assert bool(cell.test.labels.flatten(1).any(1).all())  # test: the slab's lesion slices
    assert len(cell.test) == int(cell.slab.labels.flatten(1).any(1).sum())
    assert not bool(cell.val.labels.any()) and bool(cell.labelled.labels.flatten(1).any(1).all())
    assert cell.slab.slice_index[:4] == (70, 72, 74, 76)
    assert bool((cell.slab.labels <= (cell.slab.brain > 0)).all())  # lesions inside the brain


def test_run_reports_every_stage(tmp_path):
    out = tmp_path / "bench.json"
    BE.main(["--subjects", "5", "--slices", "3", "--size", "16", "--repeats", "1", "--warmup", "0",
             "--n-boot", "5", "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert set(result["stages"]) == {
        "threshold_oracle_global", "threshold_val_fpr", "threshold_val_labelled", "threshold_oracle_per_image",
        "slice_metrics_with_ci", "slice_view_evaluate", "slab_oracle", "volume_metrics_with_ci",
        "slab_view_evaluate_slab", "per_subject_records",
    }  # fmt: skip
    assert result["n_slab_slices"] == 15 and result["peak_rss_mib"] > 0
    stage = result["stages"]["slab_oracle"]
    assert stage["repeats"] == 1 and 0 < stage["min_s"] <= stage["median_s"] <= stage["max_s"]


def test_bad_sizes_are_refused():
    with pytest.raises(SystemExit):
        BE.main(["--subjects", "0"])


def test_only_the_chosen_stages_are_timed(tmp_path):
    out = tmp_path / "bench.json"
    BE.main(["--subjects", "5", "--slices", "2", "--size", "12", "--repeats", "1", "--warmup", "0",
             "--stages", "slab_oracle,threshold_val_fpr", "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert set(result["stages"]) == {"slab_oracle", "threshold_val_fpr"} and result["cell_total_s"] is None
    assert result["stages"]["slab_oracle"]["cpu_median_s"] > 0
    with pytest.raises(ValueError, match="unknown stages"):
        BE.main(["--subjects", "5", "--slices", "2", "--size", "12", "--stages", "nope"])
