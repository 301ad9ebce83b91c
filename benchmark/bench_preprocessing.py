"""Pre-processing throughput on a BraTS-layout folder: subjects/s, peak memory, cache size, extrapolated to the
full BraTS 2021 training set (1251 subjects), for serial, thread and process loading.

    python -m benchmark.bench_preprocessing --root /tmp/brats200 --size 64 128 --pools serial thread process \\
        --workers 2 --out preprocessing.json

Every build runs :func:`datasets.loader.load_splits` in a fresh interpreter (so peak RSS, ``ru_maxrss``, is that
build's: the loading process and, separately, its largest worker process) into a fresh cache, with the settings of
``configs/dataset/brats.yaml``; then one more interpreter loads that cache (what a training run does). NIfTI reading
(``read_volume``: gzip inflation, parsing, float32) is timed on its own, serially, on the first ``--read-subjects``
subjects. The extrapolation is linear in the subjects of each split, with the measured slices per subject.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from datasets.config import DatasetConfig
from datasets.layouts import get_layout
from datasets.loader import SLICE_SETS, load_splits, read_volume
from datasets.splits import assign_subjects, seeded_split

TARGET_SUBJECTS = 1251  # BraTS 2021 training set
POOLS = {"serial": ("thread", 1), "thread": ("thread", None), "process": ("process", None)}
MODALITIES = ("flair", "t1", "t1ce", "t2")
MIB = 2**20


def _config(job: dict[str, Any]) -> DatasetConfig:
    """``configs/dataset/brats.yaml``'s settings at ``job``'s size, slice range, cache and pool."""
    kind, fixed = POOLS[job["pool"]]
    return DatasetConfig(
        layout="brats", root=Path(job["root"]), modalities=MODALITIES, image_size=job["size"],
        slice_range=tuple(job["slice_range"]), cache_dir=Path(job["cache"]), load_pool=kind,  # type: ignore[arg-type]
        load_workers=fixed or job["workers"], max_subjects=job["max_subjects"],
    )  # fmt: skip


def _max_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _rss_mib() -> float:
    """The resident memory now (``ru_maxrss`` is the peak so far, which imports may have set)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """One :func:`load_splits` call of a fresh interpreter (``job``: root, size, slice_range, cache, pool, workers,
    max_subjects)."""
    config = _config(job)
    baseline, cpu = _rss_mib(), _cpu_s(resource.RUSAGE_SELF)
    start = time.perf_counter()
    splits = load_splits(config, progress=True)
    wall = time.perf_counter() - start
    cpu = _cpu_s(resource.RUSAGE_SELF) - cpu + _cpu_s(resource.RUSAGE_CHILDREN)  # workers: their whole life
    sets = {name: getattr(splits, name) for name in SLICE_SETS}
    folders = list(get_layout("brats").find_subjects(config.root))
    return {
        "wall_s": wall,
        "cpu_s": cpu,  # of the loading process and its workers: what a busy shared machine does not inflate
        "rss_baseline_mib": baseline,
        "peak_rss_mib": _max_rss_mib(resource.RUSAGE_SELF),
        "peak_rss_largest_worker_mib": _max_rss_mib(resource.RUSAGE_CHILDREN),
        "subjects": {split: len(ids) for split, ids in assign_subjects(folders, config).items()},
        "slices": {name: 0 if s is None else len(s) for name, s in sets.items()},
        "set_bytes": {
            name: 0 if s is None else s.images.nbytes + s.brain.nbytes + s.labels.nbytes for name, s in sets.items()
        },
        "cache_bytes": sum(p.stat().st_size for p in Path(job["cache"]).iterdir()),
    }


def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    """:func:`measure` in a new interpreter (its progress bar on this terminal)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.bench_preprocessing", "--job", json.dumps(job)],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def reading(root: Path, n_subjects: int) -> dict[str, float]:
    """Serial seconds per subject to inflate its .nii.gz files alone and to read them (:func:`read_volume`)."""
    layout = get_layout("brats")
    folders = layout.find_subjects(root)
    subjects = sorted(folders)[:n_subjects]
    paths = [p for s in subjects for p in layout.subject_files(s, folders[s], MODALITIES).paths]
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        gzip.decompress(path.read_bytes())
    inflate, inflate_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        read_volume(path)
    read, read_cpu = time.perf_counter() - start, time.process_time() - cpu
    n = len(subjects)
    return {"subjects": n, "inflate_s_per_subject": inflate / n, "inflate_cpu_s_per_subject": inflate_cpu / n,
            "read_s_per_subject": read / n, "read_cpu_s_per_subject": read_cpu / n}  # fmt: skip


def extrapolate(run: dict[str, Any], n_target: int = TARGET_SUBJECTS) -> dict[str, Any]:
    """A build of ``n_target`` subjects split like ``configs/dataset/brats.yaml`` (seeded, 0.79/0.10/0.11), with
    the run's time per subject and slices per subject of each split; the cache and the memory of a cache hit
    above its interpreter's baseline scale with the slice bytes."""
    ids = [f"s{i}" for i in range(n_target)]
    target = {split: len(v) for split, v in seeded_split(ids, DatasetConfig.split_fractions, 0).items()}
    sets = {}
    for name, (split, _) in SLICE_SETS.items():
        per_subject = run["slices"][name] / run["subjects"][split]
        per_slice = run["set_bytes"][name] / max(run["slices"][name], 1)
        sets[name] = {"slices": round(per_subject * target[split]), "bytes": per_subject * target[split] * per_slice}
    data = sum(s["bytes"] for s in sets.values())
    scale = data / sum(run["set_bytes"].values())
    hit = run["cache_load"]
    range_slices = run["slice_range"][1] - run["slice_range"][0]
    train_bound = range_slices * target["train"] * run["set_bytes"]["train"] / run["slices"]["train"]
    return {
        "subjects": target,
        "wall_s": run["wall_s"] / sum(run["subjects"].values()) * n_target,
        "cpu_s": run["cpu_s"] / sum(run["subjects"].values()) * n_target,
        "sets": sets,
        "in_memory_gib": data / 2**30,
        "train_bound_gib": train_bound / 2**30,  # every slice of the range healthy: an upper bound for train
        "cache_gib": run["cache_bytes"] * scale / 2**30,
        "cache_load_peak_rss_gib": (hit["rss_baseline_mib"] + (hit["peak_rss_mib"] - hit["rss_baseline_mib"]) * scale)
        / 1024,
    }


def build_peak_rss(runs: list[dict[str, Any]], data_bytes: float) -> float | None:
    """Peak RSS (GiB) of a build holding ``data_bytes`` of slices, from a line ``peak = fixed + slope * slice bytes``
    fitted on builds of one pool at two or more sizes (same subjects and volumes read, different slice bytes: the
    fixed part is the interpreter and the volumes in flight); None with fewer sizes."""
    if len({run["size"] for run in runs}) < 2:
        return None
    held = [sum(run["set_bytes"].values()) / MIB for run in runs]
    slope, fixed = np.polyfit(held, [run["peak_rss_mib"] for run in runs], 1)
    return float(fixed + slope * data_bytes / MIB) / 1024


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    models = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return {"cpu": models[0] if models else platform.processor(), "usable_cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="a BraTS 2021 layout folder (real or synthetic)")
    parser.add_argument("--size", type=int, nargs="+", default=[64, 128], help="image_size values")
    parser.add_argument("--slice-range", type=int, nargs=2, default=[70, 90], metavar=("START", "STOP"))
    parser.add_argument("--pools", nargs="+", choices=list(POOLS), default=list(POOLS))
    parser.add_argument("--workers", type=int, default=None, help="load_workers of the pools (default: the CPUs)")
    parser.add_argument("--max-subjects", type=int, default=None, help="the first N subjects only (sorted ids)")
    parser.add_argument("--read-subjects", type=int, default=20, help="subjects of the serial reading timing")
    parser.add_argument("--tmp", type=Path, default=None, help="where the caches are built (deleted afterwards)")
    parser.add_argument("--out", type=Path, default=Path("preprocessing.json"))
    parser.add_argument("--job", help=argparse.SUPPRESS)  # internal: one measurement in this interpreter
    args = parser.parse_args(argv)
    if args.job:
        print(json.dumps(measure(json.loads(args.job))))
        return
    if args.root is None or not args.root.is_dir():
        parser.error(f"--root {args.root}: expected a folder in the BraTS 2021 layout")
    results: dict[str, Any] = {"machine": machine(), "root": str(args.root), "workers": args.workers, "runs": []}
    results["reading"] = reading(args.root, args.read_subjects)
    for size in args.size:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            for pool in args.pools:
                cache = Path(tmp) / pool
                cache.mkdir()
                job = {"root": str(args.root), "size": size, "slice_range": args.slice_range, "cache": str(cache),
                       "pool": pool, "workers": args.workers, "max_subjects": args.max_subjects}  # fmt: skip
                run = {"size": size, "pool": pool, "slice_range": args.slice_range, **_run_child(job)}
                run["n"] = sum(run["subjects"].values())
                run["subjects_per_s"] = run["n"] / run["wall_s"]
                # the share of NIfTI reading (inflation, parsing, float32) in the CPU time of a subject
                run["read_cpu_share"] = results["reading"]["read_cpu_s_per_subject"] * run["n"] / run["cpu_s"]
                run["cache_load"] = _run_child(job)  # the same call again: a cache hit
                run["extrapolated"] = extrapolate(run)
                results["runs"].append(run)
                same_pool = [r for r in results["runs"] if r["pool"] == pool]
                for r in same_pool:
                    r["extrapolated"]["build_peak_rss_gib"] = build_peak_rss(
                        same_pool, r["extrapolated"]["in_memory_gib"] * 2**30
                    )
                print(f"size {size} {pool}: {run['subjects_per_s']:.2f} subjects/s, peak RSS {run['peak_rss_mib']:.0f}"
                      f" MiB, cache {run['cache_bytes'] / MIB:.0f} MiB", flush=True)  # fmt: skip
                args.out.write_text(json.dumps(results, indent=2))
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
