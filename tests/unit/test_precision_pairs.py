"""The report's precision table pairs each bf16 cell with the fp32 cell of the same data set, modality, seed and
configuration: the configuration hash alone is shared by a configuration's FLAIR and T1 cells."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.precision import precision_pairs


def _rows_and_images() -> tuple[pd.DataFrame, pd.DataFrame]:
    """One configuration (hash ``h``) on FLAIR and T1 in fp32 and bf16; per-image Dice on two subjects."""
    dice = {("flair", "fp32"): [0.6, 0.4], ("flair", "bf16"): [0.5, 0.5], ("t1", "fp32"): [0.2, 0.2],
            ("t1", "bf16"): [0.1, 0.3]}  # fmt: skip
    rows, images = [], []
    for (modality, precision), values in dice.items():
        cell = f"{modality}-{precision}"
        rows.append({"dataset": "d", "modality": modality, "config_hash_fp32": "h", "seed": 0,
                     "precision": precision, "protocol": "oracle_global", "dice": sum(values) / 2, "cell": cell,
                     "method_label": "M"})  # fmt: skip
        for subject, value in zip(("s1", "s2"), values):
            images.append({"cell": cell, "protocol": "oracle_global", "subject": subject, "slice_index": 3,
                           "dice": value})  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(images)


def test_each_bf16_cell_is_compared_with_the_fp32_cell_of_its_own_modality() -> None:
    rows, images = _rows_and_images()
    pairs = precision_pairs(rows, images, "oracle_global", n_boot=200).set_index("modality")
    assert sorted(pairs.index) == ["flair", "t1"]
    flair, t1 = pairs.loc["flair"], pairs.loc["t1"]
    assert flair["dice_fp32"] == pytest.approx(0.5) and t1["dice_fp32"] == pytest.approx(0.2)
    assert flair["dice_delta"] == pytest.approx(0.0) and t1["dice_delta"] == pytest.approx(0.0)
    # per-subject differences: FLAIR -0.1 / +0.1, T1 -0.1 / +0.1: the paired CI spans both, never a cross-modality gap
    for pair in (flair, t1):
        assert pair["delta_lo"] == pytest.approx(-0.1) and pair["delta_hi"] == pytest.approx(0.1)
    assert math.isnan(t1["fp32_seed_sd"])  # one seed: no seed-to-seed SD (not the FLAIR-T1 spread)
