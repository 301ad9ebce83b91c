"""Sensitivity sweeps (the paper's Fig. 3): a metric against one swept method parameter, one line per modality.

An experiment with ``experiment.sweep: {method, parameter, values, label}`` (e.g.
``configs/experiment/sensitivity_tau.yaml``) runs one cell per value. The value of each row is read from its
flattened configuration column (``param.tau_percentile``, ``train.steps``; see :mod:`benchmark.schema`),
never from its label, so the numbers on the x axis are the ones that ran.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from reports.figures import plt, save_figure

DEFAULT_PROTOCOL = "oracle_global"


def sensitivity_table(
    rows: pd.DataFrame, parameter: str, protocol: str = DEFAULT_PROTOCOL, metric: str = "dice"
) -> pd.DataFrame:
    """Mean ``metric`` (over seeds) per (dataset, modality, value of the row column ``parameter``) at
    ``protocol``.

    Columns: ``dataset``, ``modality``, ``<parameter>``, ``<metric>`` (mean), ``<metric>_std`` (over seeds,
    NaN for one seed), ``n_seeds``, ``n_degenerate`` (seeds whose result is flagged ``degenerate``: threshold
    on the grid edge or most of the brain segmented); sorted by dataset, modality, value. Rows of other
    protocols and cells that did not run (``status`` not ``ok``) are left out.
    """
    columns = ["dataset", "modality", parameter, metric, f"{metric}_std", "n_seeds", "n_degenerate"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    missing = {"dataset", "modality", "protocol", parameter, metric} - set(rows.columns)
    if missing:
        raise KeyError(f"sensitivity_table: result rows lack the columns {sorted(missing)}")
    chosen = rows[rows["protocol"] == protocol]
    if "status" in chosen:
        chosen = chosen[chosen["status"] == "ok"]
    if chosen.empty:
        return pd.DataFrame(columns=columns)
    degenerate = chosen["degenerate"].fillna(False).astype(bool) if "degenerate" in chosen else False
    chosen = chosen.assign(**{parameter: pd.to_numeric(chosen[parameter]), "n_degenerate": degenerate})
    table = (
        chosen.groupby(["dataset", "modality", parameter])
        .agg(
            **{
                metric: (metric, "mean"),
                f"{metric}_std": (metric, "std"),
                "n_seeds": (metric, "count"),
                "n_degenerate": ("n_degenerate", "sum"),
            }
        )
        .reset_index()
    )
    return table.sort_values(["dataset", "modality", parameter], ignore_index=True)[columns]


def sensitivity_plot(table: pd.DataFrame, parameter: str, label: str, metric: str = "dice") -> plt.Figure:
    """Line plot of a :func:`sensitivity_table`: ``metric`` vs the parameter, one line per modality (per
    data set and modality when the table has several data sets), in the table's order."""
    data = table.assign(
        series=table["modality"] if table["dataset"].nunique() == 1 else table["dataset"] + " " + table["modality"]
    )
    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    sns.lineplot(data=data, x=parameter, y=metric, hue="series", marker="o", ax=ax, sort=True)
    ax.set_xlabel(label)
    ax.set_ylabel(f"{'DSC' if metric == 'dice' else metric}")
    ax.set_xticks(sorted(data[parameter].unique()))
    legend = ax.get_legend()
    if legend is not None:
        legend.set_title("")
    fig.tight_layout()
    return fig


def sensitivity_figure(
    rows: pd.DataFrame,
    parameter: str,
    label: str,
    out_dir: Path,
    protocol: str = DEFAULT_PROTOCOL,
    metric: str = "dice",
) -> list[Path]:
    """Write ``sensitivity__<parameter>.png`` and ``.pdf`` into ``out_dir`` (the paper's Fig. 3 layout);
    returns the paths, or ``[]`` when no row of ``protocol`` ran."""
    table = sensitivity_table(rows, parameter, protocol, metric)
    if table.empty:
        return []
    return save_figure(sensitivity_plot(table, parameter, label, metric), Path(out_dir), f"sensitivity__{parameter}")
