"""``report.md`` for one results store: the paper-layout tables (md/tex/csv) with an oracle block, paired
tests, figures, sensitivity sweeps and cost tables when present, method notes with deviations,
configuration and environment. Regenerated at the end of every run and by ``python -m reports``.
Reads only rows, saved arrays and job records, never models."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import shutil
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from benchmark.config import Sweep, experiment_sweep
from benchmark.store import ResultsStore
from reports import curves, figures, precision, time_breakdown, volume
from reports.labels import configuration_labels
from reports.stats import wilcoxon_markdown, wilcoxon_vs_reference
from reports.tables import PAPER_METRICS, Table, comparison_table

log = logging.getLogger("reports")
#: Row field that lists a cell's diagnostic figures (paths relative to the results folder).
FIGURES_FIELD = "figures"


@dataclass(frozen=True)
class ReportSettings:
    """What the report reads from ``experiment.*`` (defaults when a key or the whole config is missing)."""

    title: str = "Benchmark report"
    modalities: tuple[str, ...] = ()
    table_protocol: str = "oracle_global"
    protocols: tuple[str, ...] = ()  # threshold protocols tabulated (empty: every protocol in the rows)
    metrics: tuple[str, ...] = PAPER_METRICS
    oracle_protocols: tuple[str, ...] = ()
    oracle_methods: tuple[str, ...] | None = None
    method_order: tuple[str, ...] = ()
    reference_method: str = ""  # method key of the paired tests (experiment.reference_method); "" = none
    n_examples: int = 4
    sweep: Sweep | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig | None) -> ReportSettings:
        if cfg is None:
            return cls()
        e = cfg.experiment
        oracle_methods = e.get("oracle_methods")
        sweep = experiment_sweep(cfg)
        keys = [str(k) for k in cfg.get("methods") or ()]
        reference = str(e.get("reference_method") or cls.reference_method)
        if sweep is not None:
            swept = [sweep.key(v) for v in sweep.values]
            keys = [k for key in keys for k in (swept if key == sweep.method else [key])]
            reference = sweep.key(sweep.reference) if sweep.reference is not None else reference
        return cls(
            title=str(e.get("title") or e.get("name") or cls.title),
            modalities=tuple(e.get("modalities") or ()),
            table_protocol=str(e.get("table_protocol") or cls.table_protocol),
            protocols=tuple(e.get("protocols") or ()),
            metrics=tuple(e.get("columns") or PAPER_METRICS),
            oracle_protocols=tuple(e.get("oracle_protocols") or ()),
            oracle_methods=None if oracle_methods is None else tuple(oracle_methods),
            method_order=tuple(keys),
            reference_method=reference,
            n_examples=int(e.get("figure_examples") or cls.n_examples),
            sweep=sweep,
        )


def write_report(
    store: ResultsStore, out_dir: Path, cfg: DictConfig | None = None, cells: Collection[str] | None = None
) -> Path:
    """Write tables (md/tex/csv), figures (png/pdf), the per-image table and ``report.md`` into ``out_dir``;
    returns its path.

    ``cells``: the cells of the experiment being reported (the runner passes its own); None reports every
    cell in the store. Rows are labelled so that each label is one configuration (:mod:`reports.labels`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg if cfg is not None else _saved_config(store)
    settings = ReportSettings.from_config(cfg)
    lines = [f"# {settings.title}", ""]
    all_rows = store.rows(cells)
    if all_rows.empty:
        lines.append("No finished cells in the results store yet.")
        return _write_text(out_dir / "report.md", lines)
    all_rows = all_rows.assign(method_label=configuration_labels(all_rows))
    lines += _scope_note(store, cells)
    per_image = _per_image_table(store, all_rows, out_dir)
    timing = all_rows[all_rows["record"].notna()] if "record" in all_rows else all_rows.iloc[:0]  # timing harness
    rows = all_rows.drop(index=timing.index)
    if not rows.empty:
        lines += _tables_section(per_image, rows, settings, out_dir)
        lines += _precision_section(per_image, rows, settings, out_dir)
        lines += _volume_section(store, rows, settings, out_dir)
        lines += _figures_section(store, rows, settings, out_dir)
        lines += _curves_section(rows, settings, out_dir)
        lines += _sweep_section(rows, settings, out_dir)
        lines += _threshold_free_section(rows)
        lines += [
            "## Per-image results",
            "",
            "One record per cell, threshold protocol and test slice (subject, "
            "slice, lesion size, Dice, sensitivity, precision, SSIM, threshold): "
            + _links("per_image", ("parquet", "csv")),
            "",
        ]
    lines += _time_section(rows, out_dir, settings.method_order)
    lines += _cost_section(timing, out_dir)
    lines += _diagnostic_section(all_rows, store, out_dir)
    lines += _method_notes(all_rows)
    lines += _provenance_section(all_rows, store)
    all_rows.to_csv(out_dir / "all_rows.csv", index=False)
    return _write_text(out_dir / "report.md", lines)


def _scope_note(store: ResultsStore, cells: Collection[str] | None) -> list[str]:
    """Say how many cells of the store the report leaves out (other experiments, configurations or data)."""
    if cells is None:
        return []
    shown = set(cells) & set(store.cells())
    others = len(store.cells()) - len(shown)
    if others <= 0:
        return []
    return [
        f"This report shows the {len(shown)} cells of this experiment; the results store holds "
        f"{others} other cell(s) (earlier configurations, data or experiments), left out. "
        "`python -m reports <run folder>` reports every cell, one labelled row per configuration.",
        "",
    ]


def _per_image_table(store: ResultsStore, rows: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """The tidy per-image records of the reported cells (labels as in the tables), written as
    ``per_image.parquet`` and ``per_image.csv``."""
    per_image = store.per_image(rows["cell"].unique())
    labels = rows.drop_duplicates("cell").set_index("cell")["method_label"]
    per_image = per_image.assign(method_label=per_image["cell"].map(labels))
    per_image.to_parquet(out_dir / "per_image.parquet", index=False)
    per_image.to_csv(out_dir / "per_image.csv", index=False, float_format="%.6g")
    return per_image


def _tables_section(per_image: pd.DataFrame, rows: pd.DataFrame, settings: ReportSettings, out_dir: Path) -> list[str]:
    """Main table per data set (and all data sets together) and protocol; paired tests beside the main one."""
    protocols = [
        p
        for p in rows["protocol"].dropna().unique()
        if p not in settings.oracle_protocols and (not settings.protocols or p in settings.protocols)
    ]
    protocols.sort(key=lambda p: (p != settings.table_protocol, p))
    datasets = list(dict.fromkeys(rows["dataset"]))
    scopes = [[d] for d in datasets] + ([datasets] if len(datasets) > 1 else [])
    lines = ["## Tables", ""]
    for protocol in protocols:
        is_main = protocol == settings.table_protocol
        for scope in scopes:
            name = scope[0] if len(scope) == 1 else "all"
            table = comparison_table(
                rows, protocol, scope, _modalities(rows[rows["dataset"].isin(scope)], settings.modalities),
                metrics=settings.metrics,
                oracle_protocols=settings.oracle_protocols if is_main else (),
                oracle_methods=settings.oracle_methods,
                method_order=settings.method_order,
            )  # fmt: skip
            stem = f"table__{name}__{protocol}"
            write_table(table, out_dir, stem)
            oracle = " (oracle threshold: uses test labels)" if _is_oracle(rows, protocol) else ""
            heading = f"### {', '.join(scope)} — {protocol}{oracle}"
            lines += [heading, "", table.to_markdown(), _links(stem, ("md", "tex", "csv")), ""]
        if is_main:
            lines += _paired_tests(per_image, rows, protocol, settings, out_dir)
    return lines


def _precision_section(
    per_image: pd.DataFrame, rows: pd.DataFrame, settings: ReportSettings, out_dir: Path
) -> list[str]:
    """Dice of every cell run at another precision than fp32 beside its fp32 twin (reports/precision.py)."""
    pairs = precision.precision_pairs(rows, per_image, settings.table_protocol)
    if pairs.empty:
        return []
    pairs.to_csv(out_dir / "precision.csv", index=False, float_format="%.6g")
    return [
        f"## Precision ({settings.table_protocol})",
        "",
        "Each cell computed at lower precision (`compute.precision`, torch.autocast for fit, calibration and "
        "inference) beside the same configuration and seed in fp32: Δ = lower minus fp32 Dice, its paired "
        "subject-bootstrap 95 % CI over the same test slices, and the fp32 Dice's seed-to-seed SD (run-to-run "
        "noise) where several seeds ran.",
        "",
        *precision.precision_markdown(pairs),
        _links("precision", ("csv",)),
        "",
    ]


def _volume_section(store: ResultsStore, rows: pd.DataFrame, settings: ReportSettings, out_dir: Path) -> list[str]:
    """Whole-volume tables per data set and protocol (main protocol first), the per-subject records and figures."""
    if not volume.has_volume_results(rows):
        return []
    with_volume = rows[rows["vol_view"].notna()]
    protocols = sorted(with_volume["protocol"].dropna().unique(), key=lambda p: (p != settings.table_protocol, p))
    lines = [
        "## Whole-volume evaluation",
        "",
        "From the same predictions as the slice tables: every test subject's slab (every eval_slice_step-th brain "
        "slice of the slice range, lesion-free ones and healthy test subjects included) scored per subject. "
        + volume.definitions(with_volume)
        + " Per-subject records: "
        + _links("per_subject", ("parquet", "csv")),
        "",
    ]
    per_subject = store.per_subject(rows["cell"].unique())
    if not per_subject.empty:
        labels = rows.drop_duplicates("cell").set_index("cell")["method_label"]
        per_subject = per_subject.assign(method_label=per_subject["cell"].map(labels))
        per_subject.to_parquet(out_dir / "per_subject.parquet", index=False)
        per_subject.to_csv(out_dir / "per_subject.csv", index=False, float_format="%.6g")
    for dataset in dict.fromkeys(with_volume["dataset"]):
        of_dataset = with_volume[with_volume["dataset"] == dataset]
        modalities = _modalities(of_dataset, settings.modalities)
        for protocol in protocols:
            table = volume.volume_table(with_volume, protocol, dataset, modalities, settings.method_order)
            stem = f"volume__{dataset}__{protocol}"
            write_table(table, out_dir, stem)
            heading = f"### {dataset} — whole volume — {protocol}"
            lines += [heading, "", table.to_markdown(), _links(stem, ("md", "tex", "csv")), ""]
        main = of_dataset[of_dataset["protocol"] == settings.table_protocol]
        if main.empty or per_subject.empty:
            continue
        of_main = per_subject["cell"].isin(main["cell"]) & (per_subject["protocol"] == settings.table_protocol)
        paths = volume.per_subject_dice_figure(
            per_subject[of_main], main, out_dir / "figures", f"subject_dice__{dataset}"
        )
        lines += _figure_lines(f"Per-subject Dice (slab, {settings.table_protocol}) — {dataset}", paths, out_dir)
        for modality in modalities:
            group = volume.figure_rows(main[main["modality"] == modality], settings.method_order)
            paths = volume.slab_figure(store, group, out_dir / "figures", f"slab__{dataset}__{modality}")
            lines += _figure_lines(f"One test subject's slab — {dataset} {modality}", paths, out_dir)
    return lines


def write_table(table: Table, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` of one table."""
    paths = [out_dir / f"{stem}.{suffix}" for suffix in ("md", "tex", "csv")]
    paths[0].write_text(table.to_markdown())
    paths[1].write_text(table.to_latex())
    table.to_csv(paths[2])
    return paths


def _paired_tests(
    per_image: pd.DataFrame, rows: pd.DataFrame, protocol: str, settings: ReportSettings, out_dir: Path
) -> list[str]:
    tests = wilcoxon_vs_reference(per_image, rows, protocol, settings.reference_method)
    if tests.empty:
        return []
    stem = f"wilcoxon__{protocol}"
    tests.to_csv(out_dir / f"{stem}.csv", index=False, float_format="%.6g")
    return [
        f"#### Paired Wilcoxon signed-rank tests ({protocol}): {tests['reference'].iloc[0]} vs each baseline",
        "",
        "Per-subject mean Dice (test slices averaged per subject, then over seeds); two-sided; differences "
        "are reference − baseline; p-values raw and Holm-adjusted (over the baselines) within each data set and "
        "modality.",
        "",
        wilcoxon_markdown(tests),
        _links(stem, ("csv",)),
        "",
    ]


def _figures_section(store: ResultsStore, rows: pd.DataFrame, settings: ReportSettings, out_dir: Path) -> list[str]:
    """Fig. 2 grid and reconstructions per (data set, modality), Dice by lesion size per data set."""
    main = rows[(rows["protocol"] == settings.table_protocol) & (rows["status"] == "ok")]
    if main.empty:
        return []
    fig_dir = out_dir / "figures"
    lines = ["## Figures", "", f"Threshold protocol of the segmentations: {settings.table_protocol}.", ""]
    for dataset, by_dataset in main.groupby("dataset", sort=False):
        paths = figures.dice_by_size(by_dataset, fig_dir, f"dice_by_size__{dataset}")
        lines += _figure_lines(f"Dice by lesion size — {dataset}", paths, out_dir)
        for modality in _modalities(by_dataset, settings.modalities):
            of_modality = by_dataset[by_dataset["modality"] == modality]
            cell_rows = figures.one_row_per_method(of_modality, settings.method_order)
            stem = f"{dataset}__{modality}"
            grid = figures.qualitative_grid(store, cell_rows, fig_dir, f"qualitative__{stem}", settings.n_examples)
            lines += _figure_lines(
                f"Qualitative results — {dataset} {modality} (input, ground truth, per method: anomaly map "
                "normalised with the protocol's test-set min–max on one colour scale [0, 1], and segmentation)",
                grid, out_dir,
            )  # fmt: skip
            recon = figures.reconstruction_examples(
                store, cell_rows, fig_dir, f"reconstructions__{stem}", settings.n_examples
            )
            lines += _figure_lines(f"Reconstructions — {dataset} {modality}", recon, out_dir)
    return lines


def _curves_section(rows: pd.DataFrame, settings: ReportSettings, out_dir: Path) -> list[str]:
    """Training and validation loss against step per data set, from the rows' histories (reports/curves.py)."""
    lines = []
    for dataset, by_dataset in rows.groupby("dataset", sort=False):
        paths = curves.loss_curves(by_dataset, out_dir / "figures", f"loss_curves__{dataset}", settings.method_order)
        caption = f"Training curves — {dataset} (train loss solid, validation loss dashed; points in the .csv)"
        lines += _figure_lines(caption, paths, out_dir)
    return ["## Training curves", "", *lines] if lines else []


def _sweep_section(rows: pd.DataFrame, settings: ReportSettings, out_dir: Path) -> list[str]:
    """Sensitivity table and figure of an ``experiment.sweep`` (reports/sensitivity.py)."""
    if not settings.sweep:
        return []
    column, label = settings.sweep.column, settings.sweep.label
    lines = [f"## Sensitivity to {label}", ""]
    sensitivity = _optional_module("reports.sensitivity")
    if sensitivity is None:
        return lines + ["reports/sensitivity.py is not available in this checkout: sweep table and figure skipped.", ""]
    swept = rows[rows["method_key"].isin([settings.sweep.key(v) for v in settings.sweep.values])]
    table = sensitivity.sensitivity_table(swept, column, settings.table_protocol)
    stem = f"sensitivity__{column}"
    table.to_csv(out_dir / f"{stem}.csv", index=False, float_format="%.4f")
    lines += [frame_markdown(table), _links(stem, ("csv",)), ""]
    paths = sensitivity.sensitivity_figure(swept, column, label, out_dir / "figures", settings.table_protocol)
    return lines + _figure_lines(f"Sensitivity to {label}", paths, out_dir)


def _time_section(rows: pd.DataFrame, out_dir: Path, method_order: Sequence[str]) -> list[str]:
    """Seconds per stage of every cell (reports/time_breakdown.py) and the run's data preparation."""
    table = time_breakdown.time_breakdown(rows, method_order)
    if table.empty:
        return []
    table.to_csv(out_dir / "time_breakdown.csv", index=False, float_format="%.2f")
    data = time_breakdown.data_seconds(rows)
    return [
        "## Where the time goes",
        "",
        f"Wall seconds per stage of each cell (device-synchronised); data preparation of the run(s): {data:.1f} s "
        "(generation, reading and pre-processing, or the slice cache). train = fitting (or loading a checkpoint); "
        "predict_<set> = inference on that set (predict_slab: the test slab's slices outside the test slices). "
        + time_breakdown.parallelism(rows),
        "",
        frame_markdown(table),
        _links("time_breakdown", ("csv",)),
        "",
    ]


def _cost_section(timing: pd.DataFrame, out_dir: Path) -> list[str]:
    """Cost table of the timing harness's rows (reports/cost.py)."""
    if timing.empty:
        return []
    lines = ["## Cost (timing harness)", ""]
    cost = _optional_module("reports.cost")
    if cost is None:
        return lines + ["reports/cost.py is not available in this checkout: cost table skipped.", ""]
    table = cost.cost_table(timing)
    write_table(table, out_dir, "cost")
    return lines + [table.to_markdown(), _links("cost", ("md", "tex", "csv")), ""]


def _diagnostic_section(rows: pd.DataFrame, store: ResultsStore, out_dir: Path) -> list[str]:
    """The methods' diagnostic figures listed in the rows, copied from the results folder into the report
    folder (same relative paths) and linked."""
    if FIGURES_FIELD not in rows:
        return []
    paths = [p for entry in rows[FIGURES_FIELD] if isinstance(entry, list) for p in entry]
    lines = []
    for path in dict.fromkeys(paths):
        source = store.root / path
        if not source.is_file():
            lines.append(f"- {path} (missing from {store.root})")
            continue
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out_dir / path)
        lines.append(f"- [{path}]({path})")
    return ["## Diagnostic figures", "", *lines, ""] if lines else []


def frame_markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (floats with 4 significant digits)."""

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


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
    if "method_label" not in rows:
        return []
    lines = ["## Methods and deviations from the references", ""]
    for label, group in rows.groupby("method_label", sort=False):
        first = group.iloc[0]
        lines += [f"### {label}", ""]
        if first.get("status") == "unavailable":
            lines.append(f"- Not applicable here: {first.get('reason')}")
        if isinstance(first.get("config"), str):
            lines += ["Configuration:", "```yaml\n" + first["config"].rstrip() + "\n```"]
        deviations = first.get("deviations")
        lines += [f"- {deviation}" for deviation in (deviations if isinstance(deviations, list) else [])]
        steps = group["train_steps"].dropna() if "train_steps" in group else pd.Series(dtype=float)
        if len(steps):
            lines.append(
                f"- Training: {int(steps.max())} steps at most, {group['train_seconds'].mean():.0f} s per model "
                f"on {first['device']}."
            )
        lines.append("")
    return lines


def _provenance_section(rows: pd.DataFrame, store: ResultsStore) -> list[str]:
    lines = ["## Provenance", ""]
    fields = (("commit", "Commit(s)"), ("preprocess_hash", "Pre-processing hash(es)"), ("device", "Device(s)"))
    for column, name in fields:
        if column in rows:
            lines.append(f"- {name}: {', '.join(sorted(str(v) for v in rows[column].dropna().unique()))}")
    if "seed" in rows:
        lines.append(f"- Seeds: {sorted(int(s) for s in rows['seed'].dropna().unique())}")
    jobs = store.jobs()
    if jobs:
        lines.append(f"- Jobs recorded: {len(jobs)} (config and environment of each in `{store.jobs_dir}`)")
    if store.environment_path.exists():
        env = json.loads(store.environment_path.read_text())
        lines.append("- Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    if store.config_path.exists():
        lines += ["", "Run configuration (latest job):", "```yaml", store.config_path.read_text().rstrip(), "```"]
    return lines + [""]


def _modalities(rows: pd.DataFrame, preferred: tuple[str, ...]) -> list[str]:
    """Modalities present in ``rows``: the configured order first, then the others in order of appearance."""
    present = list(dict.fromkeys(rows["modality"].dropna()))
    return [m for m in preferred if m in present] + [m for m in present if m not in preferred]


def _is_oracle(rows: pd.DataFrame, protocol: str) -> bool:
    flags = rows.loc[rows["protocol"] == protocol, "is_oracle"] if "is_oracle" in rows else pd.Series(dtype=bool)
    return bool(flags.fillna(False).astype(bool).any())


def _figure_lines(caption: str, paths: list[Path], out_dir: Path) -> list[str]:
    if not paths:
        return []
    rel = [p.relative_to(out_dir).as_posix() for p in paths]
    png = next((r for r in rel if r.endswith(".png")), rel[0])
    return [f"**{caption}**", "", f"![{caption}]({png})", "", "Files: " + ", ".join(f"[{r}]({r})" for r in rel), ""]


def _links(stem: str, suffixes: tuple[str, ...]) -> str:
    return "Files: " + ", ".join(f"[{stem}.{s}]({stem}.{s})" for s in suffixes)


def _optional_module(name: str) -> Any | None:
    """A report module written separately (sensitivity, cost), or None with a log message if missing."""
    if importlib.util.find_spec(name) is None:
        log.warning("%s is not available: its part of the report is skipped", name)
        return None
    return importlib.import_module(name)


def _write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _saved_config(store: ResultsStore) -> DictConfig | None:
    path = store.config_path
    return OmegaConf.load(path) if path.exists() else None  # type: ignore[return-value]
