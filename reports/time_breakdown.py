"""Where a run's time goes: the seconds of every cell's stages (``time_<stage>_s`` row fields, written by
:mod:`benchmark.stage_times`) as one table, methods x stages, with the data preparation of the run and totals."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from benchmark.stage_times import PREFIX, SUFFIX, stage_column
from reports.tables import order_methods

#: Stages in the order a cell runs them; stages found in the rows but not listed follow in their own order.
STAGE_ORDER: tuple[str, ...] = (
    "train", "calibrate", "predict_test", "predict_val", "predict_val_labelled", "predict_slab", "evaluate",
    "evaluate_slab", "figures",
)  # fmt: skip
DATA_STAGE = "data"


def stage_names(rows: pd.DataFrame) -> list[str]:
    """The cell stages with a column in ``rows`` (the run-level data stage excluded), in running order."""
    found = [c[len(PREFIX) : -len(SUFFIX)] for c in rows.columns if c.startswith(PREFIX) and c.endswith(SUFFIX)]
    stages = [s for s in found if s != DATA_STAGE]
    return [s for s in STAGE_ORDER if s in stages] + [s for s in stages if s not in STAGE_ORDER]


def time_breakdown(rows: pd.DataFrame, method_order: Sequence[str] = ()) -> pd.DataFrame:
    """One line per (data set, modality, method): seconds per stage and their total (mean over seeds), then a
    total line; data sets and modalities in order of appearance, methods in ``method_order`` (fp32 before other
    precisions). Empty when no row has stage times (results written before they were recorded)."""
    stages = stage_names(rows)
    if not stages:
        return pd.DataFrame()
    cells = rows[rows["status"] == "ok"].drop_duplicates("cell")
    columns = [stage_column(s) for s in stages]
    cells = cells.dropna(subset=columns, how="all")
    if cells.empty:
        return pd.DataFrame()
    cells = order_methods(cells, method_order)
    for column in ("modality", "dataset"):  # stable: data set, then modality, then the method order
        cells = cells.sort_values(column, key=_appearance_rank, kind="stable")
    table = cells.groupby(["dataset", "modality", "method_label"], sort=False)[columns].mean().reset_index()
    table.columns = ["data set", "modality", "method", *stages]
    table["total"] = table[stages].sum(axis=1)
    total = {"data set": "all", "modality": "", "method": "total", **table[[*stages, "total"]].sum().to_dict()}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def _appearance_rank(values: pd.Series) -> pd.Series:
    """Each value's position among the distinct values in order of first appearance (a sort key)."""
    return values.map({v: i for i, v in enumerate(dict.fromkeys(values))})


def data_seconds(rows: pd.DataFrame) -> float:
    """The data preparation time of the run(s) behind ``rows`` (summed over distinct runs; NaN if unknown)."""
    column = stage_column(DATA_STAGE)
    if column not in rows:
        return float("nan")
    per_run = rows.dropna(subset=[column]).drop_duplicates("cell")
    return float(per_run[column].drop_duplicates().sum()) if len(per_run) else float("nan")


def parallelism(rows: pd.DataFrame) -> str:
    """A sentence on how the cells ran (row fields ``cell_workers``, ``torch_threads``), empty if unrecorded: with
    several workers the cells' seconds overlap and add up to more than the wall time."""
    if "cell_workers" not in rows or "torch_threads" not in rows:
        return ""
    cells = rows.dropna(subset=["cell_workers", "torch_threads"]).drop_duplicates("cell")
    if cells.empty:
        return ""
    workers = sorted({int(w) for w in cells["cell_workers"]})
    threads = sorted({int(t) for t in cells["torch_threads"]})
    counts = "/".join(map(str, workers))
    threads_text = f"{'/'.join(map(str, threads))} torch thread{'s' if threads != [1] else ''} each"
    if workers == [1]:
        return f"Cells ran one after another ({threads_text})."
    return (
        f"Cells ran side by side in {counts} worker processes ({threads_text}): their seconds overlap, so the "
        "totals exceed the run's wall time."
    )
