"""Cost of evaluating one cell at a given scale: every evaluation stage the runner calls, timed on synthetic data.

    python -m benchmark.bench_evaluation --subjects 1251 --slices 20 --size 128 --out brats.json

Builds seeded synthetic score maps, labels and brain masks (lesions as 3-D blobs, every fifth subject healthy,
smooth noise maps with a raised score on lesions), then times, as the median over ``--repeats`` runs after one
warm-up, the threshold protocols of the slice view (``oracle_global``, ``val_fpr``, ``val_labelled``,
``oracle_per_image``), the slice metrics with bootstrap CIs of one protocol, the full slice view
(:func:`benchmark.evaluate.evaluate`), the slab oracle, the whole-volume metrics of one threshold, the full slab
view (:func:`benchmark.evaluate_volume.evaluate_slab`, every slab protocol and metric) and the per-subject
records. The test slice set is every lesion slice of the slab (``test_slices: all``); the validation sets come
from a tenth as many further subjects (at least five, so one is healthy). Peak RSS (``resource.getrusage``)
is recorded with the times.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.evaluate import ProtocolResult, evaluate
from benchmark.evaluate_volume import SlabResult, VolumeOptions, evaluate_slab, slab_oracle
from benchmark.metrics import compute_metrics
from benchmark.predict import Predictions
from benchmark.schema import PER_SUBJECT_IDENTITY, per_subject_records
from benchmark.thresholds import GridEdgeWarning, binarise, choose_threshold
from benchmark.volume_metrics import compute_volume_metrics
from datasets.slices import SliceSet

HEALTHY_EVERY = 5  # every fifth subject has no lesion
PROTOCOLS = ("oracle_global", "val_fpr", "val_labelled", "oracle_per_image")
#: The stages whose sum is everything the runner's evaluation of one cell costs.
_CELL_STAGES = ("slice_view_evaluate", "slab_view_evaluate_slab", "per_subject_records")


@dataclass(frozen=True)
class Scale:
    """Slab size: subjects, slab slices per subject, image side, slab slice step."""

    subjects: int
    slices: int
    size: int
    slice_step: int = 1


@dataclass(frozen=True)
class Cell:
    """Synthetic inputs of one cell: slab, test, healthy and labelled validation sets with their predictions."""

    slab: SliceSet
    slab_pred: Predictions
    test: SliceSet
    test_pred: Predictions
    val: SliceSet
    val_pred: Predictions
    labelled: SliceSet
    labelled_pred: Predictions


def synthetic_slab(scale: Scale, seed: int, prefix: str = "s") -> tuple[SliceSet, torch.Tensor]:
    """A slab of ``scale`` (one input channel) and its smooth anomaly maps, seeded."""
    s, k, h = scale.subjects, scale.slices, scale.size
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    zz = np.arange(k)
    centre, radius = (h - 1) / 2, 0.43 * h
    disc = np.hypot(yy - centre, xx - centre)
    brain = np.clip(radius + 0.5 - disc, 0.0, 1.0).astype(np.float32)  # soft rim, brain > 0 inside
    labels = np.zeros((s, k, h, h), dtype=bool)
    for subject in range(s):
        if subject % HEALTHY_EVERY == HEALTHY_EVERY - 1:
            continue
        for _ in range(int(rng.integers(1, 4))):
            cz, cy, cx = rng.integers(0, k), *rng.integers(int(0.3 * h), int(0.7 * h), size=2)
            r = rng.uniform(0.02, 0.12) * h
            labels[subject] |= (
                ((zz[:, None, None] - cz) * (h / 128) * 2) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2
            ) < r**2
    labels_t = torch.from_numpy(labels.reshape(s * k, h, h)) & torch.from_numpy(brain > 0)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(s * k, 1, h, h, generator=generator)
    maps = F.avg_pool2d(noise, 5, stride=1, padding=2, count_include_pad=False)[:, 0] + 0.15 * labels_t
    brain_t = torch.from_numpy(brain).expand(s * k, h, h)  # a view: one brain mask per slab, no copy
    images = maps[:, None]  # the maps serve as input and reconstruction (SSIM is timed, not judged)
    subjects = tuple(f"{prefix}{i:05d}" for i in range(s) for _ in range(k))
    slice_index = tuple(70 + scale.slice_step * z for _ in range(s) for z in range(k))
    return SliceSet(images, brain_t, labels_t, ("flair",), subjects, slice_index), maps.contiguous()


def _predictions(maps: torch.Tensor) -> Predictions:
    return Predictions(maps, maps, None, torch.ones(maps.shape[0]), 0.0)


def synthetic_cell(scale: Scale, seed: int = 0) -> Cell:
    """Slab, test slices (its lesion slices), healthy validation slices and labelled validation slices."""
    slab, maps = synthetic_slab(scale, seed)
    lesion = slab.labels.flatten(1).any(1)
    val_scale = Scale(
        max(HEALTHY_EVERY, scale.subjects // 10), scale.slices, scale.size, scale.slice_step
    )  # >= 1 healthy
    val_slab, val_maps = synthetic_slab(val_scale, seed + 1, prefix="v")
    val_lesion = val_slab.labels.flatten(1).any(1)
    return Cell(
        slab=slab,
        slab_pred=_predictions(maps),
        test=slab.subset(lesion),
        test_pred=_predictions(maps[lesion]),
        val=val_slab.subset(~val_lesion),
        val_pred=_predictions(val_maps[~val_lesion]),
        labelled=val_slab.subset(val_lesion),
        labelled_pred=_predictions(val_maps[val_lesion]),
    )


def _median_seconds(run: Callable[[], object], repeats: int, warmup: int) -> dict[str, float]:
    """Median, min and max wall time and the median process CPU time (less sensitive to other load on a shared
    machine) of ``repeats`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        run()
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {
        "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
        "cpu_median_s": statistics.median(cpu), "repeats": repeats, "warmup": warmup,
    }  # fmt: skip


def _stages(cell: Cell, scale: Scale, n_boot: int) -> dict[str, Callable[[], object]]:
    """Every timed stage: name -> zero-argument call (inputs that a stage needs, such as the slice-view results
    for the slab view, are computed once on first use, untimed)."""
    test, pred = cell.test, cell.test_pred
    options = VolumeOptions()

    def threshold(protocol: str) -> Callable[[], object]:
        val, val_pred = (cell.labelled, cell.labelled_pred) if protocol == "val_labelled" else (cell.val, cell.val_pred)
        return lambda: choose_threshold(
            protocol, test_maps=pred.anomaly_maps, test_labels=test.labels, brain=test.brain,
            val_maps=val_pred.anomaly_maps, val_brain=val.brain, val_labels=val.labels,
        )  # fmt: skip

    def slice_view() -> list[ProtocolResult]:
        return evaluate(
            pred, test, "flair", PROTOCOLS, cell.val_pred, cell.val, n_boot=n_boot,
            labelled_val_pred=cell.labelled_pred, labelled_val=cell.labelled,
        )  # fmt: skip

    def slab_view(results: list[ProtocolResult]) -> list[SlabResult]:
        return evaluate_slab(results, cell.slab_pred, cell.slab, options, scale.slice_step, 0.5, n_boot=n_boot)

    @functools.cache
    def slice_segmentation() -> torch.Tensor:
        return binarise(pred.anomaly_maps, test.brain, threshold("oracle_global")())  # type: ignore[arg-type]

    @functools.cache
    def slab_segmentation() -> torch.Tensor:
        return binarise(cell.slab_pred.anomaly_maps, cell.slab.brain, slab_oracle(cell.slab_pred, cell.slab))

    results = functools.cache(slice_view)
    slab_results = functools.cache(lambda: slab_view(results()))
    header = dict.fromkeys(PER_SUBJECT_IDENTITY, "bench") | {"seed": 0}
    return {
        **{f"threshold_{p}": threshold(p) for p in PROTOCOLS},
        "slice_metrics_with_ci": lambda: compute_metrics(
            slice_segmentation(),
            pred.anomaly_maps,
            test.labels,
            test.brain,
            inputs=test.channel("flair"),
            reconstruction=pred.reconstructions,
            subjects=test.subjects,
            n_boot=n_boot,
        ),  # fmt: skip
        "slice_view_evaluate": slice_view,
        "slab_oracle": lambda: slab_oracle(cell.slab_pred, cell.slab),
        "volume_metrics_with_ci": lambda: compute_volume_metrics(
            slab_segmentation(),
            cell.slab_pred.anomaly_maps,
            cell.slab.labels,
            cell.slab.brain,
            cell.slab.subjects,
            slice_step=scale.slice_step,
            n_boot=n_boot,
        ),  # fmt: skip
        "slab_view_evaluate_slab": lambda: slab_view(results()),
        "per_subject_records": lambda: per_subject_records(header, [s.per_subject for s in slab_results()]),
    }


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def run_benchmark(
    scale: Scale, repeats: int = 3, n_boot: int = 1000, seed: int = 0, warmup: int = 1, only: Sequence[str] = ()
) -> dict[str, Any]:
    """Times of every stage (or of the stages in ``only``) at ``scale`` (module docstring), data sizes, peak RSS."""
    start = time.perf_counter()
    cell = synthetic_cell(scale, seed)
    build_s = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridEdgeWarning)
        stages = _stages(cell, scale, n_boot)
        unknown = sorted(set(only) - set(stages))
        if unknown:
            raise ValueError(f"bench_evaluation: unknown stages {unknown}; known: {', '.join(stages)}")
        times = {
            name: _median_seconds(call, repeats, warmup) for name, call in stages.items() if not only or name in only
        }
    return {
        "scale": {
            "subjects": scale.subjects,
            "slices": scale.slices,
            "size": scale.size,
            "slice_step": scale.slice_step,
        },  # fmt: skip
        "n_slab_slices": len(cell.slab),
        "n_test_slices": len(cell.test),
        "n_val_slices": len(cell.val),
        "n_labelled_val_slices": len(cell.labelled),
        "n_boot": n_boot,
        "build_s": build_s,
        "stages": times,
        "cell_total_s": sum(times[k]["median_s"] for k in _CELL_STAGES) if set(_CELL_STAGES) <= set(times) else None,
        "peak_rss_mib": peak_rss_mib(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: one scale, results as JSON to ``--out`` (and stdout)."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.bench_evaluation", description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=1251)
    parser.add_argument("--slices", type=int, default=20, help="slab slices per subject")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--slice-step", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before the timed ones")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--label", default="", help="free text stored with the results (e.g. 'before')")
    parser.add_argument("--stages", default="", help="comma-separated stage names to time (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    for name in ("subjects", "slices", "size", "slice_step", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    scale = Scale(args.subjects, args.slices, args.size, args.slice_step)
    only = [name for name in args.stages.split(",") if name]
    result = {"label": args.label, **run_benchmark(scale, args.repeats, args.n_boot, warmup=args.warmup, only=only)}
    text = json.dumps(result, indent=2)
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
