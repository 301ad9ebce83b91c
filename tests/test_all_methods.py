"""Every registered method, with every config file in configs/method/ (its inherited defaults merged), goes
through the whole interface on tiny data: fit (a few steps), calibrate, predict, save/load, evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.config import METHOD_CONFIG_KEYS
from benchmark.evaluate import evaluate
from benchmark.predict import predict_split
from methods import MethodContext, TrainBudget, create_method, registered_methods
from tests.tiny_config import METHOD_CONFIG_DIR, method_config
from tests.toy_data import toy_splits

METHOD_CONFIGS = sorted(METHOD_CONFIG_DIR.glob("*.yaml"))
SPLITS = toy_splits(size=32)


def test_every_registered_method_has_a_config() -> None:
    configs = {p.stem: method_config(p.stem) for p in METHOD_CONFIGS}
    for stem, cfg in configs.items():  # inherited files merged: every file is a whole method config with a label
        assert set(cfg) <= set(METHOD_CONFIG_KEYS) and cfg.get("label"), (stem, sorted(cfg))
    configured = {cfg["name"] for cfg in configs.values()}
    assert set(registered_methods()) <= configured, "each registered method needs a configs/method/*.yaml"
    assert configured <= set(registered_methods()), "a config names an unregistered method"


def test_unknown_method_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown method 'nope'.*registered methods: .*ae"):
        create_method("nope", MethodContext("flair", 32, torch.device("cpu"), 0))


@pytest.mark.parametrize("config_path", METHOD_CONFIGS, ids=lambda p: p.stem)
def test_method_round_trip_on_tiny_data(config_path: Path, tmp_path: Path) -> None:
    cfg = method_config(config_path.stem)
    # expensive samplers give cheaper settings of the same code path (e.g. fewer diffusion steps)
    cfg["params"] = cfg.get("params", {}) | cfg.pop("smoke_params", {})
    context = MethodContext("flair", 32, torch.device("cpu"), seed=0, available_modalities=SPLITS.test.modalities)
    method = create_method(cfg["name"], context, **cfg.get("params", {}))
    budget = TrainBudget(**(cfg["train"] | {"steps": 3, "batch_size": 4, "val_every": 2, "patience": None}))

    log = method.fit(SPLITS.train, SPLITS.val, budget)
    method.calibrate(SPLITS.val)
    assert log.steps == 3 and len(log.history) == 2

    prediction = predict_split(method, SPLITS.test, batch_size=3)
    assert prediction.anomaly_maps.shape == SPLITS.test.labels.shape
    assert torch.isfinite(prediction.anomaly_maps).all()
    assert (prediction.nfe >= 1).all() and prediction.nfe.shape == (len(SPLITS.test),)
    assert method.parameter_count() > 0

    # a reloaded method predicts the same maps (up to stochastic methods' own seeding)
    torch.save(method.state_dict(), tmp_path / "state.pt")
    clone = create_method(cfg["name"], context, **cfg.get("params", {}))
    clone.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    torch.manual_seed(0)
    again = predict_split(clone, SPLITS.test, batch_size=3)
    torch.manual_seed(0)
    first = predict_split(method, SPLITS.test, batch_size=3)
    torch.testing.assert_close(again.anomaly_maps, first.anomaly_maps)

    val_prediction = predict_split(method, SPLITS.val, batch_size=3)
    results = evaluate(prediction, SPLITS.test, "flair", ["oracle_global", "val_fpr", "oracle_per_image"], val_prediction, SPLITS.val)
    assert [r.protocol for r in results] == ["oracle_global", "val_fpr", "oracle_per_image"]
    for r in results:
        assert 0.0 <= r.row["dice"] <= 1.0 and 0.0 <= r.row["auroc"] <= 1.0
        assert r.segmentation.shape == SPLITS.test.labels.shape
