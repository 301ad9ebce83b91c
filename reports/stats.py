"""Paired tests over test subjects: IterMask² (or any reference method) against each baseline.

Per-image scores come from the results store (``<metric>__<protocol>`` arrays of every cell) and the
test set's subject ids (``testset__<dataset>__<modality>__<hash>``); images are averaged per subject
(slices of one subject are not independent), then seeds are averaged per subject, and the two methods'
per-subject means are compared with scipy's two-sided Wilcoxon signed-rank test. Each line has the raw p and
the Holm–Bonferroni adjusted ``p_holm``; the family is every baseline tested against the reference within one
(data set, modality, metric, protocol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from benchmark.store import ResultsStore


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of ``a - b`` over paired subjects."""

    n_subjects: int
    mean_diff: float
    median_diff: float
    statistic: float
    p_value: float


def per_subject_mean(values: np.ndarray | Sequence[float], subjects: Sequence[str]) -> pd.Series:
    """Mean of per-image ``values`` per subject (NaN images ignored), indexed by subject id."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.shape[0] != len(subjects):
        raise ValueError(f"per_subject_mean: {v.shape[0]} values but {len(subjects)} subject ids")
    return pd.Series(v, index=[str(s) for s in subjects]).groupby(level=0, sort=True).mean()


def paired_wilcoxon(a: pd.Series, b: pd.Series) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of per-subject ``a`` vs ``b`` on their common subjects.

    All-zero differences (identical methods) give statistic NaN and p = 1.
    """
    common = a.dropna().index.intersection(b.dropna().index)
    diff = (a.loc[common] - b.loc[common]).to_numpy(dtype=np.float64)
    if diff.size == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan)
    if np.allclose(diff, 0.0):
        return PairedTest(diff.size, 0.0, 0.0, math.nan, 1.0)
    result = wilcoxon(a.loc[common].to_numpy(dtype=np.float64), b.loc[common].to_numpy(dtype=np.float64))
    return PairedTest(
        diff.size, float(diff.mean()), float(np.median(diff)), float(result.statistic), float(result.pvalue)
    )


def holm_adjust(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values, in the input order (controls the family-wise error rate).

    With the m non-NaN p-values sorted, p_(1) <= ... <= p_(m), the adjusted p_(i) is
    min(1, max_{j <= i} (m - j + 1) p_(j)): monotone in the raw order. NaN stays NaN and is not counted in m.
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    known = ~np.isnan(p)
    if ((p[known] < 0) | (p[known] > 1)).any():
        raise ValueError(f"holm_adjust: p-values must lie in [0, 1], got {p[known].tolist()}")
    m = int(known.sum())
    order = np.argsort(p[known], kind="stable")
    stepped = np.minimum(np.maximum.accumulate(p[known][order] * (m - np.arange(m))), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out = np.full(p.shape, np.nan)
    out[known] = adjusted
    return out


def subject_scores(store: ResultsStore, rows: pd.DataFrame, metric: str = "dice") -> pd.Series:
    """Per-subject score of the cells in ``rows`` (all of one method, data set, modality, protocol),
    averaged over the cells (seeds)."""
    per_cell = []
    for _, row in rows.iterrows():
        arrays = store.arrays(row["cell"])
        key = f"{metric}__{row['protocol']}"
        if key not in arrays:
            raise KeyError(f"{store.arrays_dir / row['cell']}.npz: no per-image array {key!r}")
        test_set = store.arrays(f"testset__{row['dataset']}__{row['modality']}__{row['preprocess_hash']}")
        per_cell.append(per_subject_mean(arrays[key], [str(s) for s in test_set["subjects"]]))
    return pd.concat(per_cell, axis=1).mean(axis=1)


def wilcoxon_vs_reference(
    store: ResultsStore, rows: pd.DataFrame, protocol: str, reference: str, metric: str = "dice"
) -> pd.DataFrame:
    """One line per (data set, modality, baseline): the reference method (a ``method_key``) against every
    other method with stored arrays under ``protocol``; empty when the reference has no rows. ``p_holm`` is
    Holm-adjusted over the baselines of one (data set, modality, metric, protocol)."""
    ok = rows[(rows["protocol"] == protocol) & (rows["status"] == "ok")]
    lines = []
    for (dataset, modality), group in ok.groupby(["dataset", "modality"], sort=False):
        ref = group[group["method_key"] == reference]
        if ref.empty:
            continue
        ref_scores = subject_scores(store, ref, metric)
        for key, other in group[group["method_key"] != reference].groupby("method_key", sort=False):
            test = paired_wilcoxon(ref_scores, subject_scores(store, other, metric))
            lines.append(
                {
                    "dataset": dataset, "modality": modality, "reference": ref["method_label"].iloc[0],
                    "baseline": other["method_label"].iloc[0], "metric": metric, "protocol": protocol,
                    "n_subjects": test.n_subjects, "mean_diff": test.mean_diff, "median_diff": test.median_diff,
                    "statistic": test.statistic, "p_value": test.p_value,
                }
            )  # fmt: skip
    tests = pd.DataFrame(lines)
    if tests.empty:
        return tests
    family = ["dataset", "modality", "metric", "protocol"]
    return tests.assign(p_holm=tests.groupby(family, sort=False)["p_value"].transform(holm_adjust))


def wilcoxon_markdown(tests: pd.DataFrame) -> str:
    """The tests as a Markdown table (differences = reference - baseline, per-subject mean; raw and Holm p)."""
    header = "| Data set | Modality | Reference vs baseline | Subjects | Mean diff | Median diff | W | p | p (Holm) |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    for _, t in tests.iterrows():
        lines.append(
            f"| {t['dataset']} | {t['modality']} | {t['reference']} vs {t['baseline']} | {t['n_subjects']} | "
            f"{t['mean_diff']:+.3f} | {t['median_diff']:+.3f} | {t['statistic']:.1f} | {t['p_value']:.3g} | "
            f"{t['p_holm']:.3g} |"
        )
    return "\n".join(lines) + "\n"
