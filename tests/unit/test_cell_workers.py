"""benchmark/cell_workers.py: how many workers and threads, which cells share a task, and the pool itself (with
module-level stand-ins for the runner's functions: real spawned processes, no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from benchmark import cell_workers
from benchmark.cell_workers import (
    MAX_AUTO_WORKERS,
    CellRunner,
    WorkerPlan,
    check_workers_setting,
    group_by_checkpoint,
    run_in_workers,
    worker_plan,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("setting", "device", "cores", "tasks", "expected"),
    [
        ("auto", CPU, 2, 16, WorkerPlan(2, 1)),
        ("auto", CPU, 16, 16, WorkerPlan(MAX_AUTO_WORKERS, 16 // MAX_AUTO_WORKERS)),
        ("auto", CPU, 8, 3, WorkerPlan(3, 2)),  # never more workers than tasks; cores shared evenly
        (3, CPU, 2, 16, WorkerPlan(3, 1)),  # an explicit count is taken as given (at least one thread each)
    ],
)
def test_worker_plan(monkeypatch: pytest.MonkeyPatch, setting: Any, device: torch.device, cores: int, tasks: int,
                     expected: WorkerPlan) -> None:  # fmt: skip
    monkeypatch.setattr(cell_workers, "usable_cpus", lambda: cores)
    assert worker_plan(setting, device, tasks) == expected


@pytest.mark.parametrize(("setting", "tasks"), [("auto", 16), (4, 1)])
def test_one_worker_keeps_torch_threads(monkeypatch: pytest.MonkeyPatch, setting: Any, tasks: int) -> None:
    """A GPU run (auto) and a single task run in this process with torch's own thread count."""
    monkeypatch.setattr(cell_workers, "usable_cpus", lambda: 16)
    device = CUDA if setting == "auto" else CPU
    assert worker_plan(setting, device, tasks) == WorkerPlan(1, torch.get_num_threads())


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two", None])
def test_bad_workers_settings_are_named(bad: Any) -> None:
    assert check_workers_setting(bad) == f"workers={bad!r}; expected auto or an integer >= 1"
    assert check_workers_setting("auto") is None and check_workers_setting(2) is None


def test_cells_sharing_a_checkpoint_are_one_task_in_their_order() -> None:
    checkpoint = {"ddpm": Path("a"), "ae": Path("b"), "autoddpm": Path("a"), "dae": Path("c")}
    tasks = group_by_checkpoint(["ddpm", "ae", "autoddpm", "dae"], checkpoint.__getitem__)
    assert tasks == [["ddpm", "autoddpm"], ["ae"], ["dae"]]


# Stand-ins for the runner's functions (module level: the spawned workers unpickle them by name).
def _open_setup(cfg: Any, data_seconds: float) -> dict[str, Any]:
    return {"out": Path(cfg.out), "data_seconds": data_seconds}


def _options(cfg: Any) -> dict[str, Any]:
    return {"progress": cfg.progress}


def _run(cell: str, setup: dict[str, Any], options: dict[str, Any], trained: set[Path]) -> None:
    if cell == "boom":
        raise ValueError("cell boom failed")
    trained.add(Path(cell))
    line = f"{cell} {setup['data_seconds']} {options['progress']} {torch.get_num_threads()} {sorted(map(str, trained))}"
    (setup["out"] / cell).write_text(line)


RUNNER = CellRunner(open_setup=_open_setup, options=_options, run=_run)


def test_pool_runs_every_cell_once_with_a_task_in_one_worker(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"out": str(tmp_path), "progress": True})
    run_in_workers(cfg, [["a", "b"], ["c"]], WorkerPlan(2, 1), RUNNER, data_seconds=7.5, progress=False)
    lines = {p.name: p.read_text() for p in tmp_path.iterdir()}
    # the worker's options say progress False (bars off in workers), one thread each; a and b shared one
    # ``trained`` record (same task), c had its own
    assert lines == {"a": "a 7.5 False 1 ['a']", "b": "b 7.5 False 1 ['a', 'b']", "c": "c 7.5 False 1 ['c']"}


def test_a_failing_cell_stops_the_run_with_its_error(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"out": str(tmp_path), "progress": False})
    with pytest.raises(ValueError, match="cell boom failed"):
        run_in_workers(cfg, [["boom"], ["ok"]], WorkerPlan(2, 1), RUNNER, data_seconds=0.0, progress=False)
