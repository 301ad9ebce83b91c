"""Paper-layout tables from hand-made result rows: values, bold best, '–' for not applicable."""

import pandas as pd

from reports.tables import comparison_table


def _row(method: str, modality: str, dice: float, seed: int = 0, **extra) -> dict:
    return {
        "dataset": "toy", "protocol": "oracle_global", "status": "ok", "method_label": method,
        "modality": modality, "dice": dice, "sens": 0.5, "prec": 0.4, "ssim_paper": 0.9,
        "nfe_per_slice": 1.0, "ms_per_slice": 2.0, "seed": seed, "n_test_slices": 10, "image_size": 64,
    } | extra


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _row("AE", "flair", 0.30, seed=0),
            _row("AE", "flair", 0.40, seed=1),
            _row("AE", "t1", 0.10),
            _row("Other", "flair", 0.20),
            _row("Other", "t1", 0.25),
            {"dataset": "toy", "protocol": None, "status": "unavailable", "method_label": "Cycl", "modality": "flair", "seed": 0},
        ]
    )


def test_values_are_means_over_seeds_and_missing_is_nan() -> None:
    table = comparison_table(_rows(), "oracle_global", "toy", ["flair", "t1"])
    assert table.values.loc["AE", ("flair", "DSC")] == 0.35
    assert table.values.loc["Other", ("t1", "DSC")] == 0.25
    assert table.values.loc["Cycl"].isna().all()
    assert list(table.values.index) == ["AE", "Other", "Cycl"]
    assert "oracle_global" in table.caption and "Not applicable: Cycl" in table.caption


def test_markdown_bolds_the_best_per_column_and_dashes_missing() -> None:
    md = comparison_table(_rows(), "oracle_global", "toy", ["flair", "t1"]).to_markdown()
    ae = next(line for line in md.splitlines() if line.startswith("| AE "))
    other = next(line for line in md.splitlines() if line.startswith("| Other "))
    cycl = next(line for line in md.splitlines() if line.startswith("| Cycl "))
    assert "**0.350**" in ae and "**0.250**" in other and "0.100" in ae
    assert cycl.count("–") == 10  # 2 modalities x 4 metrics + 2 cost columns


def test_latex_is_booktabs_with_bold(tmp_path) -> None:
    table = comparison_table(_rows(), "oracle_global", "toy", ["flair", "t1"])
    tex = table.to_latex()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{0.350}" in tex
    assert r"oracle\_global" in tex
    table.to_csv(tmp_path / "t.csv")
    csv = pd.read_csv(tmp_path / "t.csv", index_col="method")
    assert csv.loc["AE", "flair DSC"] == 0.35
