"""One way for end-to-end tests to compose ``configs/config.yaml`` on the session's tiny synthetic set."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from tests.conftest import TINY_SYNTHETIC_SUBJECTS

CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "configs")
METHOD_CONFIG_DIR = Path(CONFIG_DIR) / "method"


def compose_tiny(out: Path, data_dir: Path, *overrides: str) -> DictConfig:
    """The config with outputs in ``out``, data and slice cache in the session-wide ``data_dir`` (generated
    once), 6 synthetic subjects at 32 px, no progress bars and 50 bootstrap resamples (CI widths are not under
    test there; 1000 resamples cost about a second a cell); ``overrides`` come last and win."""
    base = [
        f"paths.output={out}",
        f"paths.data={data_dir}",
        f"paths.cache={data_dir / 'slice_cache'}",
        "bootstrap_samples=50",
        f"dataset.synthetic.n_subjects={TINY_SYNTHETIC_SUBJECTS}",
        "dataset.image_size=32",
        "dataset.split_fractions=[0.5,0.17,0.33]",
        "progress=false",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[*base, *overrides])


def method_config(name: str) -> dict:
    """``configs/method/<name>.yaml`` composed by Hydra (its ``defaults`` list applied, e.g. ``dae_pos`` inheriting
    ``dae.yaml``): what an experiment's ``/method@methods.<key>: <name>`` puts under ``methods.<key>``."""
    if not (METHOD_CONFIG_DIR / f"{name}.yaml").is_file():
        raise FileNotFoundError(f"no method config {METHOD_CONFIG_DIR / name}.yaml")
    with initialize_config_dir(config_dir=str(METHOD_CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name=name)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container
