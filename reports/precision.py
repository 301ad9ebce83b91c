"""What lower precision does to the metrics: Dice of each bf16 cell beside its fp32 twin.

Rows of the same configuration at two precisions share the data set, the modality and ``config_hash_fp32`` (the
cell's hash at fp32, :attr:`benchmark.runner.Cell.config_hash_fp32`, which holds neither the modality nor the seed:
one configuration's FLAIR and T1 cells share it). For every such pair at one protocol and seed the table gives both Dice
values, their difference with a paired subject-bootstrap 95 % CI (per-image Dice of the same test slices), and
the seed-to-seed standard deviation of the fp32 Dice where several seeds ran: the run-to-run noise the
difference is to be judged against. Generic: no method is named.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.bootstrap import bootstrap_paired_diff_ci
from reports.labels import DEFAULT_PRECISION

PAIR = "config_hash_fp32"
SAME_CONFIGURATION = ["dataset", "modality", PAIR]  # what a cell and its twin at another precision share
COLUMNS = (
    "dataset", "modality", "method", "precision", "seed", "dice_fp32", "dice_other", "dice_delta",
    "delta_lo", "delta_hi", "fp32_seed_sd",
)  # fmt: skip


def precision_pairs(rows: pd.DataFrame, per_image: pd.DataFrame, protocol: str, n_boot: int = 1000) -> pd.DataFrame:
    """One record per (fp32 cell, other-precision cell) pair at ``protocol`` (empty without pairs).

    ``rows`` are result rows (``method_label`` as the report labels them: the fp32 row's label names the
    pair); ``per_image`` the tidy per-image table with ``cell``, ``protocol``, ``subject``, ``slice_index`` and
    ``dice``."""
    needed = {*SAME_CONFIGURATION, "seed", "precision", "protocol", "dice", "cell"}
    if rows.empty or not needed <= set(rows.columns):
        return pd.DataFrame(columns=list(COLUMNS))
    at = rows[(rows["protocol"] == protocol) & rows[PAIR].notna()]
    fp32 = at[at["precision"] == DEFAULT_PRECISION]
    other = at[at["precision"] != DEFAULT_PRECISION]
    seed_sd = fp32.groupby(SAME_CONFIGURATION)["dice"].std()
    records = []
    for _, low in other.iterrows():
        same = (fp32[SAME_CONFIGURATION] == low[SAME_CONFIGURATION]).all(axis=1) & (fp32["seed"] == low["seed"])
        if not same.any():
            continue
        high = fp32[same].iloc[0]
        lo, hi = _paired_ci(per_image, str(high["cell"]), str(low["cell"]), protocol, n_boot, int(low["seed"]))
        sd = seed_sd.get(tuple(low[SAME_CONFIGURATION]), math.nan)
        records.append({
            "dataset": high["dataset"], "modality": high["modality"], "method": high["method_label"],
            "precision": low["precision"], "seed": int(low["seed"]), "dice_fp32": float(high["dice"]),
            "dice_other": float(low["dice"]), "dice_delta": float(low["dice"]) - float(high["dice"]),
            "delta_lo": lo, "delta_hi": hi, "fp32_seed_sd": float(sd),
        })  # fmt: skip
    return pd.DataFrame(records, columns=list(COLUMNS))


def _paired_ci(
    per_image: pd.DataFrame, fp32_cell: str, other_cell: str, protocol: str, n_boot: int, seed: int
) -> tuple[float, float]:
    """Paired subject-bootstrap CI of mean(other - fp32) per-image Dice (NaN when the records are missing)."""
    if per_image.empty or n_boot <= 0:
        return math.nan, math.nan
    keys = ["subject", "slice_index"]
    at = per_image[per_image["protocol"] == protocol]
    a = at[at["cell"] == other_cell][[*keys, "dice"]]
    b = at[at["cell"] == fp32_cell][[*keys, "dice"]]
    both = a.merge(b, on=keys, suffixes=("_other", "_fp32"))
    if both.empty or len(both) != len(a) or len(both) != len(b):
        return math.nan, math.nan
    _, lo, hi = bootstrap_paired_diff_ci(
        both["dice_other"].to_numpy(np.float64), both["dice_fp32"].to_numpy(np.float64),
        both["subject"].astype(str).tolist(), n_boot=n_boot, seed=seed,
    )  # fmt: skip
    return lo, hi


def precision_markdown(pairs: pd.DataFrame) -> list[str]:
    """The pairs as a markdown table (no lines without pairs)."""
    if pairs.empty:
        return []

    def number(value: float, digits: int = 3) -> str:
        return "–" if math.isnan(value) else f"{value:.{digits}f}"

    lines = [
        "| Dataset | Modality | Method | Precision | Seed | Dice fp32 | Dice | Δ Dice | Δ 95 % CI (paired) | "
        "fp32 seed SD |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in pairs.itertuples(index=False):
        ci = f"[{number(r.delta_lo)}, {number(r.delta_hi)}]"
        lines.append(
            f"| {r.dataset} | {r.modality} | {r.method} | {r.precision} | {r.seed} | {number(r.dice_fp32)} | "
            f"{number(r.dice_other)} | {r.dice_delta:+.3f} | {ci} | {number(r.fp32_seed_sd)} |"
        )
    return lines
