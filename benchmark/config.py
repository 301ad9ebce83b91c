"""Hydra/OmegaConf configuration → typed objects used by the runner (parsed once, at run time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from datasets.config import DatasetConfig
from methods.base import TrainBudget, registered_methods


@dataclass(frozen=True)
class MethodSpec:
    """One row of a table: a registered method, its variant, hyper-parameters and training budget."""

    key: str  # the entry's name in the experiment's ``methods`` mapping
    name: str  # registered method name
    variant: str
    params: dict[str, Any]
    budget: TrainBudget

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "variant": self.variant, "params": self.params, "train": vars(self.budget)}


def dataset_config(cfg: DictConfig) -> DatasetConfig:
    """The ``dataset`` group as a :class:`DatasetConfig` (paths resolved against the cwd)."""
    d = cfg.dataset
    if d.root in (None, "???"):
        raise ValueError(f"dataset {d.name!r}: set dataset.root=/path/to/the/download")
    return DatasetConfig(
        layout=d.layout,
        root=Path(d.root),
        modalities=tuple(d.modalities),
        image_size=int(d.image_size),
        slice_range=(int(d.slice_range[0]), int(d.slice_range[1])),
        test_slices=d.test_slices,
        eval_slice_step=int(d.get("eval_slice_step", 1)),
        binarize_brain=bool(d.binarize_brain),
        split_file=Path(d.split_file) if d.get("split_file") else None,
        split_fractions=tuple(float(f) for f in d.split_fractions),  # type: ignore[arg-type]
        split_seed=int(d.split_seed),
        cache_dir=Path(cfg.paths.cache),
        max_subjects=d.get("max_subjects"),
        name=d.name,
    )


def method_specs(cfg: DictConfig) -> list[MethodSpec]:
    """The experiment's methods in config order, filtered by ``only_methods`` when it is set."""
    methods = cfg.get("methods") or {}
    only = cfg.experiment.get("only_methods")
    unknown = set(only or ()) - set(methods)
    if unknown:
        raise KeyError(f"only_methods names {sorted(unknown)}, not in this experiment's methods {list(methods)}")
    specs = []
    for key, m in methods.items():
        if only and key not in only:
            continue
        if m.name not in registered_methods():
            known = ", ".join(sorted(registered_methods()))
            raise KeyError(f"methods.{key}: unknown method {m.name!r}; registered methods: {known}")
        train = OmegaConf.to_container(m.train, resolve=True)
        specs.append(
            MethodSpec(
                key=str(key),
                name=m.name,
                variant=str(m.get("variant", "default")),
                params=OmegaConf.to_container(m.params, resolve=True) if m.get("params") is not None else {},  # type: ignore[arg-type]
                budget=TrainBudget(**train),  # type: ignore[arg-type]
            )
        )
    return specs
