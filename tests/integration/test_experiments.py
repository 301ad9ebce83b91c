"""Every paper experiment (table1, table2, table3, default) end to end in a tiny configuration: the real
experiment file, tiny synthetic data (the session fixture), a subset of its methods with tiny budgets;
the generated tables and figures are checked against the stored rows and arrays."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from scipy.stats import wilcoxon

from benchmark.runner import run_experiment
from reports.report import write_report
from tests.tiny_config import CONFIG_DIR, TINY_METHODS, TINY_ORACLE, compose_tiny


def experiment_config(experiment: str, out: Path, data_dir: Path, methods: list[str], *extra: str):
    """``experiment`` on the session's tiny synthetic set (32 px) with ``methods`` at 2 training steps."""
    overrides = [
        f"experiment={experiment}",
        "experiment.figure_examples=2",
        "experiment.protocols=[oracle_global,oracle_per_image]",  # no val_fpr: skips validation maps
        "++diagnostic_slices=0",  # no per-method diagnostic figures (seconds each)
        f"experiment.only_methods=[{','.join(methods)}]",
    ]
    for key in methods:
        overrides += [f"methods.{key}.train.steps=2", f"methods.{key}.train.val_every=2"]
        overrides += [f"methods.{key}.{o}" for o in TINY_METHODS[key]]
    return compose_tiny(out, data_dir, *overrides, *extra)


def run_and_report(cfg) -> tuple[pd.DataFrame, Path]:
    store = run_experiment(cfg)
    report = write_report(store, Path(cfg.paths.report), cfg)
    return store.rows(), report


def read_csv(report: Path, stem: str) -> pd.DataFrame:
    return pd.read_csv(report.parent / f"{stem}.csv", index_col="method")


def assert_figure(path: Path) -> None:
    assert path.stat().st_size > 2000, path
    magic = {".png": b"\x89PNG", ".pdf": b"%PDF"}[path.suffix]
    assert path.read_bytes()[:4] == magic, path


def row_of(rows: pd.DataFrame, label: str, protocol: str, modality: str) -> pd.Series:
    sel = rows[(rows["method_label"] == label) & (rows["protocol"] == protocol) & (rows["modality"] == modality)]
    assert len(sel) == 1, (label, protocol, modality, len(sel))
    return sel.iloc[0]


def test_experiment_files_have_the_papers_layouts() -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        t1 = compose(config_name="config", overrides=["experiment=table1"])
        t2 = compose(config_name="config", overrides=["experiment=table2", "dataset=atlas", "dataset.root=/x"])
        t3 = compose(config_name="config", overrides=["experiment=table3"])
    assert list(t1.experiment.modalities) == ["flair", "t1ce", "t2", "t1"]
    assert list(t1.methods) == ["ae", "ddpm", "autoddpm", "cyclic_unet", "dae_pos", "dae_neg", "dae_plain", "itermask2"]
    dae_rows = [t1.methods[k] for k in ("dae_pos", "dae_neg", "dae_plain")]
    assert [m.label for m in dae_rows] == ["DAE [0,+inf]", "DAE [-inf,0]", "DAE [-inf,+inf]"]
    assert [m.params.noise_sign for m in dae_rows] == ["positive", "negative", "both"]
    assert all("variant" not in m for m in [*t1.methods.values(), *t3.methods.values()])
    assert list(t2.experiment.modalities) == ["t1"]  # ATLAS: its only modality
    assert list(t3.methods) == ["itermask2", "itermask2_freq", "itermask2_spat", "dae_pos"]
    assert [t3.methods[k].params.layout for k in ("itermask2", "itermask2_freq", "itermask2_spat")] == [
        "default", "-freq", "-spat"]  # fmt: skip
    assert [t3.methods[k].label for k in ("itermask2", "itermask2_freq", "itermask2_spat")] == [
        "IterMask²", "IterMask² -freq", "IterMask² -spat"]  # fmt: skip
    assert t3.methods.dae_pos.label == "DAE [0,+inf]" and t3.methods.dae_pos.params.noise_sign == "positive"
    assert list(t3.experiment.columns)[-3:] == ["dice_small", "dice_medium", "dice_large"]


def test_table1_main_block_oracle_block_paired_tests_and_figures(tmp_path, shared_data_dir) -> None:
    cfg = experiment_config(
        "table1", tmp_path, shared_data_dir, ["ae", "dae_pos", "itermask2"],
        "experiment.modalities=[flair]", f"methods.itermask2.params.oracle={TINY_ORACLE}",
    )  # fmt: skip
    rows, report = run_and_report(cfg)
    csv = read_csv(report, "table__synthetic-brats__oracle_global")
    main = csv[csv["block"] == "main"]
    assert list(main.index) == ["AE", "DAE [0,+inf]", "IterMask²"]
    for label in main.index:  # the CSV holds the stored numbers and their bootstrap CIs
        row = row_of(rows, label, "oracle_global", "flair")
        fields = (
            ("flair DSC", "dice"),
            ("flair Sens.", "sens"),
            ("flair Prec.", "prec"),
            ("flair NFE", "nfe_per_slice"),
        )
        for column, field in fields:
            assert csv.loc[label, column] == pytest.approx(row[field], abs=1e-4)
        assert csv.loc[label, "flair DSC lo"] == pytest.approx(row["dice_lo"], abs=1e-4)
    oracle = csv[csv["block"] == "oracle"]
    assert set(oracle.index) == {
        "DAE [0,+inf] (per-image oracle)",
        "IterMask² (per-image oracle)",
        "IterMask² (human–AI oracle)",
    }  # AE is not in experiment.oracle_methods
    human_ai = row_of(rows, "IterMask²", "human_ai", "flair")
    assert human_ai["is_oracle"]
    assert oracle.loc["IterMask² (human–AI oracle)", "flair DSC"] == pytest.approx(human_ai["dice"], abs=1e-4)
    dae_oracle = row_of(rows, "DAE [0,+inf]", "oracle_per_image", "flair")
    assert oracle.loc["DAE [0,+inf] (per-image oracle)", "flair DSC"] == pytest.approx(dae_oracle["dice"], abs=1e-4)
    assert dae_oracle["dice"] >= row_of(rows, "DAE [0,+inf]", "oracle_global", "flair")["dice"] - 1e-9

    tex = (report.parent / "table__synthetic-brats__oracle_global.tex").read_text()
    best = main.loc[~main["flair degenerate"].astype(bool), "flair DSC"].idxmax()  # degenerate rows are never bold
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\rowcolor{gray!15}" in tex
    best_line = next(line for line in tex.splitlines() if line.startswith(best.replace("²", "$^2$") + " &"))
    assert best_line.split(" & ")[1].startswith(r"\textbf{" + f"{main.loc[best, 'flair DSC']:.3f}")
    md = report.read_text()
    assert "† per-image oracle" in md and "| † DAE [0,+inf] (per-image oracle) |" in md

    tests = pd.read_csv(report.parent / "wilcoxon__oracle_global.csv")
    assert sorted(tests["baseline"]) == ["AE", "DAE [0,+inf]"] and (tests["reference"] == "IterMask²").all()
    # independent recomputation from the per-image table and the stored test set's subjects
    from benchmark.schema import stored_test_split_of
    from benchmark.store import ResultsStore

    store = ResultsStore(cfg.paths.results)
    ref, ae = row_of(rows, "IterMask²", "oracle_global", "flair"), row_of(rows, "AE", "oracle_global", "flair")
    subjects = store.arrays(stored_test_split_of(ref))["subjects"]
    per_image = pd.read_parquet(report.parent / "per_image.parquet").query("protocol == 'oracle_global'")
    a = pd.Series(per_image[per_image["cell"] == ref["cell"]]["dice"].to_numpy()).groupby(subjects).mean()
    b = pd.Series(per_image[per_image["cell"] == ae["cell"]]["dice"].to_numpy()).groupby(subjects).mean()
    line = tests[tests["baseline"] == "AE"].iloc[0]
    assert line["n_subjects"] == len(set(subjects)) and line["mean_diff"] == pytest.approx((a - b).mean(), abs=1e-6)
    if not np.allclose(a - b, 0):
        assert line["p_value"] == pytest.approx(wilcoxon(a, b).pvalue, rel=1e-5)

    figures = report.parent / "figures"
    for stem in ("qualitative__synthetic-brats__flair", "reconstructions__synthetic-brats__flair",
                 "dice_by_size__synthetic-brats"):  # fmt: skip
        for suffix in (".png", ".pdf"):
            assert_figure(figures / f"{stem}{suffix}")
            assert f"figures/{stem}{suffix}" in md
    assert "## Methods and deviations from the references" in md and "## Provenance" in md


def test_table2_two_datasets_in_one_store_and_dash_for_cyclic_unet(tmp_path, shared_data_dir) -> None:
    run_and_report(experiment_config("table2", tmp_path, shared_data_dir, ["ae"]))  # four contrasts: flair
    rows, report = run_and_report(
        experiment_config(
            "table2",
            tmp_path,
            shared_data_dir,
            ["ae", "cyclic_unet"],
            "dataset.modalities=[t1]",
            "dataset.name=synthetic-t1only",
        )  # fmt: skip
    )
    assert set(zip(rows["dataset"], rows["modality"])) == {("synthetic-brats", "flair"), ("synthetic-t1only", "t1")}
    csv = read_csv(report, "table__all__oracle_global")
    assert list(csv.index) == ["AE", "Cyclic-UNet"]
    for dataset, modality in (("synthetic-t1only", "t1"), ("synthetic-brats", "flair")):
        expected = row_of(rows, "AE", "oracle_global", modality)["dice"]
        assert csv.loc["AE", f"{dataset} {modality} DSC"] == pytest.approx(expected, abs=1e-4)
    cyclic_csv = csv.loc["Cyclic-UNet"].drop("block")
    flags = cyclic_csv.index.str.endswith(" degenerate")
    assert cyclic_csv[~flags].isna().all() and not cyclic_csv[flags].astype(bool).any()
    md = (report.parent / "table__synthetic-t1only__oracle_global.md").read_text()
    cyclic = next(line for line in md.splitlines() if line.startswith("| Cyclic-UNet |"))
    assert cyclic.count("–") == 6 and "not applicable (Cyclic-UNet)" in md  # 4 metrics + 2 cost columns
    assert len(list((Path(tmp_path) / "table2" / "results" / "jobs").iterdir())) == 2  # one record per run


def test_table3_ablation_columns_by_lesion_size(tmp_path, shared_data_dir) -> None:
    methods = ["itermask2", "itermask2_freq", "itermask2_spat", "dae_pos"]
    rows, report = run_and_report(
        experiment_config("table3", tmp_path, shared_data_dir, methods, "experiment.protocols=[oracle_global]")
    )
    csv = read_csv(report, "table__synthetic-brats__oracle_global")
    assert list(csv.index) == ["IterMask²", "IterMask² -freq", "IterMask² -spat", "DAE [0,+inf]"]
    assert [c for c in csv.columns if not c.endswith((" lo", " hi"))] == [
        "block", "flair DSC", "flair Sens.", "flair Prec.", "flair Small", "flair Medium", "flair Large",
        "flair NFE", "flair ms/slice", "flair degenerate",
    ]  # fmt: skip
    for label in csv.index:
        row = row_of(rows, label, "oracle_global", "flair")
        for size in ("small", "medium", "large"):
            value, expected = csv.loc[label, f"flair {size.capitalize()}"], row[f"dice_{size}"]
            assert (math.isnan(value) and pd.isna(expected)) or value == pytest.approx(expected, abs=1e-4)
    assert_figure(report.parent / "figures" / "dice_by_size__synthetic-brats.png")


def test_default_with_two_seeds_shows_mean_and_std(tmp_path, shared_data_dir) -> None:
    cfg = experiment_config("default", tmp_path, shared_data_dir, ["ae"], "experiment.modalities=[t1]", "seeds=[0,1]")
    rows, report = run_and_report(cfg)
    csv = read_csv(report, "table__synthetic-brats__oracle_global")
    dice = rows[(rows["protocol"] == "oracle_global")]["dice"]
    assert len(dice) == 2
    assert csv.loc["AE", "t1 DSC"] == pytest.approx(dice.mean(), abs=1e-4)
    assert csv.loc["AE", "t1 DSC std"] == pytest.approx(dice.std(ddof=1), abs=1e-4)
    md = report.read_text()
    assert "mean ± std over seeds" in md and f"{dice.mean():.3f} ± {dice.std(ddof=1):.3f}" in md
    assert_figure(report.parent / "figures" / "qualitative__synthetic-brats__t1.png")
