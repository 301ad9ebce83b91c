"""The interface contract every registered method keeps, checked on tiny data for one method config. The
registry-wide test runs it for every file in configs/method/, and the add-a-method test for a method that
exists only in a temporary module: nothing here names a method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark.evaluate import evaluate
from benchmark.predict import predict_split
from methods import MethodContext, TrainBudget, create_method, registered_methods
from methods.base import TrainLog
from tests.toy_data import toy_splits

SPLITS = toy_splits(size=32)
PROTOCOLS = ["oracle_global", "val_fpr", "oracle_per_image"]


def tiny_budget(cfg: dict[str, Any]) -> TrainBudget:
    """Three steps of the config's training (none for a method that trains nothing)."""
    if not registered_methods()[cfg["name"]].trains:
        return TrainBudget(**({"steps": 0, "batch_size": 1, "lr": 0.0} | cfg.get("train", {})))
    return TrainBudget(**(cfg["train"] | {"steps": 3, "batch_size": 4, "val_every": 2, "patience": None}))


def check_method_contract(cfg: dict[str, Any], tmp_path: Path) -> TrainLog:
    """fit within its budget → calibrate → maps of the test set's shape, finite, NFE >= 0 per slice →
    state round trip (a reloaded method predicts the same maps) → every threshold protocol evaluates.
    Returns the training log (for checks that only apply to methods that train)."""
    params = cfg.get("params", {}) | cfg.get("smoke_params", {})  # cheaper settings of the same code path
    context = MethodContext("flair", 32, torch.device("cpu"), seed=0, available_modalities=SPLITS.test.modalities)
    method = create_method(cfg["name"], context, **params)
    budget = tiny_budget(cfg)

    log = method.fit(SPLITS.train, SPLITS.val, budget)
    method.calibrate(SPLITS.val)
    assert 0 <= log.steps <= budget.steps
    assert method.parameter_count() >= 0

    prediction = predict_split(method, SPLITS.test, batch_size=3)
    assert prediction.anomaly_maps.shape == SPLITS.test.labels.shape
    assert torch.isfinite(prediction.anomaly_maps).all()
    assert (prediction.nfe >= 0).all() and prediction.nfe.shape == (len(SPLITS.test),)

    torch.save(method.state_dict(), tmp_path / "state.pt")
    clone = create_method(cfg["name"], context, **params)
    clone.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    torch.manual_seed(0)
    again = predict_split(clone, SPLITS.test, batch_size=3)
    torch.manual_seed(0)
    first = predict_split(method, SPLITS.test, batch_size=3)
    torch.testing.assert_close(again.anomaly_maps, first.anomaly_maps)

    val_prediction = predict_split(method, SPLITS.val, batch_size=3)
    results = evaluate(prediction, SPLITS.test, "flair", PROTOCOLS, val_prediction, SPLITS.val)
    assert [r.protocol for r in results] == PROTOCOLS
    for r in results:
        assert 0.0 <= r.row["dice"] <= 1.0 and 0.0 <= r.row["auroc"] <= 1.0
        assert r.segmentation.shape == SPLITS.test.labels.shape
    return log
