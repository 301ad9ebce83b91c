"""The built-in synthetic set's statistics: a run's data preparation writes them beside the generator's
description (once per data hash), and the statistics command compares a dataset with them."""

from __future__ import annotations

import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from benchmark.dataset_stats import run_statistics
from benchmark.runner import prepare_data
from tests.conftest import TINY_SYNTHETIC_SUBJECTS
from tests.tiny_config import CONFIG_DIR, compose_tiny


def test_prepared_synthetic_set_records_its_statistics_and_the_command_compares(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_tiny(tmp_path, shared_data_dir)
    splits = prepare_data(cfg)
    root = Path(cfg.dataset.root)
    stats = json.loads((root / "dataset_statistics.json").read_text())
    description = json.loads((root / "dataset_description.json").read_text())
    assert stats["data_hash"] == splits.data_hash and stats["image_size"] == 32
    assert description["statistics"]["file"] == "dataset_statistics.json"
    assert description["statistics"]["data_hash"] == splits.data_hash
    assert description["subjects"]  # the generator's record is kept

    # the command's own config (configs/stats.yaml) with the tiny set of compose_tiny
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        stats_cfg = compose(
            config_name="stats",
            overrides=[
                f"paths.output={tmp_path}",
                f"paths.data={shared_data_dir}",
                f"paths.cache={shared_data_dir / 'slice_cache'}",
                f"dataset.synthetic.n_subjects={TINY_SYNTHETIC_SUBJECTS}",
                "dataset.synthetic.n_healthy_subjects=1",
                "dataset.image_size=32",
                "dataset.split_fractions=[0.5,0.17,0.33]",
                "progress=false",
                f"stats.out={tmp_path / 'stats'}",
                f"stats.compare={root / 'dataset_statistics.json'}",
            ],
        )
    table = run_statistics(stats_cfg)
    assert table.splitlines()[0] == "| modality | statistic | synthetic-brats (32 px) | synthetic-brats (32 px) |"
    written = json.loads((tmp_path / "stats" / "dataset_statistics.json").read_text())
    assert written["modalities"] == stats["modalities"]  # the same slices give the same statistics
    assert (tmp_path / "stats" / "dataset_statistics.png").stat().st_size > 0
