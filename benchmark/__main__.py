"""Command line: ``python -m benchmark [hydra overrides]`` runs an experiment and writes its report."""

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
    from benchmark.runner import run_experiment  # imported here so `--help` stays fast
    from reports.report import write_report

    store = run_experiment(cfg)
    if cfg.report:
        report = write_report(store, Path(cfg.paths.report), cfg)
        log.info("report: %s", report)


if __name__ == "__main__":
    main()
