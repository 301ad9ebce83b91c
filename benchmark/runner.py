"""Run an experiment: every (modality, method, seed) cell, resumable, then the report.

A cell trains (or reloads) a method on healthy slices, calibrates it on healthy validation slices,
predicts the test (and validation) split and evaluates every configured threshold protocol through
the one :func:`benchmark.evaluate.evaluate` path. Generic method hooks add to a cell without the runner
knowing the method: ``inference_stats`` (cost fields), ``human_ai_segmentation`` (an extra oracle row,
protocol ``human_ai``) and ``diagnostic_figures`` (files under ``<paths.report>/figures/<cell>/``).
Finished cells are skipped on rerun.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from benchmark.checkpoints import CheckpointStore
from benchmark.config import MethodSpec, dataset_config, method_specs
from benchmark.evaluate import (
    ProtocolResult, evaluate, evaluate_segmentation, needs_labelled_validation, needs_validation_maps
)
from benchmark.predict import Predictions, predict_split
from benchmark.provenance import device_name, environment, git_commit, seed_everything, stable_hash
from benchmark.store import ResultsStore
from datasets.loader import load_splits
from datasets.slices import SliceSet, Splits
from datasets.synthetic import SyntheticConfig, ensure_synthetic_dataset
from methods import MethodContext, create_method, registered_methods
from methods.base import AnomalyMethod, MethodUnavailable, TrainLog

log = logging.getLogger("benchmark")

HUMAN_AI_PROTOCOL = "human_ai"  # rows of a method's own label-chosen segmentation (always an oracle)
DIAGNOSTIC_SLICES = 4  # lesion-bearing test slices shown in a method's diagnostic figures (cfg.diagnostic_slices)


@dataclass(frozen=True)
class Cell:
    """One independent unit of work and its identity in the results store."""

    dataset: str
    preprocess_hash: str
    modality: str
    spec: MethodSpec
    seed: int

    @property
    def config_hash(self) -> str:
        return stable_hash({"pre": self.preprocess_hash, "method": self.spec.as_dict()})

    @property
    def key(self) -> str:
        variant = "".join(c if c.isalnum() else "_" for c in self.spec.variant)
        return f"{self.dataset}__{self.modality}__{self.spec.name}__{variant}__s{self.seed}__{self.config_hash}"


def resolve_device(requested: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``; asking for CUDA without one is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda requested but torch sees no CUDA device (CPU build or no GPU)")
    return device


def prepare_data(cfg: DictConfig) -> Splits:
    """Generate the built-in synthetic set when configured, then load (cached) splits."""
    data = dataset_config(cfg)
    synthetic = cfg.dataset.get("synthetic")
    if synthetic:
        options = OmegaConf.to_container(synthetic, resolve=True)
        ensure_synthetic_dataset(
            data.root,
            SyntheticConfig(layout=data.layout, slice_range=data.slice_range, **options),  # type: ignore[arg-type]
            progress=cfg.progress,
        )
    return load_splits(data, progress=cfg.progress)


@dataclass(frozen=True)
class RunSetup:
    """What every command that runs cells opens first (experiment runner, timing harness)."""

    device: torch.device
    splits: Splits
    store: ResultsStore
    checkpoints: CheckpointStore


def open_run(cfg: DictConfig) -> RunSetup:
    """Resolve the device, prepare the data, open the results and checkpoint stores, record the job."""
    device = resolve_device(cfg.device)
    splits = prepare_data(cfg)
    store = ResultsStore(cfg.paths.results)
    record_run(store, cfg)
    return RunSetup(device, splits, store, CheckpointStore(cfg.paths.checkpoints))


def run_experiment(cfg: DictConfig) -> ResultsStore:
    """Run every missing cell of the experiment; returns the results store."""
    setup = open_run(cfg)
    device, splits, store, checkpoints = setup.device, setup.splits, setup.store, setup.checkpoints
    specs = method_specs(cfg)
    log.info(
        "data %s: %d train / %d val (healthy) / %d test slices at %s px",
        splits.name, len(splits.train), len(splits.val), len(splits.test), splits.test.image_size,
    )
    for modality in cfg.experiment.modalities:
        if modality not in splits.test.modalities:
            raise KeyError(f"experiment modality {modality!r} not loaded (dataset.modalities={splits.test.modalities})")
        _store_test_set(store, splits, modality)
        for spec in specs:
            for seed in cfg.seeds:
                cell = Cell(splits.name, splits.preprocess_hash, modality, spec, int(seed))
                if store.has(cell.key):
                    log.info("skip %s (finished earlier)", cell.key)
                    continue
                run_cell(cell, splits, store, checkpoints, cfg, device)
    return store


def run_cell(
    cell: Cell, splits: Splits, store: ResultsStore, checkpoints: CheckpointStore, cfg: DictConfig, device: torch.device
) -> None:
    """Train or reload, calibrate, predict, evaluate and store one cell."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    seed_everything(cell.seed)
    context = MethodContext(
        modality=cell.modality,
        image_size=splits.test.image_size[0],
        device=device,
        seed=cell.seed,
        available_modalities=splits.test.modalities,
        progress=bool(cfg.progress),
    )
    base_row: dict[str, Any] = {
        "experiment": cfg.experiment.name,
        "dataset": cell.dataset,
        "preprocess_hash": cell.preprocess_hash,
        "modality": cell.modality,
        "method": cell.spec.name,
        "variant": cell.spec.variant,
        "method_key": cell.spec.key,
        "seed": cell.seed,
        "cell": cell.key,
        "config_hash": cell.config_hash,
        "config": OmegaConf.to_yaml(OmegaConf.create(cell.spec.as_dict())),
        "commit": git_commit(),
        "device": device_name(device),
        "torch": torch.__version__,
        "image_size": splits.test.image_size[0],
        "n_train_slices": len(splits.train),
        "n_val_slices": len(splits.val),
        "n_test_slices": len(splits.test),
        "n_test_subjects": len(set(splits.test.subjects)),
        "started": started,
    }
    method_class = registered_methods()[cell.spec.name]  # names are validated by method_specs
    base_row["method_label"] = method_class.row_label(cell.spec.variant)
    base_row["deviations"] = list(method_class.deviations)
    try:
        method = create_method(cell.spec.name, context, variant=cell.spec.variant, **cell.spec.params)
        train_log, reused = train_or_load(method, cell, splits, checkpoints, cfg)
    except MethodUnavailable as why:
        log.warning("%s: not applicable (%s)", cell.key, why)
        row = base_row | {"status": "unavailable", "reason": str(why), "protocol": None}
        store.write(cell.key, [row | {"finished": _now()}])
        return
    batch = int(cfg.eval_batch_size)
    method.reset_inference_stats()
    test_pred = predict_split(method, splits.test, batch, cfg.progress, f"{method.display_name} {cell.modality} test")
    inference_stats = method.inference_stats()  # of the test split only
    val_pred = None
    if needs_validation_maps(cfg.experiment.protocols):
        val_pred = predict_split(method, splits.val, batch, cfg.progress, f"{method.display_name} {cell.modality} val")
    labelled_val_pred = None  # None without a val_labelled set: evaluate() then says why val_labelled cannot run
    if needs_labelled_validation(cfg.experiment.protocols) and splits.val_labelled is not None:
        labelled_val_pred = predict_split(
            method, splits.val_labelled, batch, cfg.progress, f"{method.display_name} {cell.modality} val_labelled"
        )
    n_boot = int(cfg.bootstrap_samples)
    protocols = list(cfg.experiment.protocols)
    results = evaluate(
        test_pred, splits.test, cell.modality, protocols, val_pred, splits.val, seed=cell.seed, n_boot=n_boot,
        labelled_val_pred=labelled_val_pred, labelled_val=splits.val_labelled,
    )
    human_ai = _human_ai_result(method, splits.test, test_pred, cell, n_boot)
    if human_ai is not None:
        results.append(human_ai)
    figures = _diagnostic_figures(method, splits.test, cell, cfg)
    cost = inference_stats | {
        "status": "ok",
        "params": method.parameter_count(),
        "train_steps": train_log.steps,
        "train_seconds": train_log.seconds,
        "best_val_loss": train_log.best_val_loss,
        "checkpoint_reused": reused,
        "nfe_per_slice": float(test_pred.nfe.double().mean()),
        "ms_per_slice": test_pred.ms_per_slice,
        "figures": figures,
        "finished": _now(),
    }
    rows = [base_row | cost | r.row for r in results]
    arrays = {
        "anomaly_maps": test_pred.anomaly_maps.numpy().astype(np.float16),
        "nfe": test_pred.nfe.numpy(),
    }
    if test_pred.reconstructions is not None:
        arrays["reconstructions"] = test_pred.reconstructions.numpy().astype(np.float16)
    if test_pred.final_masks is not None:
        arrays["final_masks"] = test_pred.final_masks.numpy().astype(bool)
    for r in results:
        arrays[f"segmentation__{r.protocol}"] = r.segmentation.numpy()
        arrays.update({f"{name}__{r.protocol}": values for name, values in r.per_image.items()})
    store.write(cell.key, rows, arrays)
    headline = next((r for r in rows if r["protocol"] == cfg.experiment.table_protocol), rows[0])
    log.info(
        "done %-10s %-5s %-22s seed %d | DSC %.3f (%s)  AUROC %.3f | train %.0f s%s, %.1f ms/slice, NFE %.0f",
        cell.dataset, cell.modality, method.display_name, cell.seed, headline["dice"], headline["protocol"],
        headline["auroc"], train_log.seconds, " (reused)" if reused else "", test_pred.ms_per_slice,
        cost["nfe_per_slice"],
    )


def _human_ai_result(
    method: AnomalyMethod, test: SliceSet, test_pred: Predictions, cell: Cell, n_boot: int
) -> ProtocolResult | None:
    """The method's own label-chosen (ORACLE) segmentation, evaluated like every protocol, or None."""
    start = time.perf_counter()
    segmentation = method.human_ai_segmentation(test)
    if segmentation is None:
        return None
    seconds = time.perf_counter() - start
    result = evaluate_segmentation(
        HUMAN_AI_PROTOCOL, segmentation, test_pred, test, cell.modality, is_oracle=True, seed=cell.seed, n_boot=n_boot
    )
    result.row["search_seconds"] = seconds
    return result


def _diagnostic_figures(method: AnomalyMethod, test: SliceSet, cell: Cell, cfg: DictConfig) -> list[str]:
    """The method's figures of the first few lesion-bearing test slices, as paths relative to the report."""
    count = int(cfg.get("diagnostic_slices", DIAGNOSTIC_SLICES))
    lesions = torch.nonzero(test.labels.flatten(1).any(1)).flatten()[:count].tolist()
    if not lesions:
        return []
    report = Path(cfg.paths.report)
    paths = method.diagnostic_figures(test.subset(lesions), report / "figures" / cell.key)
    return [p.relative_to(report).as_posix() for p in paths]


def train_or_load(
    method: AnomalyMethod, cell: Cell, splits: Splits, checkpoints: CheckpointStore, cfg: DictConfig
) -> tuple[TrainLog, bool]:
    """Reload the trained state when a checkpoint of the same training identity exists (unless
    ``retrain``), else fit and save; then calibrate on healthy validation slices (always, so that
    methods sharing a trained network keep their own calibration)."""
    identity = method.training_identity() or {"method": cell.spec.as_dict()}
    training_hash = stable_hash({"pre": cell.preprocess_hash, "identity": identity, "budget": vars(cell.spec.budget)})
    path = checkpoints.path(cell.dataset, cell.modality, cell.seed, training_hash)
    if path.exists() and not cfg.retrain:
        state, train_log = checkpoints.load(path, method.device)
        method.load_state_dict(state)
        reused = True
    else:
        start = time.perf_counter()
        train_log = method.fit(splits.train, splits.val, cell.spec.budget)
        train_log.seconds = time.perf_counter() - start
        checkpoints.save(path, method.state_dict(), train_log)
        reused = False
    method.calibrate(splits.val)
    return train_log, reused


def record_run(store: ResultsStore, cfg: DictConfig) -> None:
    """Save the resolved config and the environment beside the rows (the report reads them): one record
    per job under ``jobs/`` plus the latest-run copies, all written atomically (safe under multirun)."""
    job = store.record_job(OmegaConf.to_yaml(cfg, resolve=True), environment())
    log.info("job record: %s", job)


def _store_test_set(store: ResultsStore, splits: Splits, modality: str) -> None:
    """Inputs, labels and brain masks of the test split, once per (dataset, modality), for figures."""
    name = f"testset__{splits.name}__{modality}__{splits.preprocess_hash}"
    if store.has_arrays(name):
        return
    store.write_arrays(
        name,
        {
            "images": splits.test.channel(modality).numpy().astype(np.float16),
            "labels": splits.test.labels.numpy(),
            "brain": splits.test.brain.numpy().astype(np.float16),
            "subjects": np.array(splits.test.subjects),
            "slice_index": np.array(splits.test.slice_index),
        },
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


