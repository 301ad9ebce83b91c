"""Run an experiment's cells side by side in worker processes (``workers``), each with its share of the CPU cores.

Small networks on a few CPU cores use them better as several single-threaded processes than as one process
with several threads: on 2 cores, an IterMask² training step took 472 ms with 2 threads and 720 ms with 1,
while two 1-thread processes ran at 720 ms each at the same time (1.31x the throughput; README, "Parallel /
cluster runs"). So on a CPU the default (``workers: auto``) runs cells in up to :data:`MAX_AUTO_WORKERS`
processes; on a GPU it runs them in this process, one after another.

A cell is the unit of work, as in a serial run: the worker that takes it trains or reloads, calibrates,
predicts, evaluates and writes its rows (atomically), so a crash or Ctrl-C loses only unfinished cells and a
rerun resumes. Cells that share a checkpoint (AutoDDPM and DDPM train one network) are one task, run in order
by one worker, so the network is trained once. Workers are spawned (no fork of a process holding threads),
load the prepared splits from the slice cache, log through the parent's handlers and show no progress bars;
the parent shows one bar over cells.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from benchmark.heap import keep_freed_memory
from datasets.loader import usable_cpus

log = logging.getLogger("benchmark")

#: ``workers: auto`` on a CPU: at most this many processes (each holds a copy of the splits and its networks).
MAX_AUTO_WORKERS = 4


@dataclass(frozen=True)
class WorkerPlan:
    """How many processes run cells and how many threads each gives torch."""

    workers: int
    threads: int


def worker_plan(setting: Any, device: torch.device, tasks: int) -> WorkerPlan:
    """``workers`` resolved: an integer >= 1, or ``auto`` (1 on a GPU; on a CPU the usable cores, at most
    :data:`MAX_AUTO_WORKERS`); never more than ``tasks``. The cores are split evenly between the workers."""
    cores = usable_cpus()
    if setting == "auto":
        wanted = 1 if device.type != "cpu" else min(cores, MAX_AUTO_WORKERS)
    else:
        wanted = int(setting)
    workers = max(1, min(wanted, tasks))
    threads = torch.get_num_threads() if workers == 1 else max(1, cores // workers)
    return WorkerPlan(workers, threads)


def check_workers_setting(setting: Any) -> str | None:
    """Why ``workers`` is invalid (None when it is ``auto`` or an integer >= 1)."""
    if setting == "auto" or (isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1):
        return None
    return f"workers={setting!r}; expected auto or an integer >= 1"


def group_by_checkpoint(cells: Sequence[Any], checkpoint_of: Callable[[Any], Path]) -> list[list[Any]]:
    """``cells`` in tasks: the cells that share a checkpoint together, in their order; tasks in the order of
    their first cell."""
    groups: dict[Path, list[Any]] = {}
    for cell in cells:
        groups.setdefault(checkpoint_of(cell), []).append(cell)
    return list(groups.values())


@dataclass(frozen=True)
class CellRunner:
    """What a worker process calls, given as module-level functions (pickled by name, so this module does not
    import the runner that uses it): ``open_setup(cfg, data_seconds)`` opens the run setup once per worker,
    ``options(cfg)`` types the cell options, ``run(cell, setup, options, trained)`` runs one cell."""

    open_setup: Callable[[DictConfig, float], Any]
    options: Callable[[DictConfig], Any]
    run: Callable[[Any, Any, Any, set[Path]], None]


def run_in_workers(
    cfg: DictConfig,
    tasks: Sequence[Sequence[Any]],
    plan: WorkerPlan,
    runner: CellRunner,
    data_seconds: float,
    progress: bool,
) -> None:
    """Run every task (a list of cells) in ``plan.workers`` spawned processes; returns when all are done.

    The first failing task stops the run: the other workers are terminated (their unfinished cells are lost,
    finished ones stay in the store) and its exception is raised here. Ctrl-C does the same.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    listener = logging.handlers.QueueListener(queue, _ParentLogHandler())
    listener.start()
    cfg = cfg.copy()
    cfg.workers = plan.workers  # resolved: the workers' rows record how many ran side by side
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    total = sum(len(task) for task in tasks)
    log.info("%d cells in %d worker processes, %d torch thread(s) each", total, plan.workers, plan.threads)
    bar = tqdm(total=total, desc="cells", unit="cell", disable=not progress)
    pool = ProcessPoolExecutor(
        plan.workers, mp_context=context, initializer=_init_worker,
        initargs=(resolved, plan.threads, queue, runner, data_seconds),
    )  # fmt: skip
    try:
        futures = [pool.submit(_run_task, list(task)) for task in tasks]
        for future in as_completed(futures):
            bar.update(future.result())  # a worker's exception (or its death: BrokenProcessPool) is raised here
    except BaseException:
        _terminate(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        listener.stop()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers now, mid-cell (Python 3.11 has no public call for it: 3.14's
    ``terminate_workers``); what they had finished is in the store already."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() drops the mapping
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()


class _ParentLogHandler(logging.Handler):
    """Hands a worker's log record to the parent's logger of the same name (its console and Hydra log file)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


_WORKER: dict[str, Any] = {}  # per worker process: the run setup and cell options, built once


def _init_worker(resolved_cfg: str, threads: int, queue: Any, runner: CellRunner, data_seconds: float) -> None:
    """Worker start: Ctrl-C is the parent's to handle, torch threads and heap set, logs to the parent, data loaded."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    keep_freed_memory()  # as in the parent (benchmark.heap): a spawned worker starts with glibc's defaults
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)
    cfg = OmegaConf.create(resolved_cfg)
    assert isinstance(cfg, DictConfig)  # written from the run's DictConfig
    cfg.progress = False  # one bar over cells, in the parent
    _WORKER.update(runner=runner, setup=runner.open_setup(cfg, data_seconds), options=runner.options(cfg))


def _run_task(cells: list[Any]) -> int:
    """Run the task's cells in order (one ``trained`` record: a shared checkpoint is fitted once)."""
    trained: set[Path] = set()
    for cell in cells:
        _WORKER["runner"].run(cell, _WORKER["setup"], _WORKER["options"], trained)
    return len(cells)
