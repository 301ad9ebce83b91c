"""Loss curves of the report come from the rows' stored training histories: one set of points per cell (not per
protocol row), missing validation losses as NaN, cells without a history left out, a figure and its CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.curves import CURVE_COLUMNS, curve_points, loss_curves

HISTORY_AE = [{"step": 2, "train_loss": 4.0, "val_loss": 5.0}, {"step": 4, "train_loss": 2.0, "val_loss": None}]
HISTORY_DAE = [{"step": 3, "train_loss": 0.5, "val_loss": 0.25, "f1_val_loss": 9.0}]


def _rows() -> pd.DataFrame:
    """Two protocol rows of an AE cell, one row of a DAE cell, one cell without a history (trains nothing)."""
    base = {"dataset": "d", "seed": 0}
    return pd.DataFrame(
        [
            base | {"cell": "c1", "method_key": "ae", "method_label": "AE", "modality": "flair", "protocol": "p1",
                    "train_history": HISTORY_AE},
            base | {"cell": "c1", "method_key": "ae", "method_label": "AE", "modality": "flair", "protocol": "p2",
                    "train_history": HISTORY_AE},
            base | {"cell": "c2", "method_key": "dae", "method_label": "DAE", "modality": "t1", "protocol": "p1",
                    "train_history": HISTORY_DAE},
            base | {"cell": "c3", "method_key": "x", "method_label": "X", "modality": "t1", "protocol": "p1",
                    "train_history": None},
        ]
    )  # fmt: skip


def test_curve_points_are_one_record_per_cell_and_validation() -> None:
    points = curve_points(_rows())
    assert list(points.columns) == list(CURVE_COLUMNS)
    assert points[["cell", "step", "train_loss"]].values.tolist() == [["c1", 2, 4.0], ["c1", 4, 2.0], ["c2", 3, 0.5]]
    assert points["val_loss"].tolist()[0] == 5.0 and np.isnan(points["val_loss"].tolist()[1])
    assert points["val_loss"].tolist()[2] == 0.25
    assert points.loc[points["cell"] == "c2", ["method_label", "modality"]].values.tolist() == [["DAE", "t1"]]


def test_rows_without_any_history_give_no_points_and_no_figure(tmp_path) -> None:
    rows = _rows().drop(columns="train_history")
    assert curve_points(rows).empty
    assert loss_curves(rows, tmp_path, "curves") == []
    assert not any(tmp_path.iterdir())


def test_loss_curves_write_the_figure_and_its_points(tmp_path) -> None:
    paths = loss_curves(_rows(), tmp_path / "figures", "loss_curves__d", method_order=["dae", "ae"])
    assert [p.name for p in paths] == ["loss_curves__d.png", "loss_curves__d.pdf", "loss_curves__d.csv"]
    assert all(p.stat().st_size > 0 for p in paths)
    table = pd.read_csv(paths[2])
    assert table["train_loss"].tolist() == [4.0, 2.0, 0.5]
    assert table["val_loss"].tolist()[2] == pytest.approx(0.25)
