"""``report.md`` for one results store: tables for every data set and protocol, method notes,
configuration and environment. Regenerated at the end of every run and by ``python -m reports``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from benchmark.store import ResultsStore
from reports.tables import Table, comparison_table



def write_report(store: ResultsStore, out_dir: Path, cfg: DictConfig | None = None) -> Path:
    """Write tables (md/tex/csv) and ``report.md`` into ``out_dir``; returns the report's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg if cfg is not None else _saved_config(store)
    rows = store.rows()
    lines = [f"# {cfg.experiment.get('title', cfg.experiment.name) if cfg else 'Benchmark report'}", ""]
    if rows.empty:
        lines.append("No finished cells in the results store yet.")
        path = out_dir / "report.md"
        path.write_text("\n".join(lines) + "\n")
        return path
    modalities = list(cfg.experiment.modalities) if cfg else sorted(rows["modality"].unique())
    main_protocol = cfg.experiment.get("table_protocol", "oracle_global") if cfg else "oracle_global"
    protocols = [p for p in rows["protocol"].dropna().unique()]
    protocols.sort(key=lambda p: (p != main_protocol, p))
    lines += ["## Tables", ""]
    for dataset in rows["dataset"].unique():
        for protocol in protocols:
            table = comparison_table(rows, protocol, dataset, modalities)
            stem = f"table__{dataset}__{protocol}"
            _write_table(table, out_dir, stem)
            lines += [
                f"### {dataset} — {protocol}{' (oracle: uses test labels)' if 'oracle' in protocol else ''}",
                "",
                table.to_markdown(),
                f"Files: [{stem}.md]({stem}.md), [{stem}.tex]({stem}.tex), [{stem}.csv]({stem}.csv)",
                "",
            ]
    lines += _threshold_free_section(rows)
    lines += _method_notes(rows)
    lines += _provenance_section(rows, store)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    rows.to_csv(out_dir / "all_rows.csv", index=False)
    return path


def _write_table(table: Table, out_dir: Path, stem: str) -> None:
    (out_dir / f"{stem}.md").write_text(table.to_markdown())
    (out_dir / f"{stem}.tex").write_text(table.to_latex())
    table.to_csv(out_dir / f"{stem}.csv")


def _threshold_free_section(rows: pd.DataFrame) -> list[str]:
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return []
    first = ok.drop_duplicates("cell")
    summary = first.groupby(["dataset", "modality", "method_label"], sort=False)[["auroc", "auprc"]].mean()
    lines = ["## Threshold-free metrics (pixel level, pooled over test brain pixels)", ""]
    lines += ["| Data set | Modality | Method | AUROC | AUPRC |", "|---|---|---|---|---|"]
    for (dataset, modality, method), r in summary.iterrows():
        lines.append(f"| {dataset} | {modality} | {method} | {r['auroc']:.3f} | {r['auprc']:.3f} |")
    return lines + [""]


def _method_notes(rows: pd.DataFrame) -> list[str]:
    lines = ["## Methods and deviations from the references", ""]
    for label, group in rows.groupby("method_label", sort=False):
        first = group.iloc[0]
        lines.append(f"### {label}")
        lines.append("")
        lines.append("Configuration:")
        lines.append("```yaml\n" + str(first["config"]).rstrip() + "\n```")
        for deviation in first.get("deviations") or []:
            lines.append(f"- {deviation}")
        steps = group["train_steps"].dropna()
        if len(steps):
            lines.append(
                f"- Training: {int(steps.max())} steps at most, {group['train_seconds'].mean():.0f} s per model "
                f"on {first['device']}."
            )
        lines.append("")
    return lines


def _provenance_section(rows: pd.DataFrame, store: ResultsStore) -> list[str]:
    lines = ["## Provenance", ""]
    lines.append(f"- Commit(s): {', '.join(sorted(rows['commit'].unique()))}")
    lines.append(f"- Seeds: {sorted(rows['seed'].unique().tolist())}")
    lines.append(f"- Pre-processing hash(es): {', '.join(sorted(rows['preprocess_hash'].unique()))}")
    lines.append(f"- Device(s): {', '.join(sorted(rows['device'].unique()))}")
    env_path = store.environment_path
    if env_path.exists():
        env = json.loads(env_path.read_text())
        lines.append("- Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    config_path = store.config_path
    if config_path.exists():
        lines += ["", "Run configuration:", "```yaml", config_path.read_text().rstrip(), "```"]
    return lines + [""]


def _saved_config(store: ResultsStore) -> DictConfig | None:
    path = store.config_path
    return OmegaConf.load(path) if path.exists() else None  # type: ignore[return-value]
