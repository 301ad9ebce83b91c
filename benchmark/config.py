"""Hydra/OmegaConf configuration → typed objects used by the runner (parsed once, at run time).

The experiment's ``methods`` mapping becomes one :class:`MethodSpec` per table row; an ``experiment.sweep``
expands one of them into a spec per value, with generated keys and labels. :func:`validate_config` checks
everything a run needs from the config before any data are generated or loaded, so a nonsense
configuration fails in a second with one line naming the key, not after minutes of work.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import DictConfig, OmegaConf

import benchmark.hydra_resolvers  # noqa: F401  (the configs' resolvers, for every reader of a composed config)
from benchmark.cell_workers import check_workers_setting
from benchmark.compute import COMPUTE_KEYS, PRECISIONS, ComputeOptions
from benchmark.schema import config_column
from benchmark.thresholds import PROTOCOLS
from benchmark.train_logger import LOGGER_SINKS, tensorboard_available
from datasets.config import DatasetConfig
from datasets.synthetic import SyntheticConfig, healthy_subject_ids
from methods.base import TrainBudget, UnknownParameterError, check_params, method_class, registered_methods

log = logging.getLogger(__name__)

EXPERIMENT_KINDS = ("comparison", "timing")


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and what was expected."""


#: Top-level keys of a method config (``configs/method/*.yaml``, one file per method configuration, after Hydra
#: merged its ``defaults``: a file may inherit another with ``defaults: [<base>, _self_]``).
#: ``smoke_params`` is read by the tests only (cheaper settings of the same code path).
METHOD_CONFIG_KEYS = ("name", "label", "params", "train", "smoke_params")


@dataclass(frozen=True)
class MethodSpec:
    """One row of a table: a registered method, its hyper-parameters, training budget and row label.

    Behaviour is in ``params`` only (e.g. DAE ``noise_sign``); ``label`` is the row label (the config's
    ``label`` field, or generated per value by a sweep). It is display only and not part of the
    configuration's identity (:meth:`as_dict`).
    """

    key: str  # the entry's name in the experiment's ``methods`` mapping (or a generated sweep key)
    name: str  # registered method name
    params: dict[str, Any]
    budget: TrainBudget
    label: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The configuration's identity (hashed into the cell key): name, params and train budget."""
        return {"name": self.name, "params": self.params, "train": vars(self.budget)}

    @property
    def row_label(self) -> str:
        """The label of this configuration's rows in tables: ``label``, else the method class's label."""
        return self.label or method_class(self.name).row_label()


@dataclass(frozen=True)
class Sweep:
    """``experiment.sweep``: one method entry run at several values of one config path."""

    method: str  # key in the experiment's ``methods``
    parameter: str  # ``params.<name>[.<name>...]`` or ``train.<field>``
    values: tuple[Any, ...]
    label: str
    reference: Any = None  # the value whose cell is the reference of paired tests (None: none)

    @property
    def column(self) -> str:
        """The flattened row column holding the swept value (``param.tau_percentile``)."""
        return config_column(self.parameter)

    def key(self, value: Any) -> str:
        return f"{self.method}[{self.parameter}={value}]"


def dataset_config(cfg: DictConfig) -> DatasetConfig:
    """The ``dataset`` group as a :class:`DatasetConfig` (paths resolved against the cwd)."""
    d = cfg.dataset
    if d.root in (None, "???"):
        raise ConfigError(f"dataset {d.name!r}: set dataset.root=/path/to/the/download")
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
        test_only_subjects=tuple(str(s) for s in d.get("test_only_subjects") or ()) + _synthetic_healthy_ids(cfg),
        orientation=d.get("orientation", "reorient"),
        label_map=_label_map(d.get("label_map")),
        load_workers=d.get("load_workers"),
        load_pool=d.get("load_pool", "thread"),
        name=d.name,
    )


def synthetic_config(cfg: DictConfig) -> SyntheticConfig | None:
    """The built-in generator's config when the dataset is synthetic (``dataset.synthetic``), else None."""
    options = cfg.dataset.get("synthetic")
    if not options:
        return None
    d = cfg.dataset
    kwargs = OmegaConf.to_container(options, resolve=True)
    return SyntheticConfig(layout=d.layout, slice_range=tuple(d.slice_range), **kwargs)  # type: ignore[arg-type]


def _synthetic_healthy_ids(cfg: DictConfig) -> tuple[str, ...]:
    """The synthetic set's lesion-free subjects, which go to test (none for real data)."""
    synthetic = synthetic_config(cfg)
    return () if synthetic is None else tuple(healthy_subject_ids(synthetic))


def _label_map(raw: Any) -> tuple[tuple[Any, Any], ...] | None:
    """``dataset.label_map`` as the pairs :class:`DatasetConfig` holds (the loader checks their values)."""
    if not raw:
        return None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"dataset.label_map={raw!r}; expected a mapping {{raw label value: new value}}, e.g. {{4:1}}")
    return tuple((key, raw[key]) for key in raw)


def experiment_sweep(cfg: DictConfig) -> Sweep | None:
    """The experiment's sweep, checked, or None."""
    raw = cfg.experiment.get("sweep")
    if not raw:
        return None
    sweep = OmegaConf.to_container(raw, resolve=True)
    assert isinstance(sweep, dict)
    missing = [k for k in ("method", "parameter", "values") if sweep.get(k) in (None, [], "")]
    if missing:
        raise ConfigError(
            f"experiment.sweep: missing {', '.join(missing)}; expected "
            "{method: <method key>, parameter: params.<name> | train.<field>, values: [...], label: ...}"
        )
    unknown = set(sweep) - {f.name for f in dataclasses.fields(Sweep)}
    if unknown:
        raise ConfigError(
            f"experiment.sweep: unknown key(s) {sorted(unknown)}; expected method, parameter, values, label, reference"
        )
    values = tuple(sweep["values"])
    if len(set(map(str, values))) != len(values):
        raise ConfigError(f"experiment.sweep.values: {list(values)} repeats a value; expected distinct values")
    try:
        config_column(sweep["parameter"])
    except KeyError as error:
        raise ConfigError(f"experiment.sweep.parameter: {error.args[0]}") from None
    if sweep.get("reference") is not None and sweep["reference"] not in values:
        raise ConfigError(f"experiment.sweep.reference={sweep['reference']!r} is not one of the values {list(values)}")
    return Sweep(
        sweep["method"],
        sweep["parameter"],
        values,
        str(sweep.get("label") or sweep["parameter"]),
        sweep.get("reference"),
    )


def method_specs(cfg: DictConfig) -> list[MethodSpec]:
    """The experiment's methods in config order (a swept entry replaced by one spec per value), filtered by
    ``only_methods`` when it is set. Raises :class:`ConfigError` naming the first bad entry."""
    methods = cfg.get("methods") or {}
    sweep = experiment_sweep(cfg)
    if sweep is not None and sweep.method not in methods:
        raise ConfigError(
            f"experiment.sweep.method={sweep.method!r} is not in this experiment's methods {list(methods)}"
        )
    specs: list[MethodSpec] = []
    for key, entry in methods.items():
        spec = _spec(str(key), entry)
        specs += _expand(spec, sweep) if sweep is not None and key == sweep.method else [spec]
    _check_distinct(specs)
    only = cfg.experiment.get("only_methods")
    if only:
        keys = [s.key for s in specs] + list(methods)
        unknown = sorted(set(only) - set(keys))
        if unknown:
            raise ConfigError(
                f"experiment.only_methods names {unknown}, not in this experiment's methods {list(methods)}"
            )
        specs = [s for s in specs if s.key in only or s.key.partition("[")[0] in only]
    return specs


def _check_distinct(specs: list[MethodSpec]) -> None:
    """Two entries with the same configuration (name, params, train) would be one cell in the results store:
    the label alone does not tell runs apart."""
    seen: dict[str, str] = {}
    for spec in specs:
        identity = json.dumps(spec.as_dict(), sort_keys=True, default=str)
        if identity in seen:
            raise ConfigError(
                f"methods.{spec.key} has the same name, params and train as methods.{seen[identity]}; "
                "expected distinct configurations (a different label alone is not a different run)"
            )
        seen[identity] = spec.key


def _spec(key: str, entry: DictConfig) -> MethodSpec:
    where = f"methods.{key}"
    unknown_keys = sorted(set(map(str, entry)) - set(METHOD_CONFIG_KEYS))
    if unknown_keys:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown_keys)}; accepted: {', '.join(METHOD_CONFIG_KEYS)}"
            " (behaviour goes in params, the row label in label)"
        )
    name = entry.get("name")
    if name not in registered_methods():
        known = ", ".join(sorted(registered_methods()))
        raise ConfigError(f"{where}.name: unknown method {name!r}; registered methods: {known}")
    # config keys are strings
    params = cast(
        dict[str, Any], OmegaConf.to_container(entry.params, resolve=True) if entry.get("params") is not None else {}
    )
    assert isinstance(params, dict)
    try:
        check_params(name, params)
    except UnknownParameterError as error:
        raise ConfigError(
            f"{where}.params: unknown parameter(s) {', '.join(error.unknown)} of method {name!r}; "
            f"accepted: {', '.join(error.accepted)}"
        ) from None
    train = cast(
        dict[str, Any], OmegaConf.to_container(entry.train, resolve=True) if entry.get("train") is not None else {}
    )
    assert isinstance(train, dict)
    label = entry.get("label")
    return MethodSpec(key, name, params, _budget(where, name, train), str(label) if label else None)


def _budget(where: str, name: str, train: dict[str, Any]) -> TrainBudget:
    """The ``train`` block as a :class:`TrainBudget`, checked (steps >= 1 unless the method trains nothing)."""
    fields = {f.name for f in dataclasses.fields(TrainBudget)}
    unknown = sorted(set(train) - fields)
    if unknown:
        raise ConfigError(f"{where}.train: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(fields))}")
    trains = method_class(name).trains
    if trains and "steps" not in train:
        raise ConfigError(f"{where}.train.steps is missing; method {name!r} trains and needs a step budget >= 1")
    budget = TrainBudget(**({"steps": 0, "batch_size": 1, "lr": 0.0} | train))
    minimum = 1 if trains else 0
    checks = [
        ("steps", isinstance(budget.steps, int) and budget.steps >= minimum, f"an integer >= {minimum}"),
        ("batch_size", isinstance(budget.batch_size, int) and budget.batch_size >= 1, "an integer >= 1"),
        ("lr", not trains or (isinstance(budget.lr, int | float) and budget.lr > 0), "a number > 0"),
        ("val_every", isinstance(budget.val_every, int) and budget.val_every >= 1, "an integer >= 1"),
    ]
    for field_name, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{where}.train.{field_name}={getattr(budget, field_name)!r}; expected {expected}")
    return budget


def _expand(spec: MethodSpec, sweep: Sweep) -> list[MethodSpec]:
    """One spec per swept value, with the value set at the parameter path, a generated key and label."""
    section, _, path = sweep.parameter.partition(".")
    expanded = []
    for value in sweep.values:
        where = f"experiment.sweep ({sweep.key(value)})"
        if section == "params":
            params = copy.deepcopy(spec.params)
            _set_path(params, path.split("."), value)
            try:
                check_params(spec.name, params)
            except UnknownParameterError as error:
                raise ConfigError(
                    f"{where}: method {spec.name!r} has no parameter {error.unknown[0]!r}; "
                    f"accepted: {', '.join(error.accepted)}"
                ) from None
            budget = spec.budget
        else:
            params = spec.params
            budget = _budget(where, spec.name, vars(spec.budget) | {path: value})
        label = f"{spec.row_label} ({sweep.column}={value})"
        expanded.append(dataclasses.replace(spec, key=sweep.key(value), params=params, budget=budget, label=label))
    return expanded


def _set_path(mapping: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        mapping = mapping.setdefault(part, {})
    mapping[path[-1]] = value


def resolve_device(requested: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when torch sees one); CUDA without one is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device={requested!r}; expected cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={requested}: torch {torch.__version__} sees no CUDA device (CPU build or no GPU); "
            "use device=cpu or device=auto, or install a CUDA build of torch (README)"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={requested!r}; expected cpu, cuda, cuda:N or auto")
    return device


def validate_config(cfg: DictConfig) -> list[MethodSpec]:
    """Check the run config before any work; returns the method specs. Raises :class:`ConfigError`."""
    seeds = cfg.get("seeds")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(
            f"seeds={OmegaConf.to_container(seeds) if seeds is not None else None!r}; "
            "expected a non-empty list of integers, e.g. seeds=[0]"
        )
    for key in ("eval_batch_size",):
        value = cfg.get(key)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}={value!r}; expected an integer >= 1")
    samples = cfg.get("bootstrap_samples")
    if not isinstance(samples, int) or samples < 0:
        raise ConfigError(f"bootstrap_samples={samples!r}; expected an integer >= 0")
    resolve_device(str(cfg.device))
    workers_problem = check_workers_setting(cfg.get("workers", "auto"))
    if workers_problem:
        raise ConfigError(workers_problem)
    if cfg.get("results_lock") not in ("hard", "soft"):
        raise ConfigError(f"results_lock={cfg.get('results_lock')!r}; expected hard or soft")
    if not isinstance(cfg.get("deterministic"), bool):
        raise ConfigError(f"deterministic={cfg.get('deterministic')!r}; expected true or false")
    _check_logger(cfg)
    compute_options(cfg)
    kind = cfg.experiment.get("kind", "comparison")
    if kind not in EXPERIMENT_KINDS:
        raise ConfigError(f"experiment.kind={kind!r}; expected one of {', '.join(EXPERIMENT_KINDS)}")
    _check_modalities(cfg)
    _check_volume(cfg)
    if kind == "comparison":
        _check_protocols(cfg)
    specs = method_specs(cfg)
    if not specs:
        raise ConfigError("the experiment lists no method; expected at least one entry under methods")
    return specs


def compute_options(cfg: DictConfig) -> ComputeOptions:
    """The ``compute`` group, checked (absent: fp32, no channels_last, no compile)."""
    group = cfg.get("compute")
    if group is None:
        return ComputeOptions()
    if not isinstance(group, DictConfig):
        raise ConfigError(f"compute={group!r}; expected a mapping with keys {', '.join(COMPUTE_KEYS)}")
    unknown = sorted(set(map(str, group)) - set(COMPUTE_KEYS))
    if unknown:
        raise ConfigError(f"compute: unknown key(s) {unknown}; expected {', '.join(COMPUTE_KEYS)}")
    options = ComputeOptions(**{str(k): v for k, v in group.items()})
    if options.precision not in PRECISIONS:
        raise ConfigError(f"compute.precision={options.precision!r}; expected one of {', '.join(PRECISIONS)}")
    for key in ("channels_last", "compile"):
        if not isinstance(getattr(options, key), bool):
            raise ConfigError(f"compute.{key}={getattr(options, key)!r}; expected true or false")
    return options


VOLUME_KEYS = ("enabled", "min_component_voxels", "detection_overlap", "slice_score_percentile")


def _check_volume(cfg: DictConfig) -> None:
    """``volume.*``: the whole-volume evaluation's settings (absent: defaults)."""
    volume = cfg.get("volume")
    if volume is None:
        return
    unknown = sorted(set(volume) - set(VOLUME_KEYS))
    if unknown:
        raise ConfigError(f"volume: unknown key(s) {unknown}; expected {', '.join(VOLUME_KEYS)}")
    size = volume.get("min_component_voxels", 1)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError(f"volume.min_component_voxels={size!r}; expected an integer >= 1")
    overlap = volume.get("detection_overlap", 0.1)
    if not isinstance(overlap, (int, float)) or not 0 < overlap <= 1:
        raise ConfigError(f"volume.detection_overlap={overlap!r}; expected a share in (0, 1]")
    q = volume.get("slice_score_percentile", 99)
    if not isinstance(q, (int, float)) or not 0 <= q <= 100:
        raise ConfigError(f"volume.slice_score_percentile={q!r}; expected a percentile in [0, 100]")


def _check_logger(cfg: DictConfig) -> None:
    """``logger``: one of :data:`LOGGER_SINKS`; TensorBoard only when its (optional) package is installed."""
    logger = cfg.get("logger")
    if logger not in LOGGER_SINKS:
        raise ConfigError(f"logger={logger!r}; expected one of {', '.join(LOGGER_SINKS)}")
    if "tensorboard" in LOGGER_SINKS[logger] and not tensorboard_available():
        raise ConfigError(
            f"logger={logger}: the tensorboard package is not installed; pip install tensorboard, or use logger=csv"
        )


def _check_modalities(cfg: DictConfig) -> None:
    """``experiment.modalities``: non-empty and all in the dataset. The experiments' default (an interpolation:
    those of ``experiment.preferred_modalities`` that the dataset has) logs the ones it dropped; a user's explicit
    choice is checked as given."""
    modalities = list(cfg.experiment.get("modalities") or [])
    available = list(cfg.dataset.modalities)
    name = cfg.dataset.name
    default = OmegaConf.is_interpolation(cfg.experiment, "modalities")
    preferred = list(cfg.experiment.get("preferred_modalities") or [])
    if not modalities:
        what = (
            f"none of experiment.preferred_modalities={preferred} is" if default else "experiment.modalities is empty"
        )
        raise ConfigError(
            f"{what} in dataset {name!r} (dataset.modalities={available}); "
            f"expected some of them, e.g. experiment.modalities=[{available[0]}]"
        )
    missing = [m for m in modalities if m not in available]
    if missing:
        raise ConfigError(
            f"experiment.modalities={modalities}: {missing} not in dataset {name!r} "
            f"(dataset.modalities={available}); expected a subset, e.g. experiment.modalities=[{available[0]}]"
        )
    dropped = [m for m in preferred if m not in available] if default else []
    if dropped:
        log.info("experiment.modalities=%s of preferred_modalities=%s: dataset %r has no %s", modalities, preferred,
                 name, dropped)  # fmt: skip


def _check_protocols(cfg: DictConfig) -> None:
    protocols = list(cfg.experiment.get("protocols") or [])
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if not protocols or unknown:
        raise ConfigError(
            f"experiment.protocols={protocols}: unknown {unknown}; expected some of {', '.join(PROTOCOLS)}"
            if unknown
            else f"experiment.protocols is empty; expected some of {', '.join(PROTOCOLS)}"
        )
    table_protocol = cfg.experiment.get("table_protocol")
    if table_protocol not in protocols:
        raise ConfigError(
            f"experiment.table_protocol={table_protocol!r}; expected one of experiment.protocols {protocols}"
        )
