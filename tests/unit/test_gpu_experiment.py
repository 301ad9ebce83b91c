"""experiment=gpu and experiment=gpu_timing compose to the paper configuration with the GPU compute options (the
spec's values, restated here by hand) and pass the config checks except for the missing GPU."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from benchmark.config import ConfigError, method_specs, validate_config
from tests.tiny_config import CONFIG_DIR

#: (network params, steps, batch size, lr) per method entry: the spec's reference values.
PAPER = {
    "ae": ({}, 20000, 128, 1e-4),
    "ddpm": ({"channels": [128, 256, 256], "patch": 1}, 100000, 16, 1e-4),
    "autoddpm": ({"channels": [128, 256, 256], "patch": 1}, 100000, 16, 1e-4),
    "cyclic_unet": ({"unet": "paper"}, 80000, 32, 1e-4),
    "dae_pos": ({"widths": [64, 128, 256, 512]}, 67000, 16, 1e-4),
    "dae_neg": ({"widths": [64, 128, 256, 512]}, 67000, 16, 1e-4),
    "dae_plain": ({"widths": [64, 128, 256, 512]}, 67000, 16, 1e-4),
    "itermask2": ({"net": "paper"}, 90000, 32, 1e-4),
}


def _compose(experiment: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[f"experiment={experiment}", *overrides])


@pytest.mark.parametrize(("experiment", "kind"), [("gpu", "comparison"), ("gpu_timing", "timing")])
def test_gpu_experiments_compose_the_paper_configuration(experiment: str, kind: str) -> None:
    cfg = _compose(experiment)
    assert cfg.experiment.name == experiment and cfg.experiment.get("kind", "comparison") == kind
    assert cfg.device == "cuda" and cfg.dataset.image_size == 128
    assert dict(cfg.compute) == {"precision": "bf16", "channels_last": True, "compile": True}
    specs = {s.key: s for s in method_specs(cfg)}
    assert set(specs) == set(PAPER)
    for key, (params, steps, batch_size, lr) in PAPER.items():
        spec = specs[key]
        assert {k: spec.params[k] for k in params} == params, key
        assert (spec.budget.steps, spec.budget.batch_size, spec.budget.lr) == (steps, batch_size, lr), key
    assert specs["ddpm"].budget == specs["autoddpm"].budget  # one shared DDPM network
    assert specs["itermask2"].budget.weight_decay == 0.0
    if kind == "timing":
        assert cfg.timing.train_steps == 200 and cfg.timing.warmup >= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_experiment_without_a_gpu_fails_on_the_device_only() -> None:
    assert len(validate_config(_compose("gpu", "device=cpu"))) == len(PAPER)  # everything else checks out
    with pytest.raises(ConfigError, match=r"^device=cuda: torch .* sees no CUDA device"):
        validate_config(_compose("gpu"))
