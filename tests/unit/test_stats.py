"""Paired Wilcoxon tests over subjects: hand-made per-image scores against scipy and hand computation;
Holm-adjusted p-values against hand-computed values and the plain definition."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from reports.stats import holm_adjust, paired_wilcoxon, subject_scores, wilcoxon_markdown, wilcoxon_vs_reference


def _per_image(cell: str, subjects: list[str], dice: list[float], protocol: str = "oracle_global") -> pd.DataFrame:
    return pd.DataFrame({"cell": cell, "protocol": protocol, "subject": subjects, "dice": dice})


def test_subject_scores_average_slices_per_subject_then_seeds() -> None:
    per_image = pd.concat([
        _per_image("seed0", ["b", "b", "a", "a", "c"], [0.2, 0.4, 0.9, np.nan, 0.5]),
        _per_image("seed1", ["a", "b", "c"], [0.5, 0.1, 0.5]),
        _per_image("seed1", ["a"], [0.0], protocol="val_fpr"),  # another protocol: ignored
    ])  # fmt: skip
    scores = subject_scores(per_image, ["seed0", "seed1"], "oracle_global")
    assert scores.to_dict() == pytest.approx({"a": (0.9 + 0.5) / 2, "b": (0.3 + 0.1) / 2, "c": 0.5})
    with pytest.raises(KeyError, match="val_labelled"):
        subject_scores(per_image, ["seed0"], "val_labelled")


def test_paired_wilcoxon_known_case() -> None:
    # differences 1, -2, 3..6: W = min(W+, W-) = 2; exact two-sided p = 2 * P(W <= 2) = 2 * 3/64 (rank sums
    # <= 2 among the 2^6 sign patterns: {}, {1}, {2})
    a = pd.Series([1.0, 0.0, 3.0, 4.0, 5.0, 6.0], index=list("abcdef"))
    b = pd.Series([0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 9.0], index=list("abcdefg"))  # g has no partner: dropped
    test = paired_wilcoxon(a, b)
    assert test.n_subjects == 6 and test.statistic == 2.0
    assert test.p_value == pytest.approx(6 / 64)
    assert test.p_value == pytest.approx(wilcoxon(a.iloc[:6], b.iloc[:6]).pvalue)
    assert test.mean_diff == pytest.approx((1 - 2 + 3 + 4 + 5 + 6) / 6) and test.median_diff == pytest.approx(3.5)


def test_identical_methods_give_p_one() -> None:
    a = pd.Series([0.1, 0.2, 0.3], index=list("abc"))
    test = paired_wilcoxon(a, a.copy())
    assert test.p_value == 1.0 and math.isnan(test.statistic) and test.mean_diff == 0.0


def _holm_by_definition(p: list[float]) -> list[float]:
    """Holm as written in textbooks: sort the m known p-values; p_(i) -> min(1, max_{j<=i} (m - j + 1) p_(j))."""
    known = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m = len(known)
    out = [math.nan] * len(p)
    running = 0.0
    for rank, (value, index) in enumerate(known, start=1):
        running = max(running, (m - rank + 1) * value)
        out[index] = min(1.0, running)
    return out


def test_holm_known_values() -> None:
    # sorted 0.01, 0.03, 0.04, 0.5 -> 4*0.01 = 0.04, 3*0.03 = 0.09, max(0.09, 2*0.04 = 0.08) = 0.09, max(0.09, 0.5)
    assert holm_adjust([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    # NaN kept and not counted: m = 2 -> 2*0.02 = 0.04, max(0.04, 1*0.3) = 0.3
    adjusted = holm_adjust([0.3, math.nan, 0.02])
    assert adjusted[[0, 2]] == pytest.approx([0.3, 0.04]) and math.isnan(adjusted[1])
    assert holm_adjust([0.4, 0.6]) == pytest.approx([0.8, 0.8])  # capped monotone: 2*0.4, max(0.8, 0.6)
    assert holm_adjust([0.7, 0.9]) == pytest.approx([1.0, 1.0])  # 1.4 capped at 1
    assert holm_adjust([]).shape == (0,) and np.isnan(holm_adjust([math.nan])).all()
    with pytest.raises(ValueError, match=r"p-values must lie in \[0, 1\]"):
        holm_adjust([0.1, 1.5])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_matches_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, 12)
    p[[2, 7]] = math.nan
    p[5] = p[9]  # a tie
    assert np.allclose(holm_adjust(p), _holm_by_definition(p.tolist()), equal_nan=True)


def test_wilcoxon_vs_reference_reads_the_per_image_table() -> None:
    subjects = ["s1", "s1", "s2", "s3", "s4", "s5", "s6"]
    ref = [0.9, 0.7, 0.6, 0.8, 0.9, 0.7, 0.5]
    base = [0.1, 0.3, 0.5, 0.2, 0.4, 0.3, 0.6]
    close = [0.9, 0.6, 0.6, 0.7, 0.9, 0.8, 0.4]
    rows, frames = [], []
    for key, label, dice in (("itermask2", "IterMask²", ref), ("ae", "AE", base), ("dae", "DAE", close)):
        rows.append({"cell": key, "method_key": key, "method_label": label, "dataset": "toy", "modality": "flair",
                     "protocol": "oracle_global", "status": "ok", "seed": 0})  # fmt: skip
        frames.append(_per_image(key, subjects, dice))
    tests = wilcoxon_vs_reference(pd.concat(frames), pd.DataFrame(rows), "oracle_global", "itermask2")
    assert list(tests["baseline"]) == ["AE", "DAE"] and tests.loc[0, "n_subjects"] == 6
    a = np.array([0.8, 0.6, 0.8, 0.9, 0.7, 0.5])  # s1 = mean of its two slices
    b = np.array([0.2, 0.5, 0.2, 0.4, 0.3, 0.6])
    c = np.array([0.75, 0.6, 0.7, 0.9, 0.8, 0.4])
    p_ae, p_dae = wilcoxon(a, b).pvalue, wilcoxon(a, c).pvalue
    assert tests.loc[0, "p_value"] == pytest.approx(p_ae) and tests.loc[1, "p_value"] == pytest.approx(p_dae)
    assert tests.loc[0, "mean_diff"] == pytest.approx((a - b).mean())
    # a family of two baselines (raw p about 0.094 and 0.75): the smaller p doubled, then max(that, 1 x larger)
    assert p_ae < p_dae < 1
    assert tests["p_holm"].tolist() == pytest.approx([2 * p_ae, max(2 * p_ae, p_dae)])
    md = wilcoxon_markdown(tests)
    assert "| p | p (Holm) |" in md and f"| {p_ae:.3g} | {2 * p_ae:.3g} |" in md


def test_wilcoxon_vs_reference_tests_each_precision_among_itself() -> None:
    subjects = ["s1", "s2", "s3", "s4", "s5", "s6"]
    scores = {
        ("fp32", "itermask2"): [0.8, 0.6, 0.8, 0.9, 0.7, 0.5],
        ("fp32", "ae"): [0.2, 0.5, 0.2, 0.4, 0.3, 0.6],
        ("bf16", "itermask2"): [0.7, 0.6, 0.9, 0.9, 0.6, 0.5],
        ("bf16", "ae"): [0.3, 0.4, 0.2, 0.5, 0.3, 0.5],
    }
    rows, frames = [], []
    for (precision, key), dice in scores.items():
        cell, suffix = f"{key}-{precision}", "" if precision == "fp32" else " [bf16]"
        label = {"itermask2": "IterMask²", "ae": "AE"}[key] + suffix
        rows.append({"cell": cell, "method_key": key, "method_label": label, "dataset": "toy", "modality": "flair",
                     "protocol": "oracle_global", "status": "ok", "seed": 0, "precision": precision})  # fmt: skip
        frames.append(_per_image(cell, subjects, dice))
    tests = wilcoxon_vs_reference(pd.concat(frames), pd.DataFrame(rows), "oracle_global", "itermask2")
    pairs = list(zip(tests["reference"], tests["baseline"]))
    assert pairs == [("IterMask²", "AE"), ("IterMask² [bf16]", "AE [bf16]")]
    for precision, line in zip(("fp32", "bf16"), tests.itertuples()):
        a, b = np.array(scores[(precision, "itermask2")]), np.array(scores[(precision, "ae")])
        assert line.p_value == pytest.approx(wilcoxon(a, b).pvalue)
        assert line.p_holm == pytest.approx(line.p_value)  # each precision is its own family of one baseline
