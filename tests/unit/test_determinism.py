"""The ``deterministic`` switch sets torch's deterministic algorithms, the cuDNN flags and the cuBLAS workspace,
both ways, and leaves the random streams alone."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import provenance
from benchmark.provenance import CUBLAS_WORKSPACE, seed_everything, set_deterministic


@pytest.fixture(autouse=True)
def _restore_torch_flags():
    """These flags are process-wide: put back what the session had."""
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2:]


def test_on_sets_every_flag_and_the_cublas_workspace(monkeypatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    set_deterministic(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE == ":4096:8"


def test_a_users_own_cublas_setting_is_kept(monkeypatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    set_deterministic(True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_off_after_on_restores_the_fast_defaults() -> None:
    set_deterministic(True)
    set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark


@pytest.mark.parametrize("enabled", [True, False])
def test_the_switch_draws_nothing_from_the_seeded_streams(enabled) -> None:
    seed_everything(7)
    expected = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(7)
    set_deterministic(enabled)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])


def test_cpu_device_name_says_which_cpu_and_instruction_set(monkeypatch) -> None:
    """CPU numbers are reproducible per kind of CPU only: the device field names the model and torch's ISA."""
    provenance.cpu_description.cache_clear()
    name = provenance.device_name(torch.device("cpu"))
    assert torch.backends.cpu.get_cpu_capability() in name
    for threads, ending in ((1, ", 1 thread)"), (2, ", 2 threads)")):
        monkeypatch.setattr(torch, "get_num_threads", lambda n=threads: n)
        assert provenance.device_name(torch.device("cpu")).endswith(ending)
    monkeypatch.undo()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        first = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if first:
            assert first.group(1).strip() in name
    monkeypatch.setattr(provenance, "Path", lambda _: Path("/nonexistent/cpuinfo"))
    provenance.cpu_description.cache_clear()
    try:
        assert torch.backends.cpu.get_cpu_capability() in provenance.cpu_description()  # no /proc: still an answer
    finally:
        provenance.cpu_description.cache_clear()
