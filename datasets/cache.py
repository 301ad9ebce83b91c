"""On-disk cache of pre-processed slices: one file per split, named by the pre-processing config hash.

A cache file holds a split's :class:`~datasets.slices.SliceSet` and a *source fingerprint*: the
subjects of every split plus the relative path, size and modification time of every NIfTI file read,
and :data:`CACHE_FORMAT`. A file whose fingerprint differs (data replaced or regenerated in place,
split changed, pre-processing code changed) is not used and gets rebuilt. Files are written to a
temporary name and moved into place with ``os.replace``, so a crash never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import torch

from datasets.config import DatasetConfig
from datasets.slices import SliceSet

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bump when the pre-processing code changes what a cache file holds; old files are then rebuilt."""

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


def save_slices(path: Path, slices: SliceSet, fingerprint: str) -> None:
    """Write one split's cache file atomically (:func:`atomic_write`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": fingerprint,
        "images": slices.images,
        "brain": slices.brain,
        "labels": slices.labels,
        "modalities": slices.modalities,
        "subjects": slices.subjects,
        "slice_index": slices.slice_index,
    }
    atomic_write(path, lambda f: torch.save(payload, f))


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write(f)`` into a temporary file next to ``path``, fsync, then ``os.replace`` onto ``path``:
    readers see the old file or the complete new one, and a failure leaves no temporary file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_slices(path: Path, fingerprint: str) -> SliceSet | None:
    """The cached split, or None when the file is missing, unreadable or from other source data."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["fingerprint"] != fingerprint:
            log.info("slice cache %s was built from other data or code; rebuilding", path)
            return None
        return SliceSet(
            images=payload["images"],
            brain=payload["brain"],
            labels=payload["labels"],
            modalities=tuple(payload["modalities"]),
            subjects=tuple(payload["subjects"]),
            slice_index=tuple(payload["slice_index"]),
        )
    except Exception as error:  # corrupt or foreign file: rebuild rather than fail
        log.warning("slice cache %s unreadable (%s); rebuilding", path, error)
        return None
