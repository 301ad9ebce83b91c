"""Every registered method, with every config file in configs/method/ (its inherited defaults merged), goes
through the whole interface on tiny data: fit (a few steps), calibrate, predict, save/load, evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.config import METHOD_CONFIG_KEYS
from methods import MethodContext, create_method, registered_methods
from tests.method_contract import check_method_contract, tiny_budget
from tests.tiny_config import METHOD_CONFIG_DIR, method_config

METHOD_CONFIGS = sorted(METHOD_CONFIG_DIR.glob("*.yaml"))


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
def test_method_keeps_the_interface_contract_on_tiny_data(config_path: Path, tmp_path: Path) -> None:
    cfg = method_config(config_path.stem)
    log = check_method_contract(cfg, tmp_path)
    if registered_methods()[cfg["name"]].trains:  # a training method spends its (tiny) budget
        budget = tiny_budget(cfg)
        assert budget.steps == 3 and budget.val_every == 2
        assert log.steps == 3 and [h["step"] for h in log.history] == [2, 3]  # validated every 2 steps and at the end
