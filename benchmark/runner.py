"""Run an experiment: every (modality, method, seed) cell, resumable, then the report.

A cell trains (or reloads) a method on healthy slices, calibrates it on healthy validation slices,
predicts the test (and validation) split and evaluates every configured threshold protocol through
the one :func:`benchmark.evaluate.evaluate` path. Generic method hooks add to a cell without the runner
knowing the method: ``inference_stats`` (cost fields), ``human_ai_segmentation`` (an extra oracle row,
protocol ``human_ai``) and ``diagnostic_figures`` (files under ``<paths.results>/figures/<cell>/``, which the
report copies).
Finished cells are skipped on rerun (``retrain=true`` runs them again). A cell's identity includes the data's
content hash, so data changed in place make new cells and new training, never a stale row; it holds no path,
so the same data at another path (another machine, a cluster node's scratch copy) resumes the same cells.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from benchmark.cell_workers import CellRunner, group_by_checkpoint, run_in_workers, worker_plan
from benchmark.checkpoints import CheckpointStore
from benchmark.compute import DEFAULT_PRECISION, ComputeOptions, apply_compute, autocast, precision_identity
from benchmark.config import (
    MethodSpec,
    compute_options,
    dataset_config,
    resolve_device,
    synthetic_config,
    validate_config,
)
from benchmark.evaluate import (
    ProtocolResult,
    degenerate_warnings,
    evaluate,
    evaluate_segmentation,
    needs_labelled_validation,
    needs_validation_maps,
)
from benchmark.evaluate_volume import SlabResult, VolumeOptions, evaluate_slab
from benchmark.predict import Predictions, assemble_predictions, predict_split
from benchmark.provenance import device_name, environment, git_commit, seed_everything, set_deterministic, stable_hash
from benchmark.schema import (
    SLAB_MAPS_ARRAY,
    cell_key,
    flatten_config,
    per_image_records,
    per_subject_records,
    segmentation_array,
    slab_segmentation_array,
    stored_test_slab,
    stored_test_split,
)
from benchmark.stage_times import StageTimes, stage_column
from benchmark.store import ResultsStore
from benchmark.train_logger import LOGGER_SINKS, TrainLogger
from datasets.cache import remove_orphan_temporaries
from datasets.loader import load_splits
from datasets.slices import SliceSet, Splits
from datasets.synthetic import ensure_synthetic_dataset
from datasets.synthetic_statistics import record_statistics
from methods import MethodContext, create_method
from methods.base import AnomalyMethod, MethodUnavailable, TrainLog, TrainRecordSink, method_class

log = logging.getLogger("benchmark")

HUMAN_AI_PROTOCOL = "human_ai"  # rows of a method's own label-chosen segmentation (always an oracle)


@dataclass(frozen=True)
class Cell:
    """One independent unit of work and its identity in the results store: the data (pre-processing config
    and content hash), the modality, the method configuration, the seed and the numeric precision
    (``compute.precision``; fp32 adds nothing to the hash, so fp32 cells keep their keys)."""

    dataset: str
    preprocess_hash: str
    data_hash: str
    modality: str
    spec: MethodSpec
    seed: int
    precision: str = DEFAULT_PRECISION

    @property
    def config_hash(self) -> str:
        identity = {"pre": self.preprocess_hash, "data": self.data_hash, "method": self.spec.as_dict()}
        return stable_hash(identity | precision_identity(self.precision))

    @property
    def config_hash_fp32(self) -> str:
        """The config hash of this cell in fp32: pairs a bf16 row with its fp32 twin (reports/precision.py)."""
        return dataclasses.replace(self, precision=DEFAULT_PRECISION).config_hash

    @property
    def key(self) -> str:
        return cell_key(self.dataset, self.modality, self.spec.name, self.seed, self.config_hash)

    @classmethod
    def of(cls, splits: Splits, modality: str, spec: MethodSpec, seed: int, precision: str = DEFAULT_PRECISION) -> Cell:
        """The cell of ``spec`` at ``seed`` and ``precision`` on ``modality`` of the loaded ``splits``."""
        return cls(splits.name, splits.preprocess_hash, splits.data_hash, modality, spec, int(seed), precision)


@dataclass(frozen=True)
class CellOptions:
    """What a cell reads from the run config (typed once, below :func:`run_experiment`)."""

    experiment: str
    protocols: tuple[str, ...]
    table_protocol: str
    eval_batch_size: int
    bootstrap_samples: int
    degenerate_brain_share: float
    retrain: bool
    progress: bool
    diagnostic_slices: int
    volume: VolumeOptions
    slice_step: int  # dataset.eval_slice_step: the slab's slice spacing, for the lesion-volume bins
    test_view: str  # which test slices the slice metrics are computed on (row field ``test_view``)
    deterministic: bool  # deterministic torch/cuDNN algorithms (benchmark.provenance.set_deterministic)
    log_sinks: tuple[str, ...]  # where training curves go (``logger``: csv, tensorboard)
    logs: Path  # training curves of a cell under <logs>/<cell key>/
    compute: ComputeOptions = ComputeOptions()  # ``compute.*``: precision, channels_last, compile
    workers: int = 1  # processes running this run's cells side by side (row field ``cell_workers``)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> CellOptions:
        return cls(
            experiment=str(cfg.experiment.name),
            protocols=tuple(cfg.experiment.protocols),
            table_protocol=str(cfg.experiment.table_protocol),
            eval_batch_size=int(cfg.eval_batch_size),
            bootstrap_samples=int(cfg.bootstrap_samples),
            degenerate_brain_share=float(cfg.degenerate_brain_share),
            retrain=bool(cfg.retrain),
            progress=bool(cfg.progress),
            diagnostic_slices=int(cfg.diagnostic_slices),
            volume=VolumeOptions.from_mapping(cfg.get("volume") or {}),
            slice_step=int(cfg.dataset.get("eval_slice_step", 1)),
            test_view=f"lesion slices (test_slices={cfg.dataset.test_slices}, "
            f"eval_slice_step={cfg.dataset.get('eval_slice_step', 1)})",
            deterministic=bool(cfg.deterministic),
            log_sinks=LOGGER_SINKS[str(cfg.logger)],
            logs=Path(cfg.paths.logs),
            compute=compute_options(cfg),
            workers=cfg.workers if isinstance(cfg.get("workers"), int) else 1,  # auto: resolved by the runner
        )


def prepare_data(cfg: DictConfig) -> Splits:
    """Generate the built-in synthetic set when configured, then load (cached) splits; the synthetic set's
    statistics go beside its description (once per data hash,
    :func:`datasets.synthetic_statistics.record_statistics`)."""
    data = dataset_config(cfg)
    synthetic = synthetic_config(cfg)
    if synthetic is not None:
        ensure_synthetic_dataset(data.root, synthetic, progress=cfg.progress)
    splits = load_splits(data, progress=cfg.progress)
    if synthetic is not None:
        record_statistics(data.root, splits)
    return splits


@dataclass(frozen=True)
class RunSetup:
    """What every command that runs cells opens first (experiment runner, timing harness)."""

    device: torch.device
    splits: Splits
    store: ResultsStore
    checkpoints: CheckpointStore
    data_seconds: float = float("nan")  # generating (synthetic), reading and pre-processing the data, or the cache


def open_run(cfg: DictConfig) -> RunSetup:
    """Resolve the device, clean up what killed runs left, prepare the data, open the results and checkpoint
    stores, record the job."""
    for folder in (cfg.paths.results, cfg.paths.checkpoints, cfg.paths.cache):
        remove_orphan_temporaries(Path(folder))
    start = time.perf_counter()
    splits = prepare_data(cfg)
    setup = _setup(cfg, splits, time.perf_counter() - start)
    record_run(setup.store, cfg)
    return setup


def open_cell_setup(cfg: DictConfig, data_seconds: float) -> RunSetup:
    """What a cell worker process opens (:mod:`benchmark.cell_workers`): the splits the run prepared (from the
    slice cache) and the stores; the run's own ``data_seconds`` go into the rows."""
    return _setup(cfg, prepare_data(cfg), data_seconds)


def _setup(cfg: DictConfig, splits: Splits, data_seconds: float) -> RunSetup:
    store = ResultsStore(cfg.paths.results, soft_lock=cfg.results_lock == "soft")
    return RunSetup(resolve_device(cfg.device), splits, store, CheckpointStore(cfg.paths.checkpoints), data_seconds)


def run_experiment(cfg: DictConfig) -> ResultsStore:
    """Run every missing cell of the experiment; returns the results store."""
    return run_experiment_cells(cfg)[0]


def run_experiment_cells(cfg: DictConfig) -> tuple[ResultsStore, list[str]]:
    """Validate the config, then run every missing cell (every cell with ``retrain=true``); returns the store
    and the keys of this experiment's cells (what its report shows)."""
    specs = validate_config(cfg)
    options = CellOptions.from_config(cfg)
    setup = open_run(cfg)
    splits = setup.splits
    log.info(
        "data %s (data hash %s): %d train / %d val (healthy) / %d test slices at %s px",
        splits.name,
        splits.data_hash,
        len(splits.train),
        len(splits.val),
        len(splits.test),
        splits.test.image_size,
    )
    for modality in cfg.experiment.modalities:
        _store_test_set(setup.store, splits, modality)
    # the report's order: modality, method, seed
    cells = [
        Cell.of(splits, modality, spec, seed, options.compute.precision)
        for modality in cfg.experiment.modalities
        for spec in specs
        for seed in cfg.seeds
    ]
    pending: list[Cell] = []
    for cell in sorted(cells, key=lambda c: specs.index(c.spec)):  # stable: a configuration's cells together
        if setup.store.has(cell.key):
            if not options.retrain:
                log.info("skip %s (finished earlier)", cell.key)
                continue
            log.info("retrain=true: re-running finished cell %s", cell.key)
        pending.append(cell)
    workers = cfg.get("workers", "auto")
    if worker_plan(workers, setup.device, len(pending)).workers > 1:  # grouping builds every cell's method
        tasks = group_by_checkpoint(pending, lambda cell: _checkpoint_of(cell, setup, options))
    else:
        tasks = [pending]
    plan = worker_plan(workers, setup.device, len(tasks))
    if plan.workers == 1:
        options = dataclasses.replace(options, workers=1)
        trained: set[Path] = set()  # checkpoints (re)trained by this run: retrain=true trains a shared one once
        for cell in pending:
            run_cell(cell, setup, options, trained)
    else:
        runner = CellRunner(open_setup=open_cell_setup, options=CellOptions.from_config, run=run_cell)
        run_in_workers(cfg, tasks, plan, runner, setup.data_seconds, options.progress)
    return setup.store, [cell.key for cell in cells]


def _checkpoint_of(cell: Cell, setup: RunSetup, options: CellOptions) -> Path:
    """The checkpoint a cell trains or reloads (a method built only to ask its training identity)."""
    method = create_method(cell.spec.name, _context(cell, setup, options, None), **cell.spec.params)
    return checkpoint_path(method, cell, setup.checkpoints)


def run_cell(cell: Cell, setup: RunSetup, options: CellOptions, trained: set[Path] | None = None) -> None:
    """Train or reload, calibrate, predict, evaluate and store one cell; training curves go live to the cell's
    :class:`TrainLogger` and, as ``train_history``, into its rows."""
    seed_everything(cell.seed)
    set_deterministic(options.deterministic)
    header = row_header(cell, setup, options) | {"deterministic": options.deterministic}
    train_logger = TrainLogger(options.logs / cell.key, options.log_sinks)
    times = StageTimes(setup.device)
    try:
        method = create_method(cell.spec.name, _context(cell, setup, options, train_logger), **cell.spec.params)
        apply_compute(method, options.compute)
        train_log, reused = train_or_load(
            method, cell, setup.splits, setup.checkpoints, options.retrain, trained, times
        )
    except MethodUnavailable as why:
        log.warning("%s: not applicable (%s)", cell.key, why)
        row = header | {"status": "unavailable", "reason": str(why), "protocol": None, "finished": _now()}
        setup.store.write(cell.key, [row])
        return
    finally:
        train_logger.close()
    predictions = predict_cell(method, cell, setup.splits, options, times)
    with times.stage("evaluate"):
        results = evaluate_cell(method, cell, setup.splits, predictions, options)
    with times.stage("evaluate_slab"):
        slab_results = evaluate_slab_cell(cell, setup.splits, predictions, results, options)
    with times.stage("figures"):
        figures = _diagnostic_figures(method, setup.splits.test, cell, options, setup.store.root)
    cost = predictions.inference_stats | {
        "status": "ok",
        "params": method.parameter_count(),
        "train_steps": train_log.steps,
        "train_seconds": train_log.seconds,
        "best_val_loss": train_log.best_val_loss,
        "train_history": train_log.history,
        "checkpoint_reused": reused,
        "nfe_per_slice": float(predictions.test.nfe.double().mean()),
        "ms_per_slice": predictions.test.ms_per_slice,
        "test_view": options.test_view,
        "slab_extra_slices": 0 if predictions.slab_rest is None else len(predictions.slab_rest.nfe),
        "slab_extra_seconds": 0.0 if predictions.slab_rest is None else predictions.slab_rest.seconds,
        "figures": figures,
        stage_column("data"): setup.data_seconds,  # the run's, shared by the cells it ran
        **times.fields(),
        "finished": _now(),
    }
    write_cell(setup.store, cell, header | cost, results, predictions, setup.splits, slab_results)
    headline = next((r for r in results if r.protocol == options.table_protocol), results[0])
    log.info(
        "done %-10s %-5s %-22s seed %d | DSC %.3f (%s)  AUROC %.3f | train %.0f s%s, %.1f ms/slice, NFE %.0f",
        cell.dataset,
        cell.modality,
        header["method_label"],
        cell.seed,
        headline.row["dice"],
        headline.protocol,
        headline.row["auroc"],
        train_log.seconds,
        " (reused)" if reused else "",
        predictions.test.ms_per_slice,
        cost["nfe_per_slice"],
    )


def row_header(cell: Cell, setup: RunSetup, options: CellOptions) -> dict[str, Any]:
    """The identity and provenance fields every row of a cell starts with (its configuration flattened into
    ``param.*`` / ``train.*`` columns, see :mod:`benchmark.schema`)."""
    splits = setup.splits
    config = cell.spec.as_dict()
    return {
        "experiment": options.experiment,
        "dataset": cell.dataset,
        "preprocess_hash": cell.preprocess_hash,
        "data_hash": cell.data_hash,
        "modality": cell.modality,
        "method": cell.spec.name,
        "method_key": cell.spec.key,
        "method_label": cell.spec.row_label,
        "seed": cell.seed,
        "cell": cell.key,
        "config_hash": cell.config_hash,
        "config_hash_fp32": cell.config_hash_fp32,
        **options.compute.fields(),
        "cell_workers": options.workers,
        "torch_threads": torch.get_num_threads(),
        "config": OmegaConf.to_yaml(OmegaConf.create(config)),
        **flatten_config(config),
        "deviations": list(method_class(cell.spec.name).deviations),
        "commit": git_commit(),
        "device": device_name(setup.device),
        "torch": torch.__version__,
        "image_size": splits.test.image_size[0],
        "n_train_slices": len(splits.train),
        "n_val_slices": len(splits.val),
        "n_test_slices": len(splits.test),
        "n_test_subjects": len(set(splits.test.subjects)),
        "started": _now(),
    }


def _context(cell: Cell, setup: RunSetup, options: CellOptions, on_log: TrainRecordSink | None) -> MethodContext:
    return MethodContext(
        modality=cell.modality,
        image_size=setup.splits.test.image_size[0],
        device=setup.device,
        seed=cell.seed,
        available_modalities=setup.splits.test.modalities,
        progress=options.progress,
        on_log=on_log,
    )


@dataclass(frozen=True)
class CellPredictions:
    """A trained method's outputs on the sets a cell evaluates with (None where no protocol needs them)."""

    test: Predictions
    inference_stats: dict[str, float]  # the method's own counters, over the test split only
    val: Predictions | None  # healthy validation slices (val_fpr)
    labelled_val: Predictions | None  # the validation subjects' lesion slices (val_labelled)
    slab_rest: Predictions | None = None  # the slab's slices outside the test view (predicted last)
    slab: Predictions | None = None  # the whole slab: ``test`` at its view positions, ``slab_rest`` elsewhere


def predict_cell(
    method: AnomalyMethod, cell: Cell, splits: Splits, options: CellOptions, times: StageTimes | None = None
) -> CellPredictions:
    """Predict the test split, the validation sets that the cell's protocols need and, for the whole-volume
    view, the test slab's remaining slices.

    The slab's other slices are predicted *last*, so the test and validation predictions get exactly the
    batches and random streams they got before the slab existed (stochastic methods keep their numbers), and
    no slice is predicted twice: the slab's maps are the test maps plus these."""
    batch, label = options.eval_batch_size, f"{method.display_name} {cell.modality}"
    times = times if times is not None else StageTimes(method.device)

    def predict(name: str, slices: SliceSet) -> Predictions:
        with times.stage(f"predict_{name}"), autocast(cell.precision, method.device):
            return predict_split(method, slices, batch, options.progress, f"{label} {name}")

    method.reset_inference_stats()
    test = predict("test", splits.test)
    stats = method.inference_stats()
    val = labelled = None
    if needs_validation_maps(options.protocols):
        val = predict("val", splits.val)
    if needs_labelled_validation(options.protocols) and splits.val_labelled is not None:
        # without a labelled set, evaluate() says why val_labelled cannot run
        labelled = predict("val_labelled", splits.val_labelled)
    if not options.volume.enabled or splits.test_slab is None or splits.test_view is None:
        return CellPredictions(test, stats, val, labelled)
    rest_positions = sorted(set(range(len(splits.test_slab))) - set(splits.test_view))
    rest = predict("slab", splits.test_slab.subset(rest_positions))
    slab = assemble_predictions([(splits.test_view, test), (rest_positions, rest)], len(splits.test_slab))
    return CellPredictions(test, stats, val, labelled, rest, slab)


def evaluate_cell(
    method: AnomalyMethod, cell: Cell, splits: Splits, predictions: CellPredictions, options: CellOptions
) -> list[ProtocolResult]:
    """Every configured protocol through :func:`evaluate`, plus the method's own oracle row if it has one."""
    results = evaluate(
        predictions.test, splits.test, cell.modality, options.protocols, predictions.val, splits.val,
        seed=cell.seed, n_boot=options.bootstrap_samples,
        labelled_val_pred=predictions.labelled_val, labelled_val=splits.val_labelled,
        max_brain_share=options.degenerate_brain_share,
    )  # fmt: skip
    human_ai = _human_ai_result(method, splits.test, predictions.test, cell, options)
    results += [human_ai] if human_ai is not None else []
    for message in degenerate_warnings(results):
        log.warning("%s: %s", cell.key, message)
    return results


def evaluate_slab_cell(
    cell: Cell, splits: Splits, predictions: CellPredictions, results: list[ProtocolResult], options: CellOptions
) -> list[SlabResult]:
    """The whole-volume view of the cell's global-threshold results (none without a slab)."""
    if predictions.slab is None or splits.test_slab is None:
        return []
    return evaluate_slab(
        results, predictions.slab, splits.test_slab, options.volume, options.slice_step,
        options.degenerate_brain_share, seed=cell.seed, n_boot=options.bootstrap_samples,
    )  # fmt: skip


def write_cell(
    store: ResultsStore,
    cell: Cell,
    fields: dict[str, Any],
    results: list[ProtocolResult],
    predictions: CellPredictions,
    splits: Splits,
    slab_results: Sequence[SlabResult] = (),
) -> None:
    """One row per protocol (with its whole-volume fields), the per-image and per-subject records and the maps /
    segmentations, as one store write."""
    test_pred, test = predictions.test, splits.test
    slab_rows = {r.protocol: r.row for r in slab_results}
    rows = [fields | r.row | slab_rows.get(r.protocol, {}) for r in results]
    per_image = pd.concat(
        [per_image_records(fields, r.protocol, r.per_image, test.subjects, test.slice_index) for r in results],
        ignore_index=True,
    )
    arrays = {
        "anomaly_maps": float16_copy(test_pred.anomaly_maps.numpy()),
        "nfe": test_pred.nfe.numpy(),
    }
    if test_pred.reconstructions is not None:
        arrays["reconstructions"] = float16_copy(test_pred.reconstructions.numpy())
    if test_pred.final_masks is not None:
        arrays["final_masks"] = test_pred.final_masks.numpy().astype(bool)
    for r in results:
        arrays[segmentation_array(r.protocol)] = r.segmentation.numpy()
    if predictions.slab is not None:
        arrays[SLAB_MAPS_ARRAY] = float16_copy(predictions.slab.anomaly_maps.numpy())
    for s in slab_results:
        arrays[slab_segmentation_array(s.protocol)] = s.segmentation.numpy()
    per_subject = per_subject_records(fields, [s.per_subject for s in slab_results])
    store.write(cell.key, rows, arrays, per_image, per_subject)


def _human_ai_result(
    method: AnomalyMethod, test: SliceSet, test_pred: Predictions, cell: Cell, options: CellOptions
) -> ProtocolResult | None:
    """The method's own label-chosen (ORACLE) segmentation, evaluated like every protocol, or None."""
    start = time.perf_counter()
    with autocast(cell.precision, method.device):
        segmentation = method.human_ai_segmentation(test)
    if segmentation is None:
        return None
    seconds = time.perf_counter() - start
    result = evaluate_segmentation(
        HUMAN_AI_PROTOCOL,
        segmentation,
        test_pred,
        test,
        cell.modality,
        is_oracle=True,
        seed=cell.seed,
        n_boot=options.bootstrap_samples,
        max_brain_share=options.degenerate_brain_share,
    )
    result.row["search_seconds"] = seconds
    return result


def _diagnostic_figures(
    method: AnomalyMethod, test: SliceSet, cell: Cell, options: CellOptions, results: Path
) -> list[str]:
    """The method's figures of the first few lesion-bearing test slices, written beside the results as
    ``figures/<cell>/...``; returns their paths relative to the results folder (the report copies them)."""
    lesions = torch.nonzero(test.labels.flatten(1).any(1)).flatten()[: options.diagnostic_slices].tolist()
    if not lesions:
        return []
    paths = method.diagnostic_figures(test.subset(lesions), results / "figures" / cell.key)
    return [p.relative_to(results).as_posix() for p in paths]


def train_or_load(
    method: AnomalyMethod,
    cell: Cell,
    splits: Splits,
    checkpoints: CheckpointStore,
    retrain: bool = False,
    trained: set[Path] | None = None,
    times: StageTimes | None = None,
) -> tuple[TrainLog, bool]:
    """Reload the trained state when a checkpoint of the same training identity exists, else fit and save;
    then calibrate on healthy validation slices (always, so that methods sharing a trained network keep
    their own calibration).

    The checkpoint is keyed on the data (pre-processing hash and content hash), the method's training
    identity and its budget. ``retrain`` fits again, once per checkpoint and run: paths in ``trained`` (the
    run's record of what it has fitted) are reloaded, so methods that share a network train it once.
    ``times`` gets the stages ``train`` (fit and save, or load) and ``calibrate``; both run under the cell's
    precision (:func:`benchmark.compute.autocast`), which is part of the checkpoint's identity.
    """
    times = times if times is not None else StageTimes(method.device)
    path = checkpoint_path(method, cell, checkpoints)
    fitted_now = trained is not None and path in trained
    reused = path.exists() and (not retrain or fitted_now)
    with times.stage("train"):
        if reused:
            state, train_log = checkpoints.load(path, method.device)
            method.load_state_dict(state)
        else:
            start = time.perf_counter()
            with autocast(cell.precision, method.device):
                train_log = method.fit(splits.train, splits.val, cell.spec.budget)
            train_log.seconds = time.perf_counter() - start
            checkpoints.save(path, method.state_dict(), train_log)
            if trained is not None:
                trained.add(path)
    with times.stage("calibrate"), autocast(cell.precision, method.device):
        method.calibrate(splits.val)
    return train_log, reused


def checkpoint_path(method: AnomalyMethod, cell: Cell, checkpoints: CheckpointStore) -> Path:
    """Where the cell's trained state lives: keyed on the data, the method's training identity (its whole
    config unless it declares less), the budget, the seed and the precision."""
    identity = method.training_identity() or {"method": cell.spec.as_dict()}
    training = {"pre": cell.preprocess_hash, "data": cell.data_hash, "identity": identity}
    training_hash = stable_hash(training | {"budget": vars(cell.spec.budget)} | precision_identity(cell.precision))
    return checkpoints.path(cell.dataset, cell.modality, cell.seed, training_hash)


def record_run(store: ResultsStore, cfg: DictConfig) -> None:
    """Save the resolved config and the environment beside the rows (the report reads them): one record
    per job under ``jobs/`` plus the latest-run copies, all written atomically (safe under multirun)."""
    job = store.record_job(OmegaConf.to_yaml(cfg, resolve=True), environment())
    log.info("job record: %s", job)


def _store_test_set(store: ResultsStore, splits: Splits, modality: str) -> None:
    """Inputs, labels and brain masks of the test split (and of the test slab), once per (dataset, data,
    modality), for figures."""
    identity = (splits.name, modality, splits.preprocess_hash, splits.data_hash)
    sets = {stored_test_split(*identity): splits.test}
    if splits.test_slab is not None:
        sets[stored_test_slab(*identity)] = splits.test_slab
    for array_name, slices in sets.items():
        if store.has_arrays(array_name):
            continue
        store.write_arrays(
            array_name,
            {
                "images": float16_copy(slices.channel(modality).numpy()),
                "labels": slices.labels.numpy(),
                "brain": float16_copy(slices.brain.numpy()),
                "subjects": np.array(slices.subjects),
                "slice_index": np.array(slices.slice_index),
            },
        )


def float16_copy(values: np.ndarray) -> np.ndarray:
    """A float16 copy for the stored arrays (figures read them; metrics are computed before, in float32), values
    beyond float16's range clipped to its largest finite value rather than overflowing to inf."""
    limit = float(np.finfo(np.float16).max)
    return np.clip(values, -limit, limit).astype(np.float16)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
