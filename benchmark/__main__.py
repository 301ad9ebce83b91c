"""Command line: ``python -m benchmark [hydra overrides]`` runs an experiment and writes its report.

``experiment.kind`` picks what runs: ``comparison`` (default: train, predict, evaluate every cell) or
``timing`` (cost of every method, :mod:`benchmark.timing`; ``experiment=timing``). The configuration is
checked before any work; an expected failure (bad config, bad data) prints one line and exits with status 2,
Ctrl-C one line and status 130 (:mod:`benchmark.cli`; ``HYDRA_FULL_ERROR=1`` keeps the traceback).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

import benchmark.hydra_resolvers  # noqa: F401  (registers the resolvers configs/config.yaml uses)
from benchmark.cli import one_line_errors
from benchmark.config_path import CONFIG_DIR
from benchmark.heap import keep_freed_memory

log = logging.getLogger("benchmark")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the configured experiment (resuming finished cells), then regenerate its report."""
    keep_freed_memory()  # training steps reuse their freed activations without page faults (benchmark.heap)
    with one_line_errors():
        run(cfg)


def run(cfg: DictConfig) -> None:
    """Dispatch on ``experiment.kind``; a comparison's report shows this experiment's cells (every cell of the
    store in a multirun, whose jobs share it)."""
    from benchmark.config import validate_config

    validate_config(cfg)
    if cfg.experiment.get("kind", "comparison") == "timing":
        run_timing_experiment(cfg)
        return
    from benchmark.runner import run_experiment_cells  # imported here so `--help` stays fast
    from reports.report import write_report

    store, cells = run_experiment_cells(cfg)
    if cfg.report:
        report = write_report(store, Path(cfg.paths.report), cfg, cells=None if _is_multirun() else cells)
        log.info("report: %s", report)


def run_timing_experiment(cfg: DictConfig) -> None:
    """Measure every method's cost; write the rows and the cost report (of this run's rows)."""
    from benchmark.timing import run_timing_cells
    from reports.cost import write_cost_report

    store, written = run_timing_cells(cfg)
    if cfg.report:
        rows = store.rows(None if _is_multirun() else written)
        log.info("cost report: %s", write_cost_report(rows, Path(cfg.paths.report)))


def _is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


if __name__ == "__main__":
    main()
