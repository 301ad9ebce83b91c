"""On-disk cache of pre-processed slices: one file per slice set, named by the pre-processing config hash.

A cache file holds one slice set's :class:`~datasets.slices.SliceSet` (or an explicit "empty" marker for
an optional set that has no slice), the :func:`content_hash` of all the dataset's slice sets, and a
*source fingerprint*: the subjects of every split plus the relative path, size and modification time of
every NIfTI file read, and :data:`CACHE_FORMAT`. A file whose fingerprint differs (data replaced or
regenerated in place, split changed, pre-processing code changed) is not used and gets rebuilt. The name holds
no path, so a copy of data and cache that keeps file sizes and modification times (``rsync -a``, ``cp -p``) hits
the cache at its new place; two different data sets of one name and configuration in one cache folder would
rebuild each other's files (give each its own ``dataset.name`` or ``cache_dir``). Files
are written to a temporary name and moved into place with ``os.replace``, so a crash never leaves a
half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO, NamedTuple

import torch

from datasets.config import DatasetConfig
from datasets.slices import SliceSet

log = logging.getLogger(__name__)

CACHE_FORMAT = 3
"""Bump when the pre-processing code changes what a cache file holds; old files are then rebuilt.
2: a fourth slice set (``val_labelled``, possibly empty) and the data hash in every file.
3: the test split as a whole slab per subject (``test_slab``) with the positions of the paper-protocol view."""

DATA_HASH_LENGTH = 12

TEMPORARY_SUFFIX = ".tmp"  # atomic_write's temporary files: .<name>.<random>.tmp next to the target
ORPHAN_AGE_S = 3600.0  # a temporary file untouched this long belongs to a killed run

DEFAULT_CACHE_DIR = ".slice_cache"
"""Used under the current working directory when ``config.cache_dir`` is None: never inside the
user's dataset folder."""


def cache_dir(config: DatasetConfig) -> Path:
    return Path(config.cache_dir) if config.cache_dir is not None else Path.cwd() / DEFAULT_CACHE_DIR


def cache_path(config: DatasetConfig, split: str) -> Path:
    """``<cache_dir>/<dataset name>__<split>__<preprocess hash>.pt``."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", config.display_name)
    return cache_dir(config) / f"{name}__{split}__{config.preprocess_hash()}.pt"


def source_fingerprint(root: Path, paths: Iterable[Path], splits: dict[str, list[str]]) -> str:
    """Hash of the split assignment and of (relative path, size, mtime) of every source file."""
    files = []
    for path in paths:
        stat = path.stat()
        files.append([os.path.relpath(path, root), stat.st_size, stat.st_mtime_ns])
    payload = json.dumps({"format": CACHE_FORMAT, "splits": splits, "files": files}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class CachedSet(NamedTuple):
    """One slice set read from the cache (None: the set has no slice), the dataset's data hash and, for a set
    that has one, the positions of a view of it (the test slab's paper-protocol slices)."""

    slices: SliceSet | None
    data_hash: str
    view: tuple[int, ...] | None = None


def content_hash(sets: Mapping[str, SliceSet | None]) -> str:
    """Short SHA-256 (:data:`DATA_HASH_LENGTH` hex digits) of the content of every slice set: images,
    brain and label bytes (with dtype and shape), modalities, subjects and slice indices, sets in name order.

    Why: result identity. The pre-processing hash names the config, not the files; this names the data a
    result was computed on (result cells, checkpoints and stored test sets are keyed on it by the runner),
    so a volume edited in place changes it and regenerating identical files does not. Computed once when
    the cache is built (it reads every byte) and stored in every cache file; a cache hit only reads it.
    """
    digest = hashlib.sha256()
    for name in sorted(sets):
        slices = sets[name]
        digest.update(f"\0{name}\0".encode())
        if slices is None:
            digest.update(b"none")
            continue
        for tensor in (slices.images, slices.brain, slices.labels):
            array = tensor.detach().cpu().contiguous().numpy()
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.data.cast("B"))  # array.data is memoryview(array)
        digest.update(json.dumps([slices.modalities, slices.subjects, slices.slice_index]).encode())
    return digest.hexdigest()[:DATA_HASH_LENGTH]


def save_slices(
    path: Path, slices: SliceSet | None, fingerprint: str, data_hash: str, view: tuple[int, ...] | None = None
) -> None:
    """Write one slice set's cache file atomically (:func:`atomic_write`); ``None`` is stored as an
    explicit empty set (a :class:`SliceSet` cannot be empty). ``view``: positions of a view of the set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, object] = {
        "fingerprint": fingerprint,
        "data_hash": data_hash,
        "empty": slices is None,
        "view": None if view is None else list(view),
    }
    if slices is not None:
        payload |= _tensors(slices)
    atomic_write(path, lambda f: torch.save(payload, f))


def _tensors(slices: SliceSet) -> dict[str, object]:
    return {
        "images": slices.images,
        "brain": slices.brain,
        "labels": slices.labels,
        "modalities": slices.modalities,
        "subjects": slices.subjects,
        "slice_index": slices.slice_index,
    }


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(f)`` into a temporary file next to ``path``, fsync, then ``os.replace`` onto ``path``:
    readers see the old file or the complete new one, and a failure leaves no temporary file. The file gets
    the permissions of a normal ``open`` under the process umask (``mkstemp`` alone would make it 0600, so
    colleagues on a shared cluster file system could not read results, caches or checkpoints)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_orphan_temporaries(folder: Path, max_age_s: float = ORPHAN_AGE_S) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` below ``folder`` that a killed run left behind
    (untouched for more than ``max_age_s``: a live writer of a parallel job keeps writing to its file, so
    younger ones are left alone); returns what was removed."""
    if not folder.is_dir():
        return []
    now = time.time()
    removed = []
    for path in folder.rglob(f".*{TEMPORARY_SUFFIX}"):
        try:
            if now - path.stat().st_mtime > max_age_s:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # finished or removed by another job meanwhile
            continue
    if removed:
        log.info("removed %d orphan temporary file(s) of interrupted runs under %s", len(removed), folder)
    return removed


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once: os.umask can only be read by setting it


def load_slices(path: Path, fingerprint: str) -> CachedSet | None:
    """The cached slice set and data hash, or None when the file is missing, unreadable or from other
    source data (or an older :data:`CACHE_FORMAT`)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["fingerprint"] != fingerprint:
            log.info("slice cache %s was built from other data or code; rebuilding", path)
            return None
        if payload["empty"]:
            return CachedSet(None, payload["data_hash"])
        slices = SliceSet(
            images=payload["images"],
            brain=payload["brain"],
            labels=payload["labels"],
            modalities=tuple(payload["modalities"]),
            subjects=tuple(payload["subjects"]),
            slice_index=tuple(payload["slice_index"]),
        )
        view = payload["view"]
        return CachedSet(slices, payload["data_hash"], None if view is None else tuple(int(i) for i in view))
    except Exception as error:  # corrupt or foreign file: rebuild rather than fail
        log.warning("slice cache %s unreadable (%s); rebuilding", path, error)
        return None
