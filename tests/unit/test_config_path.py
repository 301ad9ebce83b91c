"""Where the entry points read the Hydra configs: the packaged copy first, then the checkout's, else a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.config_path import CONFIG_DIR, find_config_dir
from tests.tiny_config import REPO


def make_configs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("device: cpu\n")
    return folder


def test_the_packaged_copy_wins_over_a_checkout_folder(tmp_path) -> None:
    packaged, checkout = make_configs(tmp_path / "pkg" / "configs"), make_configs(tmp_path / "configs")
    assert find_config_dir((packaged, checkout)) == packaged
    assert find_config_dir((tmp_path / "pkg" / "missing", checkout)) == checkout


def test_a_folder_without_config_yaml_is_skipped_and_none_is_a_clear_error(tmp_path) -> None:
    empty = tmp_path / "configs"
    empty.mkdir()  # e.g. an unrelated site-packages/configs of another distribution
    with pytest.raises(FileNotFoundError, match=r"no Hydra configuration found \(looked for .*configs/config\.yaml"):
        find_config_dir((empty,))


def test_a_checkout_reads_its_top_level_configs() -> None:
    assert Path(CONFIG_DIR) == REPO / "configs"
