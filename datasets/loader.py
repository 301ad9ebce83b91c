"""Public entry point of the data side: :func:`load_splits` reads BraTS 2021, ATLAS v2.0 or ISLES 2015
from a user's folder and returns pre-processed, cached :class:`~datasets.slices.Splits`.

Per subject: find its files (:mod:`datasets.layouts`), read and check every volume in its release's
orientation (:func:`read_volume`, :func:`read_subject`, :mod:`datasets.orientation`), map and check the label
values (:mod:`datasets.labels`), brain mask and normalisation at raw resolution, pick the split's slices in
``slice_range``, resize with area averaging (:mod:`datasets.preprocess`). Train and val keep healthy
slices only. Every test subject contributes its whole *slab* (``test_slab``: every ``eval_slice_step``-th brain
slice of the range, lesion or not; healthy test subjects included), and the paper protocol's test slices
(``test_slices: largest | all``) are a view of it (``Splits.test``, positions ``Splits.test_view``), so one set of
predictions serves both. The validation subjects' lesion slices form a fourth set, ``val_labelled``
(protocol.md §7), selected like the test view. The result is cached per slice set (:mod:`datasets.cache`); a
second call with the same config and unchanged files reads no NIfTI volume.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import nibabel as nib
import numpy as np
import torch
from tqdm.auto import tqdm

from datasets.cache import cache_path, content_hash, load_slices, save_slices, source_fingerprint
from datasets.config import DatasetConfig, LoadPool
from datasets.errors import DatasetError
from datasets.labels import apply_label_map, check_label_map, check_label_values
from datasets.layouts import Layout, SubjectFiles, get_layout
from datasets.orientation import ORIENTATION_MODES, to_orientation
from datasets.preprocess import select_slices, slab_slices, slices_to_tensors
from datasets.slices import SliceSet, Splits
from datasets.splits import SPLIT_NAMES, assign_subjects

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

log = logging.getLogger(__name__)

Role = Literal["healthy", "lesion", "slab"]

SLICE_SETS: dict[str, tuple[str, Role]] = {
    "train": ("train", "healthy"),
    "val": ("val", "healthy"),
    "val_labelled": ("val", "lesion"),
    "test_slab": ("test", "slab"),
}
"""Slice set (a :class:`Splits` field) -> (subject split it comes from, which slices it keeps). ``Splits.test``
is not read separately: it is the paper-protocol view of ``test_slab``."""

OPTIONAL_SETS = frozenset({"val_labelled"})
"""Slice sets that may have no slice (then None in :class:`Splits`); the others must have one."""

MAX_WORKERS = 8
"""Default cap on the subjects pre-processed concurrently (``DatasetConfig.load_workers`` None)."""

LOAD_POOLS: tuple[LoadPool, ...] = ("thread", "process")


def load_splits(config: DatasetConfig, progress: bool = True) -> Splits:
    """Healthy train, healthy val, lesion test and labelled val slices of one dataset, pre-processed and
    cached, with the data hash of their content (computed when the cache is built, read on a cache hit).

    Args:
        config: dataset location, layout and pre-processing (:class:`~datasets.config.DatasetConfig`).
            Without ``cache_dir`` the cache goes to ``./.slice_cache`` under the current working
            directory, never into the dataset folder.
        progress: show a progress bar over subjects while pre-processing (not on a cache hit).

    Raises:
        DatasetError: bad config or bad data on disk; the message names the file and what was expected.
    """
    layout = get_layout(config.layout)
    _check_config(config, layout)
    root = Path(config.root)
    folders = layout.find_subjects(root)
    splits = assign_subjects(list(folders), config)
    files = {s: layout.subject_files(s, folders[s], config.modalities) for ids in splits.values() for s in ids}
    fingerprint = source_fingerprint(root, (p for f in files.values() for p in f.paths), splits)

    paths = {name: cache_path(config, name) for name in SLICE_SETS}
    cached = _load_cached(paths, fingerprint)
    if cached is not None:
        log.info("%s: slices loaded from cache %s", config.display_name, paths["train"].parent)
        return _splits(*cached, config)

    built, view = _build(config, splits, files, progress)
    data_hash = content_hash(built | {"test_view": _view_of(built, view)})
    for name in SLICE_SETS:
        save_slices(paths[name], built[name], fingerprint, data_hash, view if name == "test_slab" else None)
    return _splits(built, view, data_hash, config)


def _view_of(sets: dict[str, SliceSet | None], view: tuple[int, ...]) -> SliceSet:
    return cast(SliceSet, sets["test_slab"]).subset(list(view))


def _load_cached(
    paths: dict[str, Path], fingerprint: str
) -> tuple[dict[str, SliceSet | None], tuple[int, ...], str] | None:
    """Every slice set, the test view and the data hash from the cache, or None unless all files are valid and
    agree."""
    sets: dict[str, SliceSet | None] = {}
    hashes = set()
    view: tuple[int, ...] | None = None
    for name, path in paths.items():
        entry = load_slices(path, fingerprint)
        if entry is None:
            return None
        sets[name] = entry.slices
        hashes.add(entry.data_hash)
        view = entry.view if name == "test_slab" else view
    if len(hashes) != 1 or view is None:
        return None
    return sets, view, hashes.pop()


def _splits(slices: dict[str, SliceSet | None], view: tuple[int, ...], data_hash: str, config: DatasetConfig) -> Splits:
    # train, val and test_slab are never None here (_slice_set raises for an empty required set)
    return Splits(
        **cast(dict[str, Any], slices),
        test=_view_of(slices, view),
        test_view=view,
        name=config.display_name,
        preprocess_hash=config.preprocess_hash(),
        data_hash=data_hash,
    )


def _check_config(config: DatasetConfig, layout: Layout) -> None:
    layout.check_modalities(config.modalities)
    if not isinstance(config.image_size, int) or config.image_size < 1:
        raise DatasetError(f"image_size={config.image_size!r}; expected a positive integer")
    start, stop = config.slice_range
    if not (isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop):
        raise DatasetError(
            f"slice_range={tuple(config.slice_range)}; expected axial indices [start, stop) with 0 <= start < stop"
        )
    if config.test_slices not in ("largest", "all"):
        raise DatasetError(f"test_slices={config.test_slices!r}; expected 'largest' or 'all'")
    if not isinstance(config.eval_slice_step, int) or config.eval_slice_step < 1:
        raise DatasetError(f"eval_slice_step={config.eval_slice_step!r}; expected a positive integer")
    workers = config.load_workers
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise DatasetError(f"load_workers={workers!r}; expected a positive integer or null (the CPUs, at most 8)")
    if config.load_pool not in LOAD_POOLS:
        raise DatasetError(f"load_pool={config.load_pool!r}; expected one of {list(LOAD_POOLS)}")
    if config.orientation not in ORIENTATION_MODES:
        raise DatasetError(f"orientation={config.orientation!r}; expected one of {list(ORIENTATION_MODES)}")
    check_label_map(config.label_map, layout)


@dataclass(frozen=True)
class SubjectVolumes:
    """One subject at raw resolution, checked: normalised images (config order), brain and lesion."""

    images: list[np.ndarray]
    brain: np.ndarray
    lesion: np.ndarray


def read_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D float32 volume and its affine; a clear error for unreadable, non-3-D or non-finite data."""
    try:
        image = cast("SpatialImage", nib.load(path))  # nib.load is typed as returning the FileBasedImage base
        data = image.get_fdata(dtype=np.float32)
    except Exception as error:
        raise DatasetError(f"cannot read {path} ({type(error).__name__}: {error}); expected a NIfTI volume") from error
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DatasetError(f"{path}: shape {data.shape}; expected a 3-D volume")
    bad = data.size - int(np.count_nonzero(np.isfinite(data)))
    if bad:
        raise DatasetError(f"{path}: {bad} NaN/inf voxel(s); expected finite intensities")
    return data, image.affine


def read_subject(layout: Layout, files: SubjectFiles, config: DatasetConfig) -> SubjectVolumes:
    """Read and check every volume of a subject in the release's orientation (:mod:`datasets.orientation`),
    check they share one grid, map and check the label values, then brain mask and normalisation."""
    first = files.images[0]
    volumes = [_read_oriented(path, layout, config) for path in files.paths]
    shape = volumes[0][0].shape
    for path, (data, _) in zip(files.paths[1:], volumes[1:]):
        if data.shape != shape:
            raise DatasetError(
                f"{path}: shape {data.shape} differs from {first} {shape} (both in {layout.orientation} orientation); "
                f"expected every modality and the label of subject {files.subject} on one voxel grid"
            )
    raw = [data for data, _ in volumes[:-1]]
    mapping = check_label_map(config.label_map, layout)
    label = apply_label_map(volumes[-1][0], mapping)
    check_label_values(label, files.label, layout, mapped=bool(mapping))
    stop = config.slice_range[1]
    if shape[2] < stop:
        raise DatasetError(
            f"{first}: {shape[2]} axial slices; expected at least {stop} for slice_range {tuple(config.slice_range)}"
        )
    brain = layout.brain_mask(raw[0], volumes[0][1])
    if not brain.any():
        raise DatasetError(f"{first}: empty brain mask ({layout.brain_rule}); expected a brain in the volume")
    images = [layout.normalise(data, brain, str(path)) for path, data in zip(files.images, raw)]
    return SubjectVolumes(images, brain, label > 0)


def _read_oriented(path: Path, layout: Layout, config: DatasetConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_volume` with the voxel axes in the layout's orientation, or an error (``config.orientation``)."""
    data, affine = read_volume(path)
    return to_orientation(
        data,
        affine,
        path,
        expected=layout.orientation,
        release=layout.title,
        mode=config.orientation,
        dataset=f"{config.display_name} ({config.root})",
    )


class SubjectSlices(NamedTuple):
    """The slices one subject contributes to a slice set (``[k, C, S, S]``, ``[k, S, S]`` x 2, k indices) and,
    for its slab, the positions of its test-view slices among them."""

    images: torch.Tensor
    brain: torch.Tensor
    labels: torch.Tensor
    slice_index: list[int]
    view: list[int]


def preprocess_subject(
    layout: Layout, files: SubjectFiles, config: DatasetConfig, sets: Sequence[str]
) -> dict[str, SubjectSlices]:
    """The subject's slices for each slice set in ``sets`` (names of :data:`SLICE_SETS`), resized, from one
    read of its volumes. Lesion sets and the slab's view follow ``test_slices``; every set but train keeps every
    ``eval_slice_step``-th selected slice (:func:`~datasets.preprocess.slab_slices` for the slab)."""
    volumes = read_subject(layout, files, config)
    out = {}
    for name in sets:
        step = 1 if name == "train" else config.eval_slice_step
        role = SLICE_SETS[name][1]
        view = select_slices(volumes.lesion, volumes.brain, config.slice_range, "lesion", config.test_slices, step)
        if role == "slab":
            z = slab_slices(volumes.brain, config.slice_range, step, include=view)
            _check_slab(files, volumes, z, config)
        else:
            z = select_slices(volumes.lesion, volumes.brain, config.slice_range, role, config.test_slices, step)
        tensors = slices_to_tensors(
            volumes.images, volumes.brain, volumes.lesion, z, config.image_size, config.binarize_brain
        )
        out[name] = SubjectSlices(*tensors, z, [z.index(v) for v in view] if role == "slab" else [])
    return out


def _check_slab(files: SubjectFiles, volumes: SubjectVolumes, z: list[int], config: DatasetConfig) -> None:
    """A test subject's slab must have brain, and every lesion voxel of the range must lie on a brain slice
    (a lesion on a slice without brain cannot be predicted and would silently count as missed)."""
    start, stop = config.slice_range
    if not z:
        raise DatasetError(
            f"{files.images[0]}: test subject {files.subject} has no brain voxel in slice_range {(start, stop)}; "
            "expected brain on its slab (check the slice range and the brain mask)"
        )
    lesion_z = start + np.flatnonzero(volumes.lesion[:, :, start:stop].any(axis=(0, 1)))
    outside = [int(k) for k in lesion_z if not volumes.brain[:, :, k].any()]
    if outside:
        raise DatasetError(
            f"{files.label}: test subject {files.subject} has lesion voxels on slice(s) {outside[:5]} without any "
            f"brain voxel ({files.images[0].name} is 0 there); expected lesions inside the brain mask"
        )


def _preprocess_job(config: DatasetConfig, files: SubjectFiles, sets: Sequence[str]) -> dict[str, SubjectSlices]:
    """:func:`preprocess_subject` from picklable arguments (a process pool's task)."""
    return preprocess_subject(get_layout(config.layout), files, config, sets)


def load_workers(config: DatasetConfig, n_subjects: int) -> int:
    """Subjects pre-processed concurrently: ``config.load_workers``, else the CPUs this process may use (its
    affinity: a cluster job's share, not the node's) capped at :data:`MAX_WORKERS`; never more than subjects."""
    return max(1, min(config.load_workers or min(MAX_WORKERS, usable_cpus()), n_subjects))


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (a cluster job's share, not the node's) where the OS
    tells it, else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pool(config: DatasetConfig, workers: int) -> Executor:
    if config.load_pool == "process":  # spawned: no fork of a process that may hold threads
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    return ThreadPoolExecutor(workers)


def _preprocess_all(
    config: DatasetConfig, splits: dict[str, list[str]], files: dict[str, SubjectFiles], progress: bool
) -> dict[str, list[tuple[str, SubjectSlices]]]:
    """Per slice set, (subject, slices) of every subject of its split in split order; each subject read once,
    ``load_workers`` at a time (in the calling thread for 1), with a progress bar (rate and ETA)."""
    jobs = [(split, subject) for split in SPLIT_NAMES for subject in splits[split]]
    sets_of = {split: [name for name, (source, _) in SLICE_SETS.items() if source == split] for split in SPLIT_NAMES}
    args = ([config] * len(jobs), [files[subject] for _, subject in jobs], [sets_of[split] for split, _ in jobs])

    parts: dict[str, list[tuple[str, SubjectSlices]]] = {name: [] for name in SLICE_SETS}
    workers = load_workers(config, len(jobs))
    pool = _pool(config, workers) if workers > 1 else None
    log.info("%s: pre-processing %d subjects, %d at a time%s", config.display_name, len(jobs), workers,
             "" if pool is None else f" ({config.load_pool} pool)")  # fmt: skip
    bar = tqdm(total=len(jobs), desc=f"{config.display_name}: pre-processing", unit="subject", disable=not progress)
    results = map(_preprocess_job, *args) if pool is None else pool.map(_preprocess_job, *args)
    try:
        with bar:
            for (_, subject), result in zip(jobs, results):
                for name, slices in result.items():
                    parts[name].append((subject, slices))
                bar.update()
    finally:  # on an error, do not wait for the remaining subjects
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return parts


def _build(
    config: DatasetConfig, splits: dict[str, list[str]], files: dict[str, SubjectFiles], progress: bool
) -> tuple[dict[str, SliceSet | None], tuple[int, ...]]:
    """Every slice set, and the positions of the paper-protocol test view in ``test_slab``."""
    parts = _preprocess_all(config, splits, files, progress)
    healthy_test = [subject for subject, result in parts["test_slab"] if not result.view]
    if healthy_test:
        log.info(
            "%s: %d of %d test subjects have no lesion voxel in slice_range %s: in the whole-volume evaluation "
            "(test_slab) as healthy subjects, not in the lesion-slice view: %s",
            config.display_name, len(healthy_test), len(parts["test_slab"]), tuple(config.slice_range),
            healthy_test[:10],
        )  # fmt: skip
    no_lesion = [subject for subject, result in parts["val_labelled"] if not result.slice_index]
    if no_lesion:
        log.info(
            "%s: %d of %d val subjects have no lesion voxel in slice_range %s and are not in val_labelled: %s",
            config.display_name, len(no_lesion), len(parts["val_labelled"]), tuple(config.slice_range),
            no_lesion[:10],
        )  # fmt: skip
    slice_sets = {name: _slice_set(name, kept, config) for name, kept in parts.items()}
    view = _test_view(parts["test_slab"], config)
    n_labelled = 0 if slice_sets["val_labelled"] is None else len(slice_sets["val_labelled"])
    # train, val and test_slab are never None (_slice_set raises for an empty required set)
    train, val, slab = (cast(SliceSet, slice_sets[name]) for name in ("train", "val", "test_slab"))
    log.info(
        "%s: %d train / %d val healthy slices, %d val lesion slices (val_labelled), %d test lesion slices "
        "(test_slices=%s) in a slab of %d test slices (%d subjects, %d healthy)",
        config.display_name, len(train), len(val), n_labelled, len(view), config.test_slices, len(slab),
        len(parts["test_slab"]), len(healthy_test),
    )  # fmt: skip
    return slice_sets, view


def _test_view(slab_parts: list[tuple[str, SubjectSlices]], config: DatasetConfig) -> tuple[int, ...]:
    """Positions in the concatenated slab of every subject's test-view slices; an error without any."""
    positions: list[int] = []
    offset = 0
    for _, result in slab_parts:
        positions += [offset + k for k in result.view]
        offset += len(result.slice_index)
    if not positions:
        where = f"slice_range {tuple(config.slice_range)} among the {len(slab_parts)} test subject(s)"
        raise DatasetError(f"{config.root}: no lesion slice in {where}; expected at least one")
    return tuple(positions)


def _slice_set(name: str, parts: list[tuple[str, SubjectSlices]], config: DatasetConfig) -> SliceSet | None:
    """The subjects' slices concatenated in order; None for an optional set without any slice (with an
    info log), a :class:`DatasetError` for a required one."""
    kept = [(subject, r) for subject, r in parts if r.slice_index]
    split, role = SLICE_SETS[name]
    if not kept:
        kind = {"lesion": "lesion", "slab": "brain"}.get(role, "healthy (lesion-free, non-empty brain)")
        where = f"slice_range {tuple(config.slice_range)} among the {len(parts)} {split} subject(s)"
        if name in OPTIONAL_SETS:
            log.info("%s: no %s slice in %s: no %s set (its threshold protocol cannot run)",
                     config.display_name, kind, where, name)  # fmt: skip
            return None
        raise DatasetError(f"{config.root}: no {kind} slice in {where}; expected at least one")
    return SliceSet(
        images=torch.cat([r.images for _, r in kept]),
        brain=torch.cat([r.brain for _, r in kept]),
        labels=torch.cat([r.labels for _, r in kept]),
        modalities=tuple(config.modalities),
        subjects=tuple(subject for subject, r in kept for _ in r.slice_index),
        slice_index=tuple(z for _, r in kept for z in r.slice_index),
    )
