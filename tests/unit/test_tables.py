"""Paper-layout tables from hand-made result rows: means, spread (std over seeds or bootstrap CI), bold
best of the main block only, '–' for not applicable, the oracle block, several data sets, CSV numbers,
degenerate rows marked ‡ and never bold, cost columns per modality, the few-subjects CI warning."""

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
            {
                "dataset": "toy",
                "protocol": None,
                "status": "unavailable",
                "method_label": "Cycl",
                "method_key": "cycl",
                "modality": "flair",
                "seed": 0,
            },  # fmt: skip
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
    assert line["Cycl"].count("–") == 12  # 2 modalities x (4 metrics + 2 cost columns)
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
    assert groups == ["toy flair", "toy t1", "other t1"]  # cost columns inside each group
    assert table.values.loc["Other", ("other t1", "DSC")] == 0.7
    with pytest.raises(KeyError, match="unknown table metrics"):
        comparison_table(rows, "oracle_global", "toy", ["flair"], metrics=["dice", "nope"])


def test_degenerate_row_is_marked_and_never_bold_even_when_highest(tmp_path) -> None:
    rows = pd.DataFrame(
        [
            _row("A", "flair", 0.30, degenerate=False, max_brain_share=0.5),
            _row("B", "flair", 0.50, degenerate=False, max_brain_share=0.5),
            _row("C", "flair", 0.90, seed=0, degenerate=False, max_brain_share=0.5),
            _row("C", "flair", 0.80, seed=1, degenerate=True, max_brain_share=0.5),  # one seed suffices
            _row("A", "t1", 0.20, degenerate=False),
            _row("C", "t1", 0.60, degenerate=False),
        ]
    )
    table = comparison_table(rows, "oracle_global", "toy", ["flair", "t1"])
    md = table.to_markdown()
    line = {name: next(x for x in md.splitlines() if x.startswith(f"| {name} ")) for name in ("A", "B", "C")}
    cells_c = line["C"].split(" | ")
    assert cells_c[1] == "0.850 ± 0.071 ‡" and "**" not in " ".join(cells_c[1:5])  # flair metrics: marked
    assert "**0.500**" in line["B"]  # the best comparable flair DSC
    assert "**0.600**" in line["C"] and "0.600 ‡" not in line["C"]  # C's t1 group is not degenerate
    assert table.best_rows(("flair", "DSC")) == ["B"] and table.best_rows(("t1", "DSC")) == ["C"]
    assert "‡: degenerate segmentation (global threshold on the edge of the search grid or more than 50 % of the " \
           "test brain segmented)" in table.caption  # fmt: skip
    assert r"0.850 $\pm$ 0.071 $^\ddagger$" in table.to_latex()
    table.to_csv(tmp_path / "t.csv")
    csv = pd.read_csv(tmp_path / "t.csv", index_col="method")
    assert csv["flair degenerate"].to_dict() == {"A": False, "B": False, "C": True}
    assert not csv["t1 degenerate"].any() and csv.loc["C", "flair DSC"] == pytest.approx(0.85)


def test_rows_without_the_degenerate_field_fall_back_to_the_global_grid_edge() -> None:
    rows = pd.DataFrame(
        [
            _row("A", "flair", 0.3),
            _row("B", "flair", 0.5),
            _row("C", "flair", 0.9, at_grid_edge=True),
            _row("C", "flair", 0.99, protocol="oracle_per_image", at_grid_edge=True),  # some image at an edge: fine
        ]
    )
    table = comparison_table(rows, "oracle_global", "toy", ["flair"], oracle_protocols=["oracle_per_image"])
    assert table.flags.loc["C", ("flair", "DSC")] and not table.flags.loc["C (per-image oracle)", ("flair", "DSC")]
    assert table.best_rows(("flair", "DSC")) == ["B"]
    assert "global threshold on the edge of the search grid)" in table.caption  # no brain share stored


def test_cost_columns_are_per_modality_not_averaged() -> None:
    rows = pd.DataFrame(
        [
            _row("AE", "flair", 0.3, ms_per_slice=2.0, nfe_per_slice=1.0),
            _row("AE", "t1", 0.1, ms_per_slice=8.0, nfe_per_slice=3.0),
        ]
    )
    table = comparison_table(rows, "oracle_global", "toy", ["flair", "t1"])
    assert list(table.values.columns) == [
        (m, c) for m in ("flair", "t1") for c in ("DSC", "Sens.", "Prec.", "SSIM", "NFE", "ms/slice")
    ]
    assert table.values.loc["AE", ("flair", "ms/slice")] == 2.0 and table.values.loc["AE", ("t1", "ms/slice")] == 8.0
    assert table.values.loc["AE", ("flair", "NFE")] == 1.0 and table.values.loc["AE", ("t1", "NFE")] == 3.0
    line = next(x for x in table.to_markdown().splitlines() if x.startswith("| AE "))
    assert "| 2.000 |" in line and "| 8.000 |" in line and "5.000" not in line  # not their mean
    assert "Per data set and modality the metrics are followed by the cost of that cell" in table.caption


def test_caption_warns_when_the_ci_rests_on_fewer_than_three_subjects() -> None:
    few = pd.DataFrame([_row("A", "flair", 0.3, n_test_subjects=2), _row("B", "flair", 0.5, n_test_subjects=2)])
    assert (
        "toy: CI over 2 subject(s): not meaningful." in comparison_table(few, "oracle_global", "toy", ["flair"]).caption
    )
    enough = few.assign(n_test_subjects=3)
    assert "not meaningful" not in comparison_table(enough, "oracle_global", "toy", ["flair"]).caption
    seeds = pd.concat([few, few.assign(seed=1)], ignore_index=True)  # std over seeds shown, not a CI
    assert "not meaningful" not in comparison_table(seeds, "oracle_global", "toy", ["flair"]).caption
