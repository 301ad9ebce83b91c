"""Result rows → tables in the paper's layout (methods as rows; per modality DSC, Sens., Prec., SSIM).

Every table is rendered three ways from one DataFrame: Markdown (best in bold), LaTeX (booktabs, best
in bold) and CSV (plain numbers). The caption names the data set and the threshold protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: (row field, column label, higher is better) of the paper's Table 1, per modality.
PAPER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dice", "DSC"),
    ("sens", "Sens."),
    ("prec", "Prec."),
    ("ssim_paper", "SSIM"),
)
COST_COLUMNS: tuple[tuple[str, str], ...] = (("nfe_per_slice", "NFE"), ("ms_per_slice", "ms/slice"))
MISSING = "–"


@dataclass(frozen=True)
class Table:
    """A rendered table: values (methods x (modality, metric)) and its caption."""

    values: pd.DataFrame  # float, NaN = not applicable / not available
    caption: str
    bold_best: tuple[str, ...]  # metric labels where the best value per column is bold

    def to_markdown(self) -> str:
        cells = self._formatted(bold=lambda s: f"**{s}**")
        header = ["Method", *[f"{mod} {metric}" if mod else metric for mod, metric in cells.columns]]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for method, row in cells.iterrows():
            lines.append("| " + " | ".join([str(method), *row.tolist()]) + " |")
        return f"{self.caption}\n\n" + "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        cells = self._formatted(bold=lambda s: f"\\textbf{{{s}}}")
        groups = [(mod, sum(1 for m, _ in cells.columns if m == mod)) for mod in dict.fromkeys(m for m, _ in cells.columns)]
        spec = "l" + "c" * len(cells.columns)
        top = " & ".join(["", *[f"\\multicolumn{{{n}}}{{c}}{{{_tex(mod) or 'Cost'}}}" for mod, n in groups]])
        sub = " & ".join(["Method", *[_tex(metric) for _, metric in cells.columns]])
        body = [" & ".join([_tex(str(method)), *[_tex(v) for v in row]]) + r" \\" for method, row in cells.iterrows()]
        return "\n".join(
            [
                r"\begin{table}[t]",
                r"\centering",
                f"\\caption{{{_tex(self.caption)}}}",
                f"\\begin{{tabular}}{{{spec}}}",
                r"\toprule",
                top + r" \\",
                sub + r" \\",
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                r"\end{table}",
                "",
            ]
        )

    def to_csv(self, path: Path) -> None:
        flat = self.values.copy()
        flat.columns = [f"{mod} {metric}".strip() for mod, metric in flat.columns]
        flat.index.name = "method"
        flat.to_csv(path, float_format="%.4f")

    def _formatted(self, bold) -> pd.DataFrame:
        out = self.values.map(lambda v: MISSING if pd.isna(v) else _fmt(v))
        for column in self.values.columns:
            if column[1] not in self.bold_best:
                continue
            col = self.values[column]
            if col.notna().sum() < 2:
                continue
            best = col.max()
            for method in col.index[np.isclose(col.fillna(-np.inf), best)]:
                out.loc[method, column] = bold(out.loc[method, column])
        return out


def comparison_table(rows: pd.DataFrame, protocol: str, dataset: str, modalities: list[str]) -> Table:
    """The paper's Table-1 layout for one data set and threshold protocol (mean over seeds)."""
    ok = rows[(rows["dataset"] == dataset) & (rows["protocol"] == protocol)]
    unavailable = rows[(rows["dataset"] == dataset) & (rows["status"] == "unavailable")]
    methods = list(dict.fromkeys(rows[rows["dataset"] == dataset]["method_label"]))
    columns = pd.MultiIndex.from_tuples(
        [(mod, label) for mod in modalities for _, label in PAPER_COLUMNS] + [("", label) for _, label in COST_COLUMNS]
    )
    values = pd.DataFrame(np.nan, index=methods, columns=columns)
    means = ok.groupby(["method_label", "modality"]).mean(numeric_only=True)
    for (method, modality), row in means.iterrows():
        if modality not in modalities:
            continue
        for field, label in PAPER_COLUMNS:
            values.loc[method, (modality, label)] = row.get(field, np.nan)
    cost = ok.groupby("method_label")[[f for f, _ in COST_COLUMNS]].mean()
    for method, row in cost.iterrows():
        for field, label in COST_COLUMNS:
            values.loc[method, ("", label)] = row[field]
    seeds = sorted(ok["seed"].unique().tolist()) if len(ok) else []
    n_test = int(ok["n_test_slices"].iloc[0]) if len(ok) else 0
    size = int(ok["image_size"].iloc[0]) if len(ok) else 0
    notes = f" Not applicable: {', '.join(sorted(set(unavailable['method_label'])))}." if len(unavailable) else ""
    caption = (
        f"Anomaly segmentation on {dataset} ({n_test} test slices, {size}x{size} px), threshold protocol "
        f"'{protocol}', seed(s) {seeds}; mean over seeds. DSC/Sens./Prec. per image then averaged; SSIM = "
        f"ssim_paper on normal tissue; NFE = network evaluations per slice; ms/slice = inference time.{notes}"
    )
    return Table(values=values, caption=caption, bold_best=tuple(label for _, label in PAPER_COLUMNS))


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _tex(text: str) -> str:
    return text.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_").replace("#", r"\#")
