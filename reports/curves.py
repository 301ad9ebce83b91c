"""Training curves from the result rows (PNG and PDF, plus the points as CSV): train and validation loss against
step, one panel per method, one colour per modality. Reads the rows' ``train_history`` field, never models.

Losses of different methods live on different scales (an L1 sum, a noise MSE), so each panel has its own y axis,
logarithmic when every loss in it is positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from reports.figures import plt, save_figure
from reports.tables import order_methods

#: Row field holding a cell's training history: a list of ``{"step", "train_loss", "val_loss", ...}`` records.
HISTORY_FIELD = "train_history"
#: Columns of :func:`curve_points` (one row per cell and validation record).
CURVE_COLUMNS: tuple[str, ...] = (
    "dataset", "method_key", "method_label", "modality", "seed", "cell", "step", "train_loss", "val_loss",
)  # fmt: skip
MAX_COLUMNS = 4  # panels per figure row
#: (column, line style, legend label) of the two curves of a run.
LOSSES: tuple[tuple[str, Literal["solid", "dashed"], str], ...] = (
    ("train_loss", "solid", "train loss"),
    ("val_loss", "dashed", "validation loss"),
)


def curve_points(rows: pd.DataFrame) -> pd.DataFrame:
    """The training records of every cell in ``rows`` (one per cell: a cell's protocol rows share one history)
    as a tidy table with :data:`CURVE_COLUMNS`; missing losses (no validation slices) are NaN. Cells without a
    history (a method that trains nothing, or rows written before histories were stored) add nothing."""
    if HISTORY_FIELD not in rows:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    records = []
    for _, row in rows.drop_duplicates("cell").iterrows():
        history = row[HISTORY_FIELD]
        if not isinstance(history, list):
            continue
        identity = {column: row[column] for column in CURVE_COLUMNS[:6]}
        records += [identity | {key: entry.get(key) for key in CURVE_COLUMNS[6:]} for entry in history]
    points = pd.DataFrame.from_records(records, columns=list(CURVE_COLUMNS))
    return points.astype({"step": "int64", "train_loss": "float64", "val_loss": "float64"})


def loss_curves(rows: pd.DataFrame, out_dir: Path, stem: str, method_order: Sequence[str] | None = None) -> list[Path]:
    """One panel per method (in ``method_order``), a colour per modality, train loss solid and validation loss
    dashed against step (one line per seed). Writes and returns ``<stem>.png``, ``<stem>.pdf`` and the points as
    ``<stem>.csv`` (nothing when no row has a history)."""
    points = curve_points(rows)
    if points.empty:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / f"{stem}.csv"
    points.to_csv(table, index=False, float_format="%.6g")
    methods = list(dict.fromkeys(order_methods(points.drop_duplicates("method_label"), method_order)["method_label"]))
    colours = {m: f"C{i % 10}" for i, m in enumerate(dict.fromkeys(points["modality"]))}
    n_cols = min(len(methods), MAX_COLUMNS)
    n_rows = -(-len(methods) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 2.8 * n_rows), squeeze=False)
    for ax, method in zip(axes.flat, methods):
        _panel(ax, points[points["method_label"] == method], colours)
        ax.set_title(method)
    for ax in axes.flat[len(methods) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colour, label=modality) for modality, colour in colours.items()]
    handles += [Line2D([], [], color="black", linestyle=style, label=label) for _, style, label in LOSSES]
    fig.tight_layout()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), frameon=False)
    return [*save_figure(fig, out_dir, stem), table]


def _panel(ax: Axes, points: pd.DataFrame, colours: dict[str, str]) -> None:
    """One method's curves: per (modality, seed) its train and validation loss; log y axis if all positive."""
    for (modality, _), curve in points.groupby(["modality", "seed"], sort=False):
        curve = curve.sort_values("step")
        for column, style, _ in LOSSES:
            ax.plot(curve["step"], curve[column], color=colours[modality], linestyle=style, marker=".", markersize=3)
    losses = points[[column for column, _, _ in LOSSES]].to_numpy(dtype=float).ravel()
    losses = losses[~np.isnan(losses)]
    if len(losses) and (losses > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
