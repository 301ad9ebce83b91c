"""Paired Wilcoxon tests over subjects: hand-made per-image scores against scipy and hand computation."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from benchmark.store import ResultsStore
from reports.stats import paired_wilcoxon, per_subject_mean, wilcoxon_vs_reference


def test_per_subject_mean_averages_slices_of_a_subject() -> None:
    means = per_subject_mean([0.2, 0.4, 0.9, np.nan, 0.5], ["b", "b", "a", "a", "c"])
    assert means.to_dict() == pytest.approx({"a": 0.9, "b": 0.3, "c": 0.5})
    with pytest.raises(ValueError, match="3 values but 2 subject ids"):
        per_subject_mean([1, 2, 3], ["a", "b"])


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


def test_wilcoxon_vs_reference_reads_store_arrays(tmp_path) -> None:
    store = ResultsStore(tmp_path)
    subjects = np.array(["s1", "s1", "s2", "s3", "s4", "s5", "s6"])
    store.write_arrays("testset__toy__flair__h", {"subjects": subjects})
    ref = np.array([0.9, 0.7, 0.6, 0.8, 0.9, 0.7, 0.5])
    base = np.array([0.1, 0.3, 0.5, 0.2, 0.4, 0.3, 0.6])
    rows = []
    for key, label, dice in (("itermask2", "IterMask²", ref), ("ae", "AE", base)):
        row = {"cell": key, "method_key": key, "method_label": label, "dataset": "toy", "modality": "flair",
               "preprocess_hash": "h", "protocol": "oracle_global", "status": "ok", "seed": 0}  # fmt: skip
        store.write(key, [row], {"dice__oracle_global": dice})
        rows.append(row)
    tests = wilcoxon_vs_reference(store, pd.DataFrame(rows), "oracle_global", "itermask2")
    assert len(tests) == 1 and tests.loc[0, "baseline"] == "AE" and tests.loc[0, "n_subjects"] == 6
    a = np.array([0.8, 0.6, 0.8, 0.9, 0.7, 0.5])  # s1 = mean of its two slices
    b = np.array([0.2, 0.5, 0.2, 0.4, 0.3, 0.6])
    assert tests.loc[0, "p_value"] == pytest.approx(wilcoxon(a, b).pvalue)
    assert tests.loc[0, "mean_diff"] == pytest.approx((a - b).mean())
