"""The pre-processing benchmark: its extrapolation to 1251 BraTS subjects and its peak-memory fit on hand-made runs,
and a whole benchmark on tiny NIfTI fixtures (measurements in this interpreter instead of fresh ones)."""

from __future__ import annotations

import json

import pytest

import benchmark.bench_preprocessing as bench
from benchmark.bench_preprocessing import build_peak_rss, extrapolate, main
from datasets.config import DatasetConfig
from datasets.loader import load_splits
from tests.nifti_fixtures import BRATS_MODALITIES, SLICE_RANGE, write_brats

MIB = 2**20


def run(size: int, peak_mib: float, set_mib: float) -> dict:
    """A measured build of 10 train / 2 val / 4 test subjects; every set holds ``set_mib`` MiB of slices."""
    return {
        "size": size,
        "slice_range": [70, 90],
        "wall_s": 32.0,
        "cpu_s": 48.0,
        "subjects": {"train": 10, "val": 2, "test": 4},
        "slices": {"train": 50, "val": 8, "val_labelled": 2, "test_slab": 80},
        "set_bytes": dict.fromkeys(("train", "val", "val_labelled", "test_slab"), set_mib * MIB),
        "cache_bytes": 4.5 * set_mib * MIB,
        "cache_load": {"rss_baseline_mib": 400.0, "peak_rss_mib": 400.0 + 4 * set_mib},
        "peak_rss_mib": peak_mib,
    }


def test_extrapolation_scales_each_split_by_its_subjects_at_1251() -> None:
    out = extrapolate(run(128, 900.0, 10.0))
    assert out["subjects"] == {"train": 988, "val": 125, "test": 138}
    assert out["wall_s"] == pytest.approx(32.0 / 16 * 1251) and out["cpu_s"] == pytest.approx(3.0 * 1251)
    # 5 train slices per subject x 988; 1 MiB / 5 slices each
    assert out["sets"]["train"] == {"slices": 4940, "bytes": pytest.approx(4940 * 10 / 50 * MIB)}
    assert out["sets"]["val"]["slices"] == 500 and out["sets"]["val_labelled"]["slices"] == 125
    assert out["sets"]["test_slab"]["slices"] == 2760  # 20 per test subject
    data = (4940 / 50 + 500 / 8 + 125 / 2 + 2760 / 80) * 10 * MIB
    assert out["in_memory_gib"] == pytest.approx(data / 2**30)
    assert out["cache_gib"] == pytest.approx(4.5 * 10 * MIB * data / (40 * MIB) / 2**30)
    assert out["cache_load_peak_rss_gib"] == pytest.approx((400 + 40 * data / (40 * MIB)) / 1024)
    assert out["train_bound_gib"] == pytest.approx(20 * 988 * 10 / 50 / 1024)  # every range slice, 0.2 MiB each


def test_peak_rss_is_fitted_as_fixed_plus_slope_times_slice_bytes() -> None:
    runs = [run(64, 1000.0 + 2 * 40, 10.0), run(128, 1000.0 + 2 * 160, 40.0)]  # fixed 1000 MiB, 2 MiB per MiB
    assert build_peak_rss(runs, 1000 * MIB) == pytest.approx((1000 + 2 * 1000) / 1024)
    assert build_peak_rss(runs[:1], 1000 * MIB) is None  # one size cannot separate the fixed part


def test_the_benchmark_measures_two_sizes_and_extrapolates(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "_run_child", bench.measure)  # a fresh interpreter per build costs seconds here
    root = tmp_path / "brats"
    write_brats(root, n=8)
    out = tmp_path / "bench.json"
    main(["--root", str(root), "--size", "8", "16", "--slice-range", *map(str, SLICE_RANGE), "--pools", "thread",
          "--workers", "2", "--read-subjects", "2", "--tmp", str(tmp_path), "--out", str(out)])  # fmt: skip
    results = json.loads(out.read_text())
    assert [(r["size"], r["pool"]) for r in results["runs"]] == [(8, "thread"), (16, "thread")]
    assert results["reading"]["subjects"] == 2 and results["reading"]["read_s_per_subject"] > 0
    for run in results["runs"]:
        config = DatasetConfig(layout="brats", root=root, modalities=BRATS_MODALITIES, image_size=run["size"],
                               slice_range=SLICE_RANGE, cache_dir=tmp_path / f"direct{run['size']}")  # fmt: skip
        direct = load_splits(config, progress=False)
        assert run["slices"] == {name: len(getattr(direct, name)) for name in run["slices"]}
        assert run["set_bytes"]["train"] == len(direct.train) * (4 + 1 + 0.25) * 4 * run["size"] ** 2
        assert run["cache_load"]["slices"] == run["slices"] and run["cpu_s"] > 0 and 0 < run["read_cpu_share"]
        assert run["cache_bytes"] == sum(p.stat().st_size for p in (tmp_path / f"direct{run['size']}").iterdir())
        assert run["extrapolated"]["subjects"] == {"train": 988, "val": 125, "test": 138}
        assert run["extrapolated"]["build_peak_rss_gib"] is not None
    assert list(tmp_path.glob("tmp*")) == []  # the benchmark's caches are removed
