"""``compute.precision=bf16`` end to end on the tiny AE: fit, calibration and inference run under bf16 autocast, the
bf16 cell is its own row and checkpoint beside its fp32 twin, tables label it, and the report's precision table
shows the measured Dice difference of the two rows."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.runner import run_experiment
from methods.ae import AutoEncoder
from methods.base import AnomalyMethod
from reports.labels import configuration_labels
from reports.report import write_report
from tests.tiny_config import tiny_ae


@pytest.fixture(scope="module")
def both_precisions(tmp_path_factory, shared_data_dir):
    """The tiny AE cell in fp32, then in bf16 into the same store; the autocast state seen by each call."""
    tmp_path = tmp_path_factory.mktemp("precision")
    seen: list[tuple[str, bool, torch.dtype]] = []
    patch = pytest.MonkeyPatch()

    def recording(name: str):
        original = getattr(AutoEncoder, name)

        def wrapper(self: AnomalyMethod, *args, **kwargs):
            seen.append((name, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
            return original(self, *args, **kwargs)

        patch.setattr(AutoEncoder, name, wrapper)

    for name in ("fit", "calibrate", "predict"):
        recording(name)
    seen_by: dict[str, list[tuple[str, bool, torch.dtype]]] = {}
    try:
        for precision in ("fp32", "bf16"):
            seen.clear()
            store = run_experiment(
                tiny_ae(tmp_path, shared_data_dir, "methods.ae.train.steps=4", f"compute.precision={precision}")
            )
            seen_by[precision] = list(seen)
    finally:
        patch.undo()
    return tmp_path, store, seen_by


def test_bf16_runs_fit_calibration_and_inference_under_autocast(both_precisions) -> None:
    _, _, seen = both_precisions
    for precision, enabled in (("fp32", False), ("bf16", True)):
        calls = {name for name, _, _ in seen[precision]}
        assert calls == {"fit", "calibrate", "predict"}, precision  # bf16 retrained: fp32 checkpoint not reused
        assert all(on == enabled for _, on, _ in seen[precision]), precision
    assert all(dtype == torch.bfloat16 for _, _, dtype in seen["bf16"])


def test_bf16_cell_is_its_own_row_beside_its_fp32_twin(both_precisions) -> None:
    _, store, _ = both_precisions
    rows = store.rows()
    fp32, bf16 = (rows[rows["precision"] == p] for p in ("fp32", "bf16"))
    assert len(fp32) == len(bf16) == 2  # two protocols each
    assert set(fp32["config_hash"]).isdisjoint(bf16["config_hash"]) and set(fp32["cell"]).isdisjoint(bf16["cell"])
    assert set(bf16["config_hash_fp32"]) == set(fp32["config_hash"]) == set(fp32["config_hash_fp32"])
    assert not bf16["checkpoint_reused"].any()
    labels = set(configuration_labels(rows))
    assert labels == {"AE", "AE [bf16]"}


def test_report_shows_the_measured_dice_difference(both_precisions) -> None:
    tmp_path, store, _ = both_precisions
    report = write_report(store, tmp_path / "report")
    text = report.read_text()
    assert "## Precision (oracle_global)" in text and "| AE [bf16] |" in text
    rows = store.rows()
    at = rows[rows["protocol"] == "oracle_global"].set_index("precision")["dice"]
    pairs = pd.read_csv(tmp_path / "report" / "precision.csv")
    (pair,) = pairs.itertuples()
    assert pair.method == "AE" and pair.precision == "bf16"
    assert pair.dice_delta == pytest.approx(at["bf16"] - at["fp32"], abs=1e-6)
    assert pair.delta_lo <= pair.dice_delta <= pair.delta_hi  # the mean difference lies in its bootstrap CI
