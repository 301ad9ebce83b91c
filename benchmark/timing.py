"""Cost of every method of an experiment: ``python -m benchmark experiment=timing``.

Per (modality, method, seed) cell one row (``record = "method_cost"``): parameter count, NFE per slice,
inference ms per slice and slices/s (median and IQR over repeats after warm-up), train-step ms and steps/s at
the configured batch size, peak memory of inference and of training, FLOPs per slice, device (the GPU's name
on CUDA), dtype and the run-wide ``compute.*`` options it ran with (:mod:`benchmark.compute`: precision,
channels_last, torch.compile), applied exactly as the comparison runner applies them. Under
``compute.precision=bf16`` the row also holds the Dice of bf16 minus fp32 maps of the same model and inputs.
Timing goes through one :class:`~methods.measure.Timer` on every device: CUDA events on GPU (the
clock runs on the stream, so asynchronous launches are measured correctly), ``perf_counter`` elsewhere.

The measured model is trained (or reloaded) through the runner's checkpoint path; ``timing.train_steps``
shortens its budget (cost does not depend on how well a network is trained, except where the NFE adapts to
the input). With ``compute.compile`` each fresh instance of the train-step timing compiles again; the
difference ``fit(1 + k) - fit(1)`` cancels that cost as far as both compile alike.
With ``timing.cost_studies`` every measured method also runs its own
:meth:`~methods.base.AnomalyMethod.cost_studies` (rows stored as ``<record>__<cell>``).
The train step is timed generically through the method's own ``fit``: ``fit(1 + k steps) - fit(1 step)``
on fresh instances, divided by ``k``, which cancels set-up and the final validation pass.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch
from omegaconf import DictConfig

from benchmark.checkpoints import CheckpointStore
from benchmark.compute import DEFAULT_PRECISION, ComputeOptions, apply_compute, autocast
from benchmark.config import ConfigError, compute_options, method_specs
from benchmark.metrics import dice_per_image
from benchmark.provenance import device_name, git_commit, seed_everything
from benchmark.runner import Cell, open_run, train_or_load
from benchmark.store import ResultsStore
from benchmark.thresholds import binarise, oracle_global
from datasets.slices import SliceSet, Splits
from methods import MethodContext, create_method
from methods.base import AnomalyMethod, MethodOutput, MethodUnavailable, TrainBudget
from methods.measure import Timer, TimingStats, count_flops

log = logging.getLogger("benchmark")


def reset_peak_memory(device: torch.device) -> None:
    """Start a new CUDA peak-memory window (CPU peak RSS cannot be reset: it is the process's peak)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """``(MiB, what)``: ``torch.cuda.max_memory_allocated`` on GPU, the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu_process_peak_rss"


@dataclass(frozen=True)
class TimingOptions:
    """The ``timing`` config group (see ``configs/experiment/timing.yaml``)."""

    repeats: int = 5
    warmup: int = 1
    batch_size: int | None = None  # slices per timed predict call; None = the run's eval_batch_size
    train_steps: int | None = None  # budget of the measured model; None = the configured budget
    train_step_repeats: int = 3
    train_step_extra: int = 3  # k of fit(1 + k) - fit(1)
    flops: bool = True
    cost_studies: bool = True  # run every measured method's own cost_studies (AnomalyMethod.cost_studies)

    @classmethod
    def from_config(cls, cfg: DictConfig) -> TimingOptions:
        group = dict(cfg.get("timing") or {})
        for key, new in MOVED_KEYS.items():
            if key in group:
                raise ConfigError(f"timing.{key} moved to the run-wide compute group: use {new} (configs/config.yaml)")
        unknown = set(group) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise KeyError(f"timing config: unknown keys {sorted(unknown)} (see configs/experiment/timing.yaml)")
        return cls(**group)


#: ``timing.*`` keys of earlier versions, now run-wide ``compute.*`` keys (an old key is an error naming the new one).
MOVED_KEYS = {
    "amp": "compute.precision=bf16",
    "channels_last": "compute.channels_last=true",
    "compile": "compute.compile=true",
}


def predict_with(method: AnomalyMethod, batch: SliceSet, precision: str) -> MethodOutput:
    """``method.predict(batch)`` under ``precision`` (:func:`benchmark.compute.autocast`)."""
    with autocast(precision, method.device):
        return method.predict(batch)


def amp_dice_delta(method: AnomalyMethod, batch: SliceSet, bf16: MethodOutput) -> dict[str, float]:
    """Mean per-image Dice (each at its own oracle-global threshold) of bf16 minus fp32 maps, same inputs."""
    fp32 = predict_with(method, batch, DEFAULT_PRECISION)
    labels, brain = batch.labels.cpu(), batch.brain.cpu()

    def dice(maps: torch.Tensor) -> float:
        maps = maps.float().cpu()
        seg = binarise(maps, brain, oracle_global(maps, labels, brain, warn_edge=False))
        return float(dice_per_image(seg, labels, brain).mean())

    d32, d16 = dice(fp32.anomaly_map), dice(bf16.anomaly_map)
    return {"dice_fp32": d32, "dice_bf16": d16, "amp_dice_delta": d16 - d32}


def time_inference(
    method: AnomalyMethod, batch: SliceSet, timer: Timer, options: TimingOptions, precision: str = DEFAULT_PRECISION
) -> dict[str, Any]:
    """NFE, ms/slice (median, IQR), slices/s and peak memory of ``predict`` on one batch at ``precision``."""
    output = predict_with(method, batch, precision)
    reset_peak_memory(method.device)
    stats = timer.repeat(lambda: predict_with(method, batch, precision), options.repeats, options.warmup)
    per_slice = stats.scaled(1000.0 / len(batch))
    memory, memory_kind = peak_memory_mb(method.device)
    row = {
        "nfe_per_slice": float(output.nfe.double().mean()),
        "ms_per_slice": per_slice.median,
        "ms_per_slice_q1": per_slice.q1,
        "ms_per_slice_q3": per_slice.q3,
        "ms_per_slice_iqr": per_slice.iqr,
        "slices_per_s": 1000.0 / per_slice.median,
        "peak_memory_mb": memory,
        "peak_memory_kind": memory_kind,
    }
    if options.flops:
        flops = count_flops(lambda: method.predict(batch))
        row["gflop_per_slice"] = flops / len(batch) / 1e9
        row["gflop_per_nfe"] = flops / float(output.nfe.sum()) / 1e9
    if precision != DEFAULT_PRECISION:
        row |= amp_dice_delta(method, batch, output)
    return row


def time_train_step(
    make_method: Callable[[], AnomalyMethod],
    splits: Splits,
    budget: TrainBudget,
    timer: Timer,
    options: TimingOptions,
    precision: str = DEFAULT_PRECISION,
) -> TimingStats:
    """Seconds per optimiser step of the method's own ``fit`` at ``budget.batch_size`` and ``precision`` (see
    module doc)."""
    val = splits.val.subset(slice(0, max(1, min(len(splits.val), budget.batch_size))))
    k = options.train_step_extra

    def fit_seconds(steps: int) -> float:
        method = make_method()
        short = dataclasses.replace(budget, steps=steps, val_every=steps, patience=None)
        with autocast(precision, method.device):
            return timer.once(lambda: method.fit(splits.train, val, short))

    for _ in range(min(options.warmup, 1)):
        fit_seconds(1)  # warm-up (allocator, kernels)
    samples = [(fit_seconds(1 + k) - fit_seconds(1)) / k for _ in range(options.train_step_repeats)]
    return TimingStats(tuple(samples))


def run_timing(cfg: DictConfig) -> ResultsStore:
    """Measure every method of the experiment; rows go to the store under ``paths.results``."""
    return run_timing_cells(cfg)[0]


def run_timing_cells(cfg: DictConfig) -> tuple[ResultsStore, list[str]]:
    """:func:`run_timing`, also returning the store entries this run wrote (what its cost report shows)."""
    options = TimingOptions.from_config(cfg)
    compute = compute_options(cfg)
    setup = open_run(cfg)
    device, splits, store, checkpoints = setup.device, setup.splits, setup.store, setup.checkpoints
    timer = Timer(device, options.repeats, options.warmup)
    batch_size = int(options.batch_size or cfg.eval_batch_size)
    studied: list[tuple[Cell, AnomalyMethod, dict[str, Any]]] = []
    written: list[str] = []
    for modality in cfg.experiment.modalities:
        batch = splits.test.subset(slice(0, min(batch_size, len(splits.test)))).to(device)
        for spec in method_specs(cfg):
            for seed in cfg.seeds:
                cell = Cell.of(splits, modality, spec, seed, compute.precision)
                written.append(cost_key(cell))
                measured = measure_cell(cell, splits, batch, store, checkpoints, cfg, timer, options, compute)
                if measured is not None and options.cost_studies:
                    studied.append((cell, *measured))
    for cell, method, row in studied:
        rows = method.cost_studies(
            splits, batch_size, float(row["train_step_ms"]), timer, train_batch_size=int(row["train_batch_size"])
        )
        by_record: dict[str, list[dict[str, Any]]] = {}
        for study_row in rows:
            if not study_row.get("record") or not study_row.get("title"):
                raise ValueError(f"{row['method_label']}: every cost_studies row needs a 'record' and a 'title'")
            by_record.setdefault(str(study_row["record"]), []).append(study_row)
        for record, part in by_record.items():
            written.append(study_key(record, cell))
            labels = {"method_key": row["method_key"], "method_label": row["method_label"], "cell": cell.key}
            store.write(written[-1], [_base_fields(cfg, device) | labels | r for r in part])
    if options.flops:
        from benchmark.flops import flops_rows

        written.append("flops_and_throughput")
        store.write(written[-1], [_base_fields(cfg, device) | r for r in flops_rows(device, timer)])
    return store, written


def cost_key(cell: Cell) -> str:
    """The store entry of a cell's cost row."""
    return f"cost__{cell.key}"


def study_key(record: str, cell: Cell) -> str:
    """The store entry of the rows of one cost-study record of a cell."""
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in record)
    return f"{safe}__{cell.key}"


def measure_cell(
    cell: Cell, splits: Splits, batch: SliceSet, store: ResultsStore, checkpoints: CheckpointStore,
    cfg: DictConfig, timer: Timer, options: TimingOptions, compute: ComputeOptions,
) -> tuple[AnomalyMethod, dict[str, Any]] | None:  # fmt: skip
    """Train or reload one method, time it, write its row; returns the method and row (None if n/a)."""
    device = timer.device
    spec = cell.spec
    if options.train_steps is not None:
        spec = dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, steps=int(options.train_steps)))
        cell = dataclasses.replace(cell, spec=spec)
    context = MethodContext(cell.modality, splits.test.image_size[0], device, cell.seed, splits.test.modalities)

    def make() -> AnomalyMethod:
        seed_everything(cell.seed)
        method = create_method(spec.name, context, **spec.params)
        apply_compute(method, compute)
        return method

    row = _base_fields(cfg, device) | {
        "record": "method_cost",
        "dataset": cell.dataset,
        "modality": cell.modality,
        "method": spec.name,
        "method_key": spec.key,
        "method_label": spec.row_label,
        "seed": cell.seed,
        "cell": cell.key,
        "image_size": splits.test.image_size[0],
        "batch_size": len(batch),
        "train_batch_size": spec.budget.batch_size,
        "train_steps_of_measured_model": spec.budget.steps,
        "repeats": options.repeats,
        "warmup": options.warmup,
        **compute.fields(),
    }
    key = cost_key(cell)
    try:
        method = make()
        train_or_load(method, cell, splits, checkpoints, bool(cfg.retrain))
    except MethodUnavailable as why:
        store.write(key, [row | {"status": "unavailable", "reason": str(why)}])
        return None
    row |= {"status": "ok", "params": method.parameter_count(), "dtype": _dtype(method)}
    row |= {f"option_{k}": v for k, v in compute.applied().items()}
    row |= time_inference(method, batch, timer, options, cell.precision)
    reset_peak_memory(device)
    step = time_train_step(make, splits, spec.budget, timer, options, cell.precision).scaled(1000.0)
    train_memory, _ = peak_memory_mb(device)
    row |= {
        "train_step_ms": step.median,
        "train_step_ms_iqr": step.iqr,
        "train_steps_per_s": 1000.0 / step.median,
        "train_peak_memory_mb": train_memory,
    }
    row["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    store.write(key, [row])
    log.info(
        "timing %-5s %-22s | %d params | NFE %.1f | %.2f ms/slice (IQR %.2f) | train step %.1f ms",
        cell.modality, row["method_label"], row["params"], row["nfe_per_slice"], row["ms_per_slice"],
        row["ms_per_slice_iqr"], row["train_step_ms"],
    )  # fmt: skip
    return method, row


def _base_fields(cfg: DictConfig, device: torch.device) -> dict[str, Any]:
    return {
        "experiment": cfg.experiment.name,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "commit": git_commit(),
        "protocol": None,
    }


def _dtype(method: AnomalyMethod) -> str:
    dtypes = {str(p.dtype).removeprefix("torch.") for net in method.networks() for p in net.parameters()}
    return ",".join(sorted(dtypes)) or "none"
