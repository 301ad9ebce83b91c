"""Paired tests over test subjects: IterMask² (or any reference method) against each baseline.

Per-image scores come from the tidy per-image table (``ResultsStore.per_image``, one record per cell,
protocol and test slice, with its subject); images are averaged per subject
(slices of one subject are not independent), then seeds are averaged per subject, and the two methods'
per-subject means are compared with scipy's two-sided Wilcoxon signed-rank test. Each line has the raw p and
the Holm–Bonferroni adjusted ``p_holm``; the family is every baseline tested against the reference within one
(data set, modality, metric, protocol).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from reports.labels import DEFAULT_PRECISION

log = logging.getLogger("reports")


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of ``a - b`` over paired subjects."""

    n_subjects: int
    mean_diff: float
    median_diff: float
    statistic: float
    p_value: float


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


def subject_scores(per_image: pd.DataFrame, cells: Sequence[str], protocol: str, metric: str = "dice") -> pd.Series:
    """Per-subject score of ``cells`` (all of one configuration: its seeds) under ``protocol``: each cell's
    images averaged per subject, then the cells averaged per subject. Reads the tidy per-image table."""
    chosen = per_image[per_image["cell"].isin(list(cells)) & (per_image["protocol"] == protocol)]
    if chosen.empty:
        raise KeyError(f"no per-image records of protocol {protocol!r} for cells {list(cells)[:3]}")
    per_cell = chosen.groupby(["cell", "subject"], sort=True)[metric].mean()
    return per_cell.groupby(level="subject", sort=True).mean()


def wilcoxon_vs_reference(
    per_image: pd.DataFrame, rows: pd.DataFrame, protocol: str, reference: str, metric: str = "dice"
) -> pd.DataFrame:
    """One line per (data set, modality, baseline): the reference method (a ``method_key``) against every
    other configuration (``method_label``) under ``protocol``; empty when the reference has no rows. ``p_holm``
    is Holm-adjusted over the baselines of one (data set, modality, precision, metric, protocol). Rows of one
    ``precision`` are tested among themselves (a store with fp32 and bf16 cells gets both sets of tests). A
    reference key that holds several configurations there is ambiguous: that group gets no tests (and a log
    warning)."""
    ok = rows[(rows["protocol"] == protocol) & (rows["status"] == "ok")]
    if "precision" not in ok:  # stores written before the option: one precision
        ok = ok.assign(precision=DEFAULT_PRECISION)
    lines = []
    for (dataset, modality, _), group in ok.groupby(["dataset", "modality", "precision"], sort=False, dropna=False):
        ref = group[group["method_key"] == reference]
        if ref.empty:
            continue
        if ref["method_label"].nunique() > 1:
            log.warning(
                "paired tests %s %s: reference %r holds several configurations %s; skipped",
                dataset,
                modality,
                reference,
                sorted(ref["method_label"].unique()),
            )
            continue
        ref_scores = subject_scores(per_image, ref["cell"], protocol, metric)
        others = group[group["method_label"] != ref["method_label"].iloc[0]]
        for label, other in others.groupby("method_label", sort=False):
            test = paired_wilcoxon(ref_scores, subject_scores(per_image, other["cell"], protocol, metric))
            lines.append(
                {
                    "dataset": dataset, "modality": modality, "reference": ref["method_label"].iloc[0],
                    "baseline": label, "metric": metric, "protocol": protocol,
                    "n_subjects": test.n_subjects, "mean_diff": test.mean_diff, "median_diff": test.median_diff,
                    "statistic": test.statistic, "p_value": test.p_value,
                }
            )  # fmt: skip
    tests = pd.DataFrame(lines)
    if tests.empty:
        return tests
    family = ["dataset", "modality", "reference", "metric", "protocol"]  # the reference label names the precision
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
