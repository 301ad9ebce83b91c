"""Command line: ``python -m benchmark [hydra overrides]`` runs an experiment and writes its report.

``experiment.kind`` picks what runs: ``comparison`` (default: train, predict, evaluate every cell) or
``timing`` (cost of every method, :mod:`benchmark.timing`; ``experiment=timing``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
log = logging.getLogger("benchmark")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Run the configured experiment (resuming finished cells), then regenerate its report."""
    kind = cfg.experiment.get("kind", "comparison")
    if kind == "timing":
        run_timing_experiment(cfg)
        return
    if kind != "comparison":
        raise ValueError(f"experiment.kind must be 'comparison' or 'timing', got {kind!r}")
    from benchmark.runner import run_experiment  # imported here so `--help` stays fast
    from reports.report import write_report

    store = run_experiment(cfg)
    if cfg.report:
        report = write_report(store, Path(cfg.paths.report), cfg)
        log.info("report: %s", report)


def run_timing_experiment(cfg: DictConfig) -> None:
    """Measure every method's cost; write the rows and the cost report."""
    from benchmark.timing import run_timing
    from reports.cost import write_cost_report

    store = run_timing(cfg)
    if cfg.report:
        log.info("cost report: %s", write_cost_report(store.rows(), Path(cfg.paths.report)))


if __name__ == "__main__":
    main()
