"""One way for end-to-end tests to compose ``configs/config.yaml`` on the session's tiny synthetic set."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from tests.conftest import TINY_SYNTHETIC_SUBJECTS

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = str(REPO / "configs")
METHOD_CONFIG_DIR = Path(CONFIG_DIR) / "method"


def tiny_overrides(out: Path, data_dir: Path) -> list[str]:
    """Outputs in ``out``, data and slice cache in the session-wide ``data_dir`` (generated once), 6 synthetic
    lesion subjects and 1 healthy one at 32 px, no progress bars, cells in the test's own process (``workers=1``)
    and 50 bootstrap resamples (CI widths are not under test there; 1000 resamples cost about a second a cell):
    as command-line overrides, so that a ``python -m benchmark`` subprocess reads the same data and cache as
    :func:`compose_tiny`."""
    return [
        f"paths.output={out}",
        f"paths.data={data_dir}",
        f"paths.cache={data_dir / 'slice_cache'}",
        "bootstrap_samples=50",
        f"dataset.synthetic.n_subjects={TINY_SYNTHETIC_SUBJECTS}",
        "dataset.synthetic.n_healthy_subjects=1",
        "dataset.image_size=32",
        "dataset.split_fractions=[0.5,0.17,0.33]",
        "progress=false",
        "workers=1",
    ]


def compose_tiny(out: Path, data_dir: Path, *overrides: str) -> DictConfig:
    """The config of :func:`tiny_overrides`; ``overrides`` come last and win."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[*tiny_overrides(out, data_dir), *overrides])


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


TINY_UNET = "{base_channels: 8, channel_mult: [1, 2], num_res_blocks: 1, attention_downsample: []}"
TINY_ORACLE = "{start_fractions: [0.6], max_iterations: 2}"
#: Tiny budgets per method config (a few steps; cheap settings of the same code paths).
TINY_METHODS: dict[str, tuple[str, ...]] = {
    "ae": (
        "params.erosion=1",
        "params.median=3",
        "params.widths=[8,16,16,16]",
        "params.latent_dim=16",
        "train.batch_size=4",
    ),
    "dae_pos": ("params.widths=[8,16,32]", "train.batch_size=4"),
    "cyclic_unet": ("train.batch_size=4",),
    "itermask2": (f"params.net={TINY_UNET}", "params.max_iterations=4", "train.batch_size=4", "params.oracle=false"),
    "itermask2_freq": (
        f"params.net={TINY_UNET}",
        "params.max_iterations=4",
        "train.batch_size=4",
        "params.oracle=false",
    ),
    "itermask2_spat": (f"params.net={TINY_UNET}", "train.batch_size=4"),
}
#: The AE of the default experiment in seconds: FLAIR only, two protocols, a tiny network.
TINY_AE = (
    "experiment.only_methods=[ae]",
    "experiment.modalities=[flair]",
    "experiment.protocols=[oracle_global,val_fpr]",
    "methods.ae.train.batch_size=8",
    "methods.ae.train.val_every=2",
    *(f"methods.ae.{o}" for o in TINY_METHODS["ae"]),
)


def tiny_ae(out: Path, data_dir: Path, *extra: str) -> DictConfig:
    """:func:`compose_tiny` with :data:`TINY_AE` (``extra`` last: e.g. the AE's training steps)."""
    return compose_tiny(out, data_dir, *TINY_AE, *extra)


def with_smoke_params(cfg: DictConfig, batch_size: int) -> DictConfig:
    """Every method entry of ``cfg`` with its config's ``smoke_params`` merged into its params and a training
    batch of ``batch_size``: tiny settings derived from the method configs, not listed per method here."""
    with open_dict(cfg):
        for entry in cfg.methods.values():
            entry.params = OmegaConf.merge(entry.get("params") or {}, entry.get("smoke_params") or {})
            if entry.get("train") is not None:
                entry.train.batch_size = batch_size
    return cfg
