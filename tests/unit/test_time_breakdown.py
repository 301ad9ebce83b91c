"""Stage times of a cell: accumulated per stage, named as row columns, and tabulated per method with totals."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.stage_times import StageTimes, stage_column
from reports.time_breakdown import data_seconds, parallelism, stage_names, time_breakdown


def test_stage_times_accumulate_per_stage(monkeypatch) -> None:
    clock = iter([0.0, 1.5, 10.0, 10.25, 20.0, 20.5])
    monkeypatch.setattr("benchmark.stage_times.time.perf_counter", lambda: next(clock))
    times = StageTimes()
    with times.stage("train"):
        pass
    with times.stage("predict_test"):
        pass
    with times.stage("train"):
        pass
    assert times.fields() == {"time_train_s": 2.0, "time_predict_test_s": 0.25}
    assert stage_column("evaluate") == "time_evaluate_s"


def _row(cell: str, method: str, seed: int, train: float, predict: float, **extra) -> dict:
    row = {"cell": cell, "status": "ok", "dataset": "d", "modality": "flair", "method_label": method, "seed": seed}
    return row | {"time_data_s": 30.0, "time_predict_test_s": predict, "time_train_s": train, "protocol": "p"} | extra


def test_time_breakdown_means_over_seeds_one_line_per_method_and_a_total() -> None:
    rows = pd.DataFrame(
        [
            _row("a0", "AE", 0, train=10.0, predict=1.0),
            _row("a0", "AE", 0, train=10.0, predict=1.0, protocol="q"),  # a second protocol row of the same cell
            _row("a1", "AE", 1, train=20.0, predict=3.0),
            _row("b0", "DAE", 0, train=5.0, predict=0.5),
            {"cell": "c0", "status": "unavailable", "dataset": "d", "modality": "flair", "method_label": "C"},
        ]
    )
    assert stage_names(rows) == ["train", "predict_test"]  # running order, the run-level data stage left out
    table = time_breakdown(rows).set_index("method")
    assert (
        table.loc["AE", "train"] == 15.0 and table.loc["AE", "predict_test"] == 2.0 and table.loc["AE", "total"] == 17.0
    )
    assert table.loc["DAE", "total"] == 5.5 and "C" not in table.index
    assert table.loc["total", "total"] == pytest.approx(22.5)
    assert data_seconds(rows) == 30.0


def test_rows_without_stage_times_give_no_table() -> None:
    rows = pd.DataFrame([{"cell": "a", "status": "ok", "dataset": "d", "modality": "t1", "method_label": "AE"}])
    assert time_breakdown(rows).empty and math.isnan(data_seconds(rows))


def test_parallelism_says_how_the_cells_ran() -> None:
    serial = pd.DataFrame([_row("a0", "AE", 0, 1.0, 1.0, cell_workers=1, torch_threads=2)])
    assert parallelism(serial) == "Cells ran one after another (2 torch threads each)."
    side_by_side = pd.DataFrame(
        [
            _row("a0", "AE", 0, 1.0, 1.0, cell_workers=2, torch_threads=1),
            _row("a0", "AE", 0, 1.0, 1.0, cell_workers=2, torch_threads=1, protocol="q"),
            _row("b0", "DAE", 0, 1.0, 1.0, cell_workers=2, torch_threads=1),
        ]
    )
    assert parallelism(side_by_side) == (
        "Cells ran side by side in 2 worker processes (1 torch thread each): their seconds overlap, so the "
        "totals exceed the run's wall time."
    )
    assert parallelism(pd.DataFrame([_row("a0", "AE", 0, 1.0, 1.0)])) == ""  # rows from before the fields


def test_time_breakdown_orders_modalities_then_methods_fp32_first() -> None:
    def cell(name: str, modality: str, key: str, precision: str) -> dict:
        label = key.upper() + ("" if precision == "fp32" else f" [{precision}]")  # as precision_labels writes it
        return _row(name, label, 0, 1.0, 1.0, modality=modality, method_key=key, precision=precision)

    rows = pd.DataFrame(  # store order: by cell key, bf16 before fp32 for 'dae', 't1' interleaved
        [
            cell("1", "flair", "dae", "bf16"),
            cell("2", "flair", "ae", "fp32"),
            cell("3", "t1", "ae", "fp32"),
            cell("4", "flair", "dae", "fp32"),
            cell("5", "flair", "ae", "bf16"),
        ]
    )
    table = time_breakdown(rows, method_order=("ae", "dae"))
    listed = list(zip(table["modality"], table["method"], strict=True))
    expected = [("flair", "AE"), ("flair", "AE [bf16]"), ("flair", "DAE"), ("flair", "DAE [bf16]"), ("t1", "AE")]
    assert listed == [*expected, ("", "total")]
