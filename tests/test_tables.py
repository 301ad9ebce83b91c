"""Paper-layout tables from hand-made result rows: means, spread (std over seeds or bootstrap CI), bold
best of the main block only, '–' for not applicable, the oracle block, several data sets, CSV numbers."""

import math

import pandas as pd
import pytest

from reports.tables import comparison_table


def _row(method: str, modality: str, dice: float, seed: int = 0, **extra) -> dict:
    return {
        "dataset": "toy", "protocol": "oracle_global", "status": "ok", "method_label": method,
        "method_key": method.lower(), "modality": modality, "dice": dice, "sens": 0.5, "prec": 0.4,
        "ssim_paper": 0.9, "is_oracle": True,
        "nfe_per_slice": 1.0, "ms_per_slice": 2.0, "seed": seed, "n_test_slices": 10, "n_test_subjects": 4,
        "image_size": 64, "train_steps": 100,
    } | extra  # fmt: skip


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _row("AE", "flair", 0.30, seed=0),
            _row("AE", "flair", 0.40, seed=1),
            _row("AE", "t1", 0.10),
            _row("Other", "flair", 0.20, train_steps=7),
            _row("Other", "t1", 0.25, train_steps=7),
            _row("Other", "flair", 0.95, protocol="oracle_per_image"),  # oracle: never bold, own block
            {"dataset": "toy", "protocol": None, "status": "unavailable", "method_label": "Cycl", "method_key": "cycl",
             "modality": "flair", "seed": 0},  # fmt: skip
        ]
    )


def test_values_are_means_over_seeds_with_std_and_missing_is_nan() -> None:
    table = comparison_table(_rows(), "oracle_global", "toy", ["flair", "t1"])
    assert table.values.loc["AE", ("flair", "DSC")] == pytest.approx(0.35)
    assert table.spread["std"].loc["AE", ("flair", "DSC")] == pytest.approx(0.0707107, abs=1e-6)  # std(0.3, 0.4)
    assert math.isnan(table.spread["std"].loc["Other", ("t1", "DSC")])  # one seed: no std
    assert table.values.loc["Other", ("t1", "DSC")] == 0.25
    assert table.values.loc["Cycl"].isna().all()
    assert list(table.values.index) == ["AE", "Other", "Cycl"] and table.oracle_rows == ()
    parts = ("'oracle_global'", "–: not applicable (Cycl)", "seed(s) [0, 1]", "64x64", "AE 100, Other 7",
             "mean ± std")  # fmt: skip
    for part in parts:
        assert part in table.caption, part


def test_markdown_bolds_the_best_main_row_and_dashes_missing() -> None:
    table = comparison_table(_rows(), "oracle_global", "toy", ["flair", "t1"], oracle_protocols=["oracle_per_image"])
    md = table.to_markdown()
    line = {name: next(x for x in md.splitlines() if x.startswith(f"| {name} ")) for name in ("AE", "Other", "Cycl")}
    assert "**0.350 ± 0.071**" in line["AE"] and "**0.250**" in line["Other"] and "| 0.100 |" in line["AE"]
    assert line["Cycl"].count("–") == 10  # 2 modalities x 4 metrics + 2 cost columns
    oracle = next(x for x in md.splitlines() if x.startswith("| † Other (per-image oracle) |"))
    assert "0.950" in oracle and "**" not in oracle  # higher than every main row, but oracles are never bold
    assert md.index("*† per-image oracle") < md.index("| † Other (per-image oracle)")


def test_single_seed_shows_bootstrap_ci_and_csv_holds_the_numbers(tmp_path) -> None:
    rows = pd.DataFrame(
        [_row("A", "flair", 0.5, dice_lo=0.4, dice_hi=0.6), _row("B", "flair", 0.3, dice_lo=0.2, dice_hi=0.45)]
    )
    table = comparison_table(rows, "oracle_global", "toy", ["flair"])
    assert "**0.500 [0.400, 0.600]**" in table.to_markdown() and "95 % bootstrap CI" in table.caption
    table.to_csv(tmp_path / "t.csv")
    csv = pd.read_csv(tmp_path / "t.csv", index_col="method")
    assert list(csv.columns[:4]) == ["block", "flair DSC", "flair DSC lo", "flair DSC hi"]
    assert csv.loc["B", "flair DSC"] == 0.3 and csv.loc["B", "flair DSC hi"] == 0.45 and (csv["block"] == "main").all()


def test_latex_is_booktabs_with_bold_and_shaded_oracle_rows(tmp_path) -> None:
    rows = _rows().assign(method_label=lambda r: r["method_label"].replace("Other", "IterMask²"))
    table = comparison_table(rows, "oracle_global", "toy", ["flair", "t1"], oracle_protocols=["oracle_per_image"])
    tex = table.to_latex()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\textbf{0.350 $\pm$ 0.071}" in tex and r"oracle\_global" in tex
    assert r"\rowcolor{gray!15} $^\dagger$ IterMask$^2$ (per-image oracle) & 0.950" in tex
    table.to_csv(tmp_path / "t.csv")
    csv = pd.read_csv(tmp_path / "t.csv", index_col="method")
    assert csv.loc["IterMask² (per-image oracle)", "block"] == "oracle"
    assert csv.loc["AE", "flair DSC"] == 0.35 and csv.loc["AE", "flair DSC std"] == pytest.approx(0.0707, abs=1e-4)


def test_oracle_methods_filter_and_method_order() -> None:
    extra = pd.DataFrame([_row("AE", "flair", 0.9, protocol="oracle_per_image")])
    rows = pd.concat([_rows(), extra], ignore_index=True)
    table = comparison_table(
        rows, "oracle_global", "toy", ["flair"], oracle_protocols=["oracle_per_image"], oracle_methods=["other"],
        method_order=["cycl", "other", "ae"],
    )  # fmt: skip
    assert list(table.values.index) == ["Cycl", "Other", "AE", "Other (per-image oracle)"]


def test_several_datasets_give_one_column_group_per_dataset_and_modality() -> None:
    rows = pd.concat(
        [_rows(), pd.DataFrame([_row("AE", "t1", 0.6, dataset="other"), _row("Other", "t1", 0.7, dataset="other")])],
        ignore_index=True,
    )
    table = comparison_table(rows, "oracle_global", ["toy", "other"], ["flair", "t1"])
    groups = list(dict.fromkeys(g for g, _ in table.values.columns))
    assert groups == ["toy flair", "toy t1", "other t1", ""]
    assert table.values.loc["Other", ("other t1", "DSC")] == 0.7
    with pytest.raises(KeyError, match="unknown table metrics"):
        comparison_table(rows, "oracle_global", "toy", ["flair"], metrics=["dice", "nope"])
