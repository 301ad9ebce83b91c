"""Row labels that name exactly one configuration.

A results store can hold several configurations under one method label: a rerun with another budget, a
Hydra multirun over a parameter, data pre-processed at another size. Tables average the rows of a label over
seeds only, so every configuration must have a label of its own. :func:`configuration_labels` keeps a
method's label where it names one configuration and otherwise appends what differs, e.g.
``AE (train.steps=3000)``. A row computed at another precision than fp32 (``compute.precision``) carries it in
its label, e.g. ``AE [bf16]``, so that every table says which numerics a number came from.
"""

from __future__ import annotations

import pandas as pd

from benchmark.schema import CONFIGURATION_COLUMNS, PARAM_PREFIX, TRAIN_PREFIX

LABEL = "method_label"
IDENTITY = "config_hash"
PRECISION = "precision"
DEFAULT_PRECISION = "fp32"


def is_low_precision(rows: pd.DataFrame) -> pd.Series:
    """Per row: whether its precision is set and not fp32 (all False for rows from before the option)."""
    if PRECISION not in rows:
        return pd.Series(False, index=rows.index)
    return rows[PRECISION].notna() & (rows[PRECISION].astype(str) != DEFAULT_PRECISION)


def precision_labels(rows: pd.DataFrame) -> pd.Series:
    """``method_label``, followed by `` [<precision>]`` where a row's precision is set and not fp32."""
    labels = rows[LABEL].astype(str)
    other = is_low_precision(rows)
    return labels.where(~other, labels + " [" + rows[PRECISION].astype(str) + "]") if other.any() else labels


def configuration_labels(rows: pd.DataFrame) -> pd.Series:
    """One label per row (same index): ``method_label`` where the label holds one ``config_hash`` in its data
    set, else the label followed by the configuration columns whose values differ between its configs."""
    if rows.empty or IDENTITY not in rows:
        return rows[LABEL] if LABEL in rows else pd.Series(dtype=str, index=rows.index)
    labels = precision_labels(rows).copy()
    for _, group in rows.assign(**{LABEL: labels}).groupby(["dataset", LABEL], sort=False, dropna=False):
        configs = group.drop_duplicates(IDENTITY)
        if len(configs) < 2:
            continue
        differing = _differing_columns(configs)
        for config_hash, members in group.groupby(IDENTITY, sort=False):
            first = members.iloc[0]
            detail = ", ".join(f"{c}={_text(first.get(c))}" for c in differing) or f"config {config_hash}"
            labels.loc[members.index] = f"{first[LABEL]} ({detail})"
    return labels


def _differing_columns(configs: pd.DataFrame) -> list[str]:
    """Configuration columns (flattened params and budget first) whose values differ between ``configs``."""
    flattened = [c for c in configs.columns if c.startswith((PARAM_PREFIX, TRAIN_PREFIX))]
    candidates = flattened + [c for c in CONFIGURATION_COLUMNS if c in configs.columns]
    return [c for c in candidates if configs[c].map(_text).nunique(dropna=False) > 1]


def _text(value: object) -> str:
    return "–" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
