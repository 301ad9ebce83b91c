"""Dataset statistics: ``python -m benchmark.dataset_stats [hydra overrides]`` (config ``configs/stats.yaml``).

Loads the configured dataset exactly as a run does (:func:`benchmark.runner.prepare_data`: the built-in synthetic
set is generated if missing, slices come from the slice cache) and writes, to ``stats.out``, the statistics of
its pre-processed slices per modality (:mod:`datasets.dataset_statistics`): ``dataset_statistics.json``, a
markdown table ``dataset_statistics.md`` (also printed) and ``dataset_statistics.png`` (histograms, spectra).
``stats.compare=<dataset_statistics.json>`` puts a dataset measured earlier beside it in the table and figure:

    python -m benchmark.dataset_stats                                  # the built-in synthetic set
    python -m benchmark.dataset_stats dataset=brats dataset.root=/data/BraTS2021 dataset.image_size=64 \\
        stats.compare=outputs/dataset_stats/synthetic-brats/dataset_statistics.json
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import benchmark.hydra_resolvers  # noqa: F401  (registers the resolvers configs/config.yaml uses)
from benchmark.config import ConfigError
from benchmark.config_path import CONFIG_DIR
from benchmark.runner import prepare_data
from datasets.dataset_statistics import STATISTICS_FILE, atomic_write_text, dataset_statistics, to_json
from datasets.errors import DatasetError
from reports.dataset_statistics import markdown_table, statistics_figure

log = logging.getLogger("benchmark")


def read_statistics(path: Path) -> dict[str, Any]:
    """A ``dataset_statistics.json`` written earlier; a clear error naming the file otherwise."""
    try:
        stats = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"stats.compare={path}: no such file; expected a {STATISTICS_FILE} written earlier") from None
    except ValueError as error:
        raise ConfigError(f"stats.compare={path}: not valid JSON ({error}); expected a {STATISTICS_FILE}") from None
    if not isinstance(stats, dict) or not {"dataset", "image_size", "modalities"} <= set(stats):
        raise ConfigError(f"stats.compare={path}: not a {STATISTICS_FILE} (no dataset / image_size / modalities)")
    return stats


def run_statistics(cfg: DictConfig) -> str:
    """Write this dataset's statistics (and the comparison's, when given) to ``stats.out``; returns the table."""
    compare = read_statistics(Path(cfg.stats.compare)) if cfg.stats.get("compare") else None
    stats = dataset_statistics(prepare_data(cfg))
    out = Path(cfg.stats.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / STATISTICS_FILE, to_json(stats))
    shown = [stats] if compare is None else [stats, compare]
    if compare is not None and compare["image_size"] != stats["image_size"]:
        log.warning(
            "stats.compare: %s is at %s px, %s at %s px: texture and spectra depend on the working resolution",
            compare["dataset"], compare["image_size"], stats["dataset"], stats["image_size"],
        )  # fmt: skip
    table = markdown_table(shown)
    atomic_write_text(out / "dataset_statistics.md", table)
    statistics_figure(shown, out / "dataset_statistics.png")
    log.info("dataset statistics: %s", out)
    return table


@hydra.main(config_path=CONFIG_DIR, config_name="stats", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        print(run_statistics(cfg))
    except (ConfigError, DatasetError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
