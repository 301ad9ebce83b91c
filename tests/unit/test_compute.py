"""Run-wide compute options (benchmark/compute.py): the ``compute`` group is checked, precision is part of a cell's
identity (fp32 keys unchanged), autocast and channels_last are really applied, on every available device."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from benchmark.compute import ComputeOptions, apply_compute, autocast
from benchmark.config import ConfigError, MethodSpec, compute_options
from benchmark.provenance import stable_hash
from benchmark.runner import Cell
from datasets.slices import SliceSet
from methods import MethodContext, create_method
from methods.base import TrainBudget
from methods.training import train_networks
from tests.toy_data import toy_slices

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]),
]


def _options(**group: object) -> ComputeOptions:
    return compute_options(OmegaConf.create({"compute": group}))


def test_compute_group_defaults_and_values() -> None:
    assert compute_options(OmegaConf.create({})) == ComputeOptions("fp32", False, False)
    assert _options(precision="bf16", compile=True) == ComputeOptions("bf16", False, True)
    assert _options(precision="bf16").fields() == {
        "precision": "bf16", "compute.channels_last": False, "compute.compile": False
    }  # fmt: skip


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"precision": "fp16"}, r"^compute\.precision='fp16'; expected one of fp32, bf16$"),
        ({"precision": "bf16", "amp": True}, r"^compute: unknown key\(s\) \['amp'\]; expected precision, "),
        ({"compile": "yes"}, r"^compute\.compile='yes'; expected true or false$"),
        ({"channels_last": 1}, r"^compute\.channels_last=1; expected true or false$"),
    ],
)
def test_bad_compute_values_name_the_key(group: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _options(**group)


def _cell(precision: str) -> Cell:
    spec = MethodSpec("ae", "ae", {"median": 3}, TrainBudget(steps=5, batch_size=2, lr=1e-3))
    return Cell("synthetic", "pre1", "data1", "flair", spec, 0, precision)


def test_precision_is_part_of_the_cell_identity_and_fp32_keys_are_unchanged() -> None:
    fp32, bf16 = _cell("fp32"), _cell("bf16")
    # fp32 hashes exactly what cells hashed before the option existed (stored results keep their keys)
    assert fp32.config_hash == stable_hash({"pre": "pre1", "data": "data1", "method": fp32.spec.as_dict()})
    assert bf16.config_hash != fp32.config_hash and bf16.key != fp32.key
    # bf16 cells of revision 1 (trained on stale bf16 weight copies) are not resumed
    revision_1 = {"pre": "pre1", "data": "data1", "method": bf16.spec.as_dict(), "precision": "bf16"}
    assert bf16.config_hash != stable_hash(revision_1)
    assert bf16.config_hash_fp32 == fp32.config_hash == fp32.config_hash_fp32


def _linear_and_input(device: str) -> tuple[torch.device, torch.nn.Linear, torch.Tensor]:
    dev = torch.device(device)
    return dev, torch.nn.Linear(4, 3).to(dev), torch.randn(2, 4, device=dev)


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_runs_the_networks_in_bf16_on_the_device(device: str) -> None:
    dev, linear, x = _linear_and_input(device)
    with autocast("bf16", dev):
        assert torch.is_autocast_enabled(dev.type) and torch.get_autocast_dtype(dev.type) == torch.bfloat16
        assert linear(x).dtype == torch.bfloat16
    with autocast("fp32", dev):
        assert not torch.is_autocast_enabled(dev.type) and linear(x).dtype == torch.float32
    with pytest.raises(ValueError, match="precision='fp16'; expected one of fp32, bf16"):
        autocast("fp16", dev)


@pytest.mark.parametrize("device", DEVICES)
def test_a_weight_changed_inside_one_bf16_region_is_seen_by_the_next_forward(device: str) -> None:
    dev, linear, x = _linear_and_input(device)
    with autocast("bf16", dev):
        before = linear(x).float()
        with torch.no_grad():
            linear.weight.add_(1.0)  # what an optimiser step does, in place
        after = linear(x).float()
    expected = before + x.sum(dim=1, keepdim=True)  # each output gains the sum of the inputs
    assert torch.allclose(after, expected, atol=0.05, rtol=0.02)


def _fit_reconstruction(precision: str, steps: int) -> tuple[float, float]:
    """(loss before training, loss after ``steps``) of a small conv net reconstructing toy slices through the
    shared training loop, the whole fit in one :func:`autocast` region as the runner does."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.SiLU(),
        torch.nn.Conv2d(16, 1, 3, padding=1),
    )

    def loss(batch: SliceSet, _: torch.Generator) -> torch.Tensor:
        x = batch.images[:, :1]
        return (net(x).float() - x).abs().mean()

    train, val = toy_slices(16, size=16), toy_slices(4, size=16, seed=3)
    with torch.no_grad():
        before = loss(train, torch.Generator()).item()
    budget = TrainBudget(steps=steps, batch_size=8, lr=3e-3, val_every=steps)
    optimizer = torch.optim.Adam(net.parameters(), lr=budget.lr)
    with autocast(precision, torch.device("cpu")):
        log = train_networks([net], loss, train, val, budget, optimizer, seed=0, progress=False)
    return before, log.final_train_loss


def test_a_fit_inside_one_bf16_region_learns_as_fp32_does() -> None:
    start, fp32 = _fit_reconstruction("fp32", steps=60)
    start_bf16, bf16 = _fit_reconstruction("bf16", steps=60)
    assert start_bf16 == pytest.approx(start, rel=0.05)  # same initial net, bf16 rounding apart
    assert fp32 < 0.3 * start  # the task is learnable in 60 steps
    # cached bf16 weights (every forward at the initial weights) would leave the loss near ``start``
    assert bf16 < 0.3 * start and bf16 == pytest.approx(fp32, rel=0.5)


@pytest.mark.parametrize("device", DEVICES)
def test_apply_compute_puts_channels_last_on_every_network_and_bf16_maps_stay_close(device: str) -> None:
    dev = torch.device(device)
    method = create_method("ae", MethodContext("flair", 32, dev, 0), widths=[8, 8, 8, 8], latent_dim=8)
    batch = toy_slices(3, size=32, lesions=True).to(dev)
    fp32 = method.predict(batch).anomaly_map
    apply_compute(method, ComputeOptions(channels_last=True))
    convs = [m for net in method.networks() for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    with autocast("bf16", dev):
        bf16 = method.predict(batch).anomaly_map
    assert bf16.shape == fp32.shape and torch.isfinite(bf16.float()).all()
    scale = float(fp32.abs().max())
    assert float((bf16.float() - fp32).abs().max()) < 0.1 * scale  # bf16 keeps ~3 significant digits
