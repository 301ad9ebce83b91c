"""Result rows → tables in the paper's layout (methods as rows; per data set/modality DSC, Sens., Prec., SSIM).

Every table is rendered three ways from one set of numbers: Markdown (best in bold), LaTeX (booktabs,
best in bold, oracle rows shaded) and CSV (plain numbers, one column per value and its uncertainty).
Values are means over seeds; the uncertainty is the standard deviation over seeds when a cell has
several seeds, otherwise the 95 % bootstrap CI over test subjects stored in the rows (``<metric>_lo``,
``<metric>_hi``). A second block holds per-image oracle rows (thresholds or iterations chosen with the
test labels), marked with † and never bolded, because they are not comparable with honest predictions.
Values of a degenerate segmentation (row field ``degenerate``, see :mod:`benchmark.evaluate`: threshold on
the grid edge or most of the brain segmented) are marked with ‡ and never bolded either. Cost columns (NFE,
ms/slice) are per data set and modality, after that group's metrics: timings are measured per cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reports.labels import PRECISION, is_low_precision

#: Column label of every row field a table can show (higher is better unless in :data:`LOWER_IS_BETTER`).
METRIC_LABELS: dict[str, str] = {
    "dice": "DSC",
    "sens": "Sens.",
    "prec": "Prec.",
    "ssim_paper": "SSIM",
    "ssim_normal": "SSIM (normal)",
    "dice_small": "Small",
    "dice_medium": "Medium",
    "dice_large": "Large",
    "dice_pooled": "DSC (pooled)",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    # whole-volume view (benchmark.volume_metrics, test slab)
    "vol_dice": "Subj. DSC",
    "vol_sens": "Subj. Sens.",
    "vol_prec": "Subj. Prec.",
    "vol_healthy_slice_fp": "FP healthy slices",
    "vol_healthy_subject_fp": "FP healthy subj.",
    "vol_healthy_subject_flagged": "Healthy subj. flagged",
    "vol_slice_auroc": "Slice AUROC",
    "vol_slice_auprc": "Slice AUPRC",
    "vol_lesion_sens": "Lesion sens.",
    "vol_fp_components": "FP comp./subj.",
    "vol_lesionwise_dice": "Lesion-wise DSC",
}
#: Row fields where lower is better (false-positive rates and counts): bold marks their minimum.
LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"vol_healthy_slice_fp", "vol_healthy_subject_fp", "vol_healthy_subject_flagged", "vol_fp_components"}
)
#: The paper's Table 1 metrics per modality.
PAPER_METRICS: tuple[str, ...] = ("dice", "sens", "prec", "ssim_paper")
#: Cost fields of the rows, shown per (data set, modality) group after its metrics (means over seeds).
COST_COLUMNS: tuple[tuple[str, str], ...] = (("nfe_per_slice", "NFE"), ("ms_per_slice", "ms/slice"))
MISSING = "–"
ORACLE_MARK = "†"
DEGENERATE_MARK = "‡"
#: Readable names of oracle protocols in row labels.
ORACLE_NAMES: dict[str, str] = {"oracle_per_image": "per-image oracle", "human_ai": "human–AI oracle"}


@dataclass(frozen=True)
class Table:
    """A table: values (row label x (group, metric)), optional uncertainty, caption, oracle block.

    ``spread`` holds the uncertainty as numbers: ``{"std": df}`` (several seeds) or ``{"lo": df, "hi": df}``
    (bootstrap CI), each shaped like ``values`` (NaN = none). Rows named in ``oracle_rows`` form the
    second (oracle) block; ``bold_best`` names the metric labels whose best main-block value is bold.
    ``degenerate`` (bool, shaped like ``values``; missing entries = False) marks values of a degenerate
    segmentation: shown with ‡, never bold, and one boolean ``<group> degenerate`` column per group in CSV.
    """

    values: pd.DataFrame  # float, NaN = not applicable / not available
    caption: str
    bold_best: tuple[str, ...]
    spread: dict[str, pd.DataFrame] = field(default_factory=dict)
    oracle_rows: tuple[str, ...] = ()
    oracle_note: str = "per-image oracle: thresholds or iterations chosen with the test labels"
    degenerate: pd.DataFrame = field(default_factory=pd.DataFrame)
    lower_is_better: tuple[str, ...] = ()  # metric labels whose best value is the lowest

    @property
    def main_rows(self) -> list[str]:
        return [r for r in self.values.index if r not in self.oracle_rows]

    @property
    def flags(self) -> pd.DataFrame:
        """``degenerate`` aligned with ``values`` (bool; False where not given)."""
        aligned = self.degenerate.reindex(index=self.values.index, columns=self.values.columns, fill_value=False)
        return aligned.astype(bool)

    def to_markdown(self) -> str:
        cells = self._formatted(bold=lambda s: f"**{s}**", plus_minus="±")
        header = ["Method", *[f"{group} {metric}" if group else metric for group, metric in cells.columns]]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join([str(m), *cells.loc[m].tolist()]) + " |" for m in self.main_rows]
        if self.oracle_rows:
            lines.append("| " + " | ".join([f"*{ORACLE_MARK} {self.oracle_note}*", *[""] * len(cells.columns)]) + " |")
            lines += ["| " + " | ".join([_oracle_label(m), *cells.loc[m].tolist()]) + " |" for m in self.oracle_rows]
        return f"{self.caption}\n\n" + "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """booktabs table; oracle rows are shaded (``\\rowcolor`` needs ``\\usepackage[table]{xcolor}``)."""
        cells = self._formatted(bold=lambda s: f"\\textbf{{{s}}}", plus_minus="±")
        groups = [(g, sum(1 for c, _ in cells.columns if c == g)) for g in dict.fromkeys(c for c, _ in cells.columns)]
        n_columns = len(cells.columns) + 1
        top = " & ".join(["", *[f"\\multicolumn{{{n}}}{{c}}{{{_tex(g) or 'Cost'}}}" for g, n in groups]])
        sub = " & ".join(["Method", *[_tex(metric) for _, metric in cells.columns]])
        body = [" & ".join([_tex(m), *[_tex(v) for v in cells.loc[m]]]) + r" \\" for m in self.main_rows]
        if self.oracle_rows:
            note = _tex(f"{ORACLE_MARK} {self.oracle_note}")
            body += [r"\midrule", f"\\multicolumn{{{n_columns}}}{{l}}{{\\textit{{{note}}}}} \\\\"]
            body += [
                r"\rowcolor{gray!15} " + " & ".join([_tex(_oracle_label(m)), *[_tex(v) for v in cells.loc[m]]]) + r" \\"
                for m in self.oracle_rows
            ]
        return "\n".join(
            [
                "% needs \\usepackage{booktabs,graphicx} and \\usepackage[table]{xcolor}",
                r"\begin{table}[t]",
                r"\centering",
                f"\\caption{{{_tex(self.caption)}}}",
                r"\resizebox{\linewidth}{!}{%",
                f"\\begin{{tabular}}{{{'l' + 'c' * len(cells.columns)}}}",
                r"\toprule",
                top + r" \\",
                sub + r" \\",
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}}",
                r"\end{table}",
                "",
            ]
        )

    def to_csv(self, path: Path) -> None:
        """Plain numbers: one column per value (``<group> <metric>``) and its uncertainty columns."""
        flat = pd.DataFrame(index=self.values.index)
        for column in self.values.columns:
            name = " ".join(c for c in column if c)
            flat[name] = self.values[column]
            for kind, frame in self.spread.items():
                if frame[column].notna().any():
                    flat[f"{name} {kind}"] = frame[column]
        if not self.degenerate.empty:
            by_group = self.flags.T.groupby(level=0, sort=False).any().T
            for group in by_group.columns:
                flat[" ".join(c for c in (group, "degenerate") if c)] = by_group[group]
        flat.insert(0, "block", ["oracle" if m in self.oracle_rows else "main" for m in flat.index])
        flat.index.name = "method"
        flat.to_csv(path, float_format="%.4f")

    def best_rows(self, column: tuple[str, str]) -> list[str]:
        """Main-block rows holding the best (highest; lowest for ``lower_is_better``) value of ``column`` among the
        non-degenerate ones (empty if fewer than two such values)."""
        flags = self.flags[column]
        comparable = [r for r in self.main_rows if not flags[r]]
        col = self.values.loc[comparable, column]
        if column[1] not in self.bold_best or col.notna().sum() < 2:
            return []
        if column[1] in self.lower_is_better:
            return list(col.index[np.isclose(col.fillna(np.inf), col.min())])
        return list(col.index[np.isclose(col.fillna(-np.inf), col.max())])

    def _formatted(self, bold: Callable[[str], str], plus_minus: str) -> pd.DataFrame:
        out = self.values.map(lambda v: MISSING if pd.isna(v) else _fmt(v))
        flags = self.flags
        for row in self.values.index:
            for column in self.values.columns:
                if pd.isna(self.values.loc[row, column]):
                    continue
                if "std" in self.spread and pd.notna(self.spread["std"].loc[row, column]):
                    out.loc[row, column] += f" {plus_minus} {_fmt(self.spread['std'].loc[row, column])}"
                elif "lo" in self.spread and pd.notna(self.spread["lo"].loc[row, column]):
                    lo, hi = self.spread["lo"].loc[row, column], self.spread["hi"].loc[row, column]
                    out.loc[row, column] += f" [{_fmt(lo)}, {_fmt(hi)}]"
                if flags.loc[row, column]:
                    out.loc[row, column] += f" {DEGENERATE_MARK}"
        for column in self.values.columns:
            for row in self.best_rows(column):
                out.loc[row, column] = bold(out.loc[row, column])
        return out


def comparison_table(
    rows: pd.DataFrame,
    protocol: str,
    dataset: str | Sequence[str],
    modalities: Sequence[str],
    *,
    metrics: Sequence[str] = PAPER_METRICS,
    oracle_protocols: Sequence[str] = (),
    oracle_methods: Sequence[str] | None = None,
    method_order: Sequence[str] | None = None,
    degenerate_field: str = "degenerate",
    cost_columns: Sequence[tuple[str, str]] = COST_COLUMNS,
    caption: str | None = None,
) -> Table:
    """The paper's layout for one threshold protocol: methods x (data set, modality) x (metrics, then cost).

    Args:
        rows: result rows (``ResultsStore.rows()``).
        protocol: the threshold protocol of the main block.
        dataset: one data set (columns per modality) or several (columns per data set and modality present).
        modalities: the modalities to show, in order.
        metrics: row fields shown per modality (labels from :data:`METRIC_LABELS`).
        oracle_protocols: rows with ``is_oracle`` and one of these protocols form the oracle block.
        oracle_methods: method keys (``method_key``) allowed in the oracle block; None = all.
        method_order: method keys in the order of the rows (others follow in order of appearance).
        degenerate_field: the row field that flags a degenerate segmentation (``vol_degenerate`` for the
            whole-volume view).
        cost_columns: (row field, label) cost columns after each group's metrics.
        caption: the caption's description of what is shown (default: the slice view's); the table adds its
            notes (oracle, degenerate) after it.
    """
    unknown = [m for m in metrics if m not in METRIC_LABELS]
    if unknown:
        raise KeyError(f"unknown table metrics {unknown}; known: {sorted(METRIC_LABELS)}")
    datasets = [dataset] if isinstance(dataset, str) else list(dataset)
    rows = order_methods(rows[rows["dataset"].isin(datasets)], method_order)
    groups = _groups(rows, datasets, modalities)
    main = rows[rows["protocol"] == protocol].assign(_label=lambda r: r["method_label"])
    oracle = _oracle_rows(rows, oracle_protocols, oracle_methods)
    unavailable = rows[rows["status"] == "unavailable"]
    labels = list(dict.fromkeys([*rows[rows["protocol"].isna() | (rows["protocol"] == protocol)]["method_label"]]))
    oracle_labels = list(dict.fromkeys(oracle["_label"]))
    labels_per_group = [METRIC_LABELS[m] for m in metrics] + [label for _, label in cost_columns]
    columns = pd.MultiIndex.from_tuples([(_group_name(g, datasets), c) for g in groups for c in labels_per_group])
    values = pd.DataFrame(np.nan, index=labels + oracle_labels, columns=columns, dtype=float)
    frames = {"values": values, "std": values.copy(), "lo": values.copy(), "hi": values.copy(),
              "degenerate": pd.DataFrame(False, index=values.index, columns=columns)}  # fmt: skip
    several_seeds = False
    for frame in (main, oracle):
        for (label, ds, modality), cell in frame.groupby(["_label", "dataset", "modality"], sort=False):
            if (ds, modality) in groups:
                group = _group_name((ds, modality), datasets)
                several_seeds |= _fill_cell(frames, label, group, cell, metrics, degenerate_field, cost_columns)
    spread = {"std": frames["std"]} if several_seeds else {"lo": frames["lo"], "hi": frames["hi"]}
    if caption is None:
        caption = _caption(main if len(main) else rows, protocol, datasets, unavailable, several_seeds)
    if oracle_labels:
        caption += f" {ORACLE_MARK}: oracle rows ({', '.join(oracle_protocols)}) use the test labels per image."
    if frames["degenerate"].to_numpy().any():
        caption += _degenerate_note(rows)
    return Table(
        values, caption, tuple(METRIC_LABELS[m] for m in metrics), spread, tuple(oracle_labels),
        degenerate=frames["degenerate"],
        lower_is_better=tuple(METRIC_LABELS[m] for m in metrics if m in LOWER_IS_BETTER),
    )  # fmt: skip


def _fill_cell(
    frames: dict[str, pd.DataFrame],
    label: str,
    group: str,
    cell: pd.DataFrame,
    metrics: Sequence[str],
    degenerate_field: str = "degenerate",
    cost_columns: Sequence[tuple[str, str]] = COST_COLUMNS,
) -> bool:
    """Write one (row label, data set, modality) cell's rows (one per seed) into ``frames``: mean metric and
    cost values, std over seeds or the bootstrap CI, and the degenerate flag on the metric columns (set when
    any seed is degenerate). Returns whether the cell has several seeds."""
    several = cell["seed"].nunique() > 1
    degenerate = _any_degenerate(cell, degenerate_field)
    for metric in metrics:
        column = (group, METRIC_LABELS[metric])
        frames["values"].loc[label, column] = _mean(cell, metric)
        frames["degenerate"].loc[label, column] = degenerate
        if several:
            frames["std"].loc[label, column] = cell[metric].astype(float).std(ddof=1)
        elif f"{metric}_lo" in cell:
            frames["lo"].loc[label, column] = _mean(cell, f"{metric}_lo")
            frames["hi"].loc[label, column] = _mean(cell, f"{metric}_hi")
    for field_name, column_label in cost_columns:
        frames["values"].loc[label, (group, column_label)] = _mean(cell, field_name)
    return several


def _any_degenerate(cell: pd.DataFrame, field_name: str = "degenerate") -> bool:
    """Whether any row of ``cell`` is degenerate (``field_name``). Rows stored before the ``degenerate`` field
    existed fall back to their global threshold's grid-edge flag (``oracle_per_image``'s flag only says one image
    hit an edge)."""

    def degenerate(row: pd.Series) -> bool:
        flag = row.get(field_name)
        if pd.notna(flag):
            return bool(flag)
        edge = row.get("at_grid_edge")
        return bool(pd.notna(edge) and edge) and row.get("protocol") != "oracle_per_image"

    return bool(cell.apply(degenerate, axis=1).any())


def _degenerate_note(rows: pd.DataFrame) -> str:
    """Caption sentence explaining ‡ with the brain-share limit(s) stored in the rows."""
    shares = sorted(rows["max_brain_share"].dropna().unique()) if "max_brain_share" in rows else []
    limits = " / ".join(f"{100 * s:g} %" for s in shares)
    share = f" or more than {limits} of the test brain segmented" if shares else ""
    return (
        f" {DEGENERATE_MARK}: degenerate segmentation (global threshold on the edge of the search grid{share}); "
        "not comparable, never bold."
    )


def order_methods(rows: pd.DataFrame, method_order: Sequence[str] | None) -> pd.DataFrame:
    """``rows`` stably sorted by the position of their ``method_key`` in ``method_order`` (others last, in order of
    appearance), and within a method fp32 rows before those of another precision (``AE`` before ``AE [bf16]``,
    whichever cell ran first)."""
    keys: dict[str, pd.Series] = {}
    if "method_key" in rows:
        listed = list(method_order or ())
        order = listed + [k for k in dict.fromkeys(rows["method_key"]) if k not in listed]
        keys["_rank"] = rows["method_key"].map({key: i for i, key in enumerate(order)})
    if PRECISION in rows:
        keys["_low_precision"] = is_low_precision(rows)
    if not keys:
        return rows
    return rows.assign(**keys).sort_values(list(keys), kind="stable").drop(columns=list(keys))


def _groups(rows: pd.DataFrame, datasets: list[str], modalities: Sequence[str]) -> list[tuple[str, str]]:
    """(data set, modality) column groups: every modality for one data set, those present for several."""
    if len(datasets) == 1:
        return [(datasets[0], m) for m in modalities]
    present = set(zip(rows["dataset"], rows["modality"]))
    return [(d, m) for d in datasets for m in modalities if (d, m) in present]


def _group_name(group: tuple[str, str], datasets: list[str]) -> str:
    return group[1] if len(datasets) == 1 else f"{group[0]} {group[1]}"


def _oracle_rows(rows: pd.DataFrame, protocols: Sequence[str], methods: Sequence[str] | None) -> pd.DataFrame:
    if not protocols or "is_oracle" not in rows:
        return rows.iloc[:0].assign(_label=pd.Series(dtype=str))
    keep = rows["protocol"].isin(list(protocols)) & rows["is_oracle"].fillna(False).astype(bool)
    if methods is not None:
        keep &= rows["method_key"].isin(list(methods))
    oracle = rows[keep]
    labels = [f"{label} ({ORACLE_NAMES.get(p, p)})" for label, p in zip(oracle["method_label"], oracle["protocol"])]
    return oracle.assign(_label=labels)


def _mean(cell: pd.DataFrame, field_name: str) -> float:
    if field_name not in cell:
        return np.nan
    values = pd.to_numeric(cell[field_name], errors="coerce")
    return float(values.mean()) if values.notna().any() else np.nan


def _caption(rows: pd.DataFrame, protocol: str, datasets: list[str], unavailable: pd.DataFrame, seeds_std: bool) -> str:
    """Protocol, data, image size, test-set size, training budget (steps) and seeds of the table."""
    seeds = sorted(int(s) for s in rows["seed"].dropna().unique()) if len(rows) else []
    sizes = sorted({int(s) for s in rows["image_size"].dropna()}) if "image_size" in rows else []
    n_test = ", ".join(
        f"{d}: {int(g['n_test_slices'].max())} test slices / {int(g['n_test_subjects'].max())} subjects"
        for d, g in rows.groupby("dataset", sort=False)
        if "n_test_slices" in g and "n_test_subjects" in g and g["n_test_slices"].notna().any()
    )
    steps = ""
    if "train_steps" in rows and rows["train_steps"].notna().any():
        budget = rows.dropna(subset=["train_steps"]).groupby("method_label", sort=False)["train_steps"].max()
        steps = " Training budget (steps): " + ", ".join(f"{m} {int(s)}" for m, s in budget.items()) + "."
    spread = (
        "mean ± std over seeds"
        if seeds_std
        else "mean [95 % bootstrap CI over test subjects]"
        if len(seeds) <= 1
        else "mean over seeds"
    )
    size = "/".join(f"{s}x{s}" for s in sizes) or "?"
    not_applicable = ", ".join(sorted(set(unavailable["method_label"])))
    notes = f" {MISSING}: not applicable ({not_applicable})." if not_applicable else ""
    if not seeds_std:
        notes += _few_subjects_warning(rows)
    return (
        f"Anomaly segmentation on {', '.join(datasets)} ({n_test or 'no test set'}; {size} px), threshold "
        f"protocol '{protocol}', seed(s) {seeds}; values: {spread}.{steps} DSC/Sens./Prec. per image then "
        f"averaged; SSIM = ssim_paper on normal tissue. Per data set and modality the metrics are followed by "
        f"the cost of that cell: NFE = network evaluations per slice, ms/slice = inference time.{notes}"
    )


def _few_subjects_warning(rows: pd.DataFrame) -> str:
    """A warning per data set whose bootstrap CIs rest on fewer than three test subjects ("" if none)."""
    if "n_test_subjects" not in rows:
        return ""
    counts = rows.groupby("dataset", sort=False)["n_test_subjects"].max().dropna()
    return "".join(
        f" {dataset}: CI over {int(n)} subject(s): not meaningful." for dataset, n in counts.items() if n < 3
    )


def _oracle_label(label: str) -> str:
    return f"{ORACLE_MARK} {label}"


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


_TEX = {
    "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "±": r"$\pm$", "²": r"$^2$", "†": r"$^\dagger$",
    "‡": r"$^\ddagger$", "–": "--",
}  # fmt: skip


def _tex(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in str(text))
