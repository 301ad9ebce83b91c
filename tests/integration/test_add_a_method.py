"""The README's "Adding a method" example is real: its module and config, copied into a temporary folder (no
file of the suite edited), register a training-free method that keeps the interface contract and runs in an
experiment through the registry, the config validation, the runner and the report."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import methods.base as base
from benchmark.runner import run_experiment
from reports.report import write_report
from tests.method_contract import check_method_contract
from tests.tiny_config import REPO, compose_tiny

README = REPO / "README.md"


def readme_block(language: str) -> str:
    """The first fenced ``language`` block of the README's "Adding a method" section."""
    section = README.read_text().split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)[0]


@pytest.fixture
def readme_method(tmp_path: Path, monkeypatch) -> Path:
    """Registers the README's method from a temporary module (for this test only); returns a config search
    folder holding its ``method/intensity.yaml``."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    module_path = tmp_path / "intensity.py"
    module_path.write_text(readme_block("python"))
    spec = importlib.util.spec_from_file_location("readme_intensity", module_path)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    configs = tmp_path / "configs"
    (configs / "method").mkdir(parents=True)
    (configs / "method" / "intensity.yaml").write_text(readme_block("yaml"))
    return configs


def test_readme_method_keeps_the_interface_contract(readme_method: Path, tmp_path: Path) -> None:
    assert "intensity" in base.registered_methods()
    cfg = OmegaConf.to_container(OmegaConf.load(readme_method / "method" / "intensity.yaml"))
    assert isinstance(cfg, dict)
    assert check_method_contract(cfg, tmp_path).steps == 0  # trains nothing, within its (empty) budget


def test_readme_method_runs_in_an_experiment_and_finds_bright_lesions(
    readme_method: Path, tmp_path: Path, shared_data_dir: Path
) -> None:
    cfg = compose_tiny(
        tmp_path / "out", shared_data_dir, f"hydra.searchpath=[file://{readme_method}]",
        "+method@methods.intensity=intensity", "experiment.only_methods=[intensity]", "experiment.modalities=[flair]",
        "experiment.protocols=[oracle_global,val_fpr]",
    )  # fmt: skip
    store = run_experiment(cfg)
    rows = store.rows().set_index("protocol")
    assert rows.loc["oracle_global", "method_label"] == "Intensity"
    assert rows.loc["oracle_global", "train_steps"] == 0 and rows.loc["oracle_global", "nfe_per_slice"] == 0
    assert rows.loc["oracle_global", "auroc"] > 0.8  # synthetic FLAIR lesions are hyperintense
    text = write_report(store, Path(cfg.paths.report), cfg).read_text()
    assert f"| Intensity | {rows.loc['oracle_global', 'dice']:.3f}" in text
    assert "- Not a reimplementation: a sanity baseline." in text  # its deviations reach the method notes
