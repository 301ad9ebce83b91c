"""Cost table and cost report of a timing run (rows of :mod:`benchmark.timing`).

:func:`cost_table` turns ``record == "method_cost"`` rows into a :class:`reports.tables.Table` (one row per
method, medians over seeds); :func:`write_cost_report` writes it as md/tex/csv plus ``cost_report.md`` with
the distance to the compute limit and one section per other record (each method's cost studies, titled by the
rows' ``title``; the measured throughput), rendered generically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reports.tables import Table

#: (row field, column label, scale) of the cost table.
COST_TABLE_COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("params", "Params (M)", 1e-6),
    ("nfe_per_slice", "NFE", 1.0),
    ("ms_per_slice", "ms/slice", 1.0),
    ("ms_per_slice_iqr", "IQR ms", 1.0),
    ("slices_per_s", "slices/s", 1.0),
    ("train_step_ms", "train ms/step", 1.0),
    ("peak_memory_mb", "peak MiB", 1.0),
    ("gflop_per_slice", "GFLOP/slice", 1.0),
)


def method_cost_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The finished per-method rows of a timing store (empty frame if none)."""
    if rows.empty or "record" not in rows:
        return rows.iloc[0:0]
    ok = rows[rows["record"] == "method_cost"]
    return ok[ok["status"] == "ok"] if "status" in ok else ok


def cost_table(rows: pd.DataFrame) -> Table:
    """Methods x cost columns (median over seeds and modalities); caption names device, dtype and options."""
    ok = method_cost_rows(rows)
    if ok.empty:
        raise ValueError("cost_table: no 'method_cost' rows with status ok; run python -m benchmark experiment=timing")
    methods = list(dict.fromkeys(ok["method_label"]))
    columns = pd.MultiIndex.from_tuples([("", label) for _, label, _ in COST_TABLE_COLUMNS])
    values = pd.DataFrame(np.nan, index=methods, columns=columns)
    medians = ok.groupby("method_label").median(numeric_only=True)
    for method, row in medians.iterrows():
        for field, label, scale in COST_TABLE_COLUMNS:
            if field in row:
                values.loc[method, ("", label)] = row[field] * scale
    first = ok.iloc[0]
    options = ", ".join(f"{c.removeprefix('option_')}={first[c]}" for c in ok.columns if c.startswith("option_"))
    caption = (
        f"Cost per method on {first['device']} ({first['dtype']}, {options}), {int(first['image_size'])} px, "
        f"predict batch {int(first['batch_size'])}; ms/slice = median over {int(first['repeats'])} repeats after "
        f"warm-up (IQR beside it); train ms/step at each method's configured batch size; peak memory = "
        f"{first['peak_memory_kind']}; GFLOP/slice counts matmuls/convolutions/attention only."
    )
    return Table(values=values, caption=caption, bold_best=())


def write_cost_report(rows: pd.DataFrame, out_dir: Path) -> Path:
    """``cost.{md,tex,csv}`` and ``cost_report.md`` (tables plus one section per other record: the methods'
    cost studies and the measured throughput)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Cost of every method", ""]
    if method_cost_rows(rows).empty:
        lines.append("No finished timing rows yet.")
    else:
        table = cost_table(rows)
        (out_dir / "cost.md").write_text(table.to_markdown())
        (out_dir / "cost.tex").write_text(table.to_latex())
        table.to_csv(out_dir / "cost.csv")
        lines += [table.to_markdown(), "Files: [cost.md](cost.md), [cost.tex](cost.tex), [cost.csv](cost.csv)", ""]
        lines += _compute_limit_section(rows)
    lines += record_sections(rows)
    path = out_dir / "cost_report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def compute_limit(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: compute-bound ms/slice = GFLOP/slice / measured conv GFLOP/s, and its share of measured ms."""
    ok = method_cost_rows(rows)
    throughput = rows[rows["record"] == "throughput"] if "record" in rows else rows.iloc[0:0]
    if ok.empty or throughput.empty or "gflop_per_slice" not in ok:
        return pd.DataFrame()
    gflops = float(throughput["conv3x3_gflops_per_s"].iloc[-1])
    out = ok.groupby("method_label")[["nfe_per_slice", "gflop_per_slice", "ms_per_slice"]].median()
    out["bound_ms_per_slice"] = 1000 * out["gflop_per_slice"] / gflops
    out["fraction_of_limit"] = out["bound_ms_per_slice"] / out["ms_per_slice"]
    return out


def _compute_limit_section(rows: pd.DataFrame) -> list[str]:
    limit = compute_limit(rows)
    if limit.empty:
        return []
    return [
        "## Distance to the compute limit",
        "",
        "bound = NFE x forward FLOPs / measured conv3x3 throughput; fraction = bound / measured (1 = compute-bound).",
        "",
        _markdown(limit.reset_index()),
        "",
    ]


def record_sections(rows: pd.DataFrame) -> list[str]:
    """One markdown section per ``record`` other than ``method_cost`` (the methods' cost studies, the
    throughput), in order of first appearance, titled by its rows' ``title`` column (else the record name)."""
    if rows.empty or "record" not in rows:
        return []
    lines: list[str] = []
    for record in dict.fromkeys(rows["record"].dropna()):
        if record != "method_cost":
            lines += _record_section(rows, str(record))
    return lines


def _record_section(rows: pd.DataFrame, record: str) -> list[str]:
    part = rows[rows["record"] == record].dropna(axis=1, how="all")
    titles = list(dict.fromkeys(part["title"].dropna())) if "title" in part else []
    drop = [c for c in ("experiment", "record", "title", "protocol", "commit", "torch") if c in part]
    part = part.drop(columns=drop)
    if part.empty:
        return []
    return [f"## {' / '.join(map(str, titles)) or record}", "", _markdown(part), ""]


def _markdown(frame: pd.DataFrame) -> str:
    """A plain markdown table (no tabulate dependency); floats with 4 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "–" if np.isnan(value) else f"{value:.4g}"
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    lines = [header, "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"
