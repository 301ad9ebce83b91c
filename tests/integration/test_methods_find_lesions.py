"""End to end on visible lesions: trained briefly on healthy toy slices, each reconstruction-based
method must rank lesion pixels above normal brain pixels far better than chance (pixel AUROC 0.5), on
bright (FLAIR-like) and dark (T1-like) lesions. The diffusion baselines are left out: minutes of CPU
training do not give them a usable ε-model (their cost and NFE are tested in test_ddpm / test_autoddpm)."""

from __future__ import annotations

import pytest
import torch

from benchmark.metrics import pixel_auroc
from benchmark.predict import predict_split
from datasets.slices import Splits
from methods import MethodContext, TrainBudget, create_method
from tests.tiny_config import method_config
from tests.toy_data import toy_slices

SPLITS = Splits(
    train=toy_slices(64, 32, seed=11),
    val=toy_slices(16, 32, seed=12),
    test=toy_slices(12, 32, lesions=True, seed=13, lesion_radius=5.0),
    name="toy",
    preprocess_hash="toy000000000",
)
STEPS = {"ae": 150, "dae_plain": 120, "cyclic_unet": 60, "itermask2": 150}


@pytest.mark.parametrize("modality", ["flair", "t1"])
@pytest.mark.parametrize("config_name", sorted(STEPS))
def test_trained_method_ranks_lesion_pixels_far_above_chance(config_name: str, modality: str) -> None:
    cfg = method_config(config_name)
    context = MethodContext(modality, 32, torch.device("cpu"), seed=0, available_modalities=SPLITS.test.modalities)
    method = create_method(cfg["name"], context, **cfg.get("params", {}))
    budget = TrainBudget(
        **(cfg["train"] | {"steps": STEPS[config_name], "batch_size": 8, "val_every": 50, "patience": None})
    )
    method.fit(SPLITS.train, SPLITS.val, budget)
    method.calibrate(SPLITS.val)
    maps = predict_split(method, SPLITS.test, batch_size=12).anomaly_maps
    auroc = pixel_auroc(maps, SPLITS.test.labels, SPLITS.test.brain)
    assert auroc > 0.8, f"{config_name} on {modality}: pixel AUROC {auroc:.3f}"
