"""Append-only results store: one JSON file of rows per finished cell, written atomically.

A cell is one (dataset, modality, method configuration, seed) run evaluated under every configured
threshold protocol. Its rows file is written last, via a temporary file and ``os.replace``, so that a
crash or Ctrl-C never leaves a half-written result, a rerun skips exactly the cells whose rows file
exists, and parallel writers (hydra multirun, SLURM array jobs) never corrupt each other: distinct
cells write distinct files, a rename is atomic on POSIX file systems, and a store-wide advisory lock
(``filelock`` on ``<root>/.write.lock``: an OS lock, or with ``soft_lock`` a lock file for cluster file systems
whose locks do not work) makes a cell's arrays and rows one unit, so two jobs that write the same cell leave the
arrays and rows of one of them, never a mix. Every job also keeps its own
config and environment record under ``jobs/``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock, SoftFileLock

from benchmark.schema import PER_IMAGE_COLUMNS
from datasets.cache import atomic_write


class ResultsStore:
    """Rows under ``<root>/rows/<cell>.json``; per-image records under ``<root>/per_image/<cell>.parquet``
    (columns: :data:`benchmark.schema.PER_IMAGE_COLUMNS`); per-subject whole-volume records under
    ``<root>/per_subject/<cell>.parquet``; per-cell arrays under ``<root>/arrays/<cell>.npz``."""

    def __init__(self, root: Path | str, soft_lock: bool = False) -> None:
        self.root = Path(root)
        self.soft_lock = soft_lock  # a lock file instead of an OS lock (NFS/Lustre without working locks)
        self.rows_dir = self.root / "rows"
        self.arrays_dir = self.root / "arrays"
        self.per_image_dir = self.root / "per_image"
        self.per_subject_dir = self.root / "per_subject"
        self.config_path = self.root / "experiment.yaml"  # resolved run config, written by the runner
        self.environment_path = self.root / "environment.json"  # package versions, written by the runner
        self.jobs_dir = self.root / "jobs"  # one folder per job (run or multirun cell) with its config

    def has(self, cell: str) -> bool:
        """True when the cell finished (its rows file exists)."""
        return (self.rows_dir / f"{cell}.json").exists()

    def write(
        self,
        cell: str,
        rows: list[dict[str, Any]],
        arrays: dict[str, np.ndarray] | None = None,
        per_image: pd.DataFrame | None = None,
        per_subject: pd.DataFrame | None = None,
    ) -> None:
        """Store the arrays, per-image and per-subject records (if any) first, then the rows; the rows file marks
        the cell finished."""
        payload = json.dumps([_jsonable(r) for r in rows], indent=1, allow_nan=False)
        with self._write_lock():
            if arrays:
                self.arrays_dir.mkdir(parents=True, exist_ok=True)
                atomic_write(self.arrays_dir / f"{cell}.npz", lambda f: np.savez_compressed(f, **_npz(arrays)))
            if per_image is not None:
                self.per_image_dir.mkdir(parents=True, exist_ok=True)
                atomic_write(self.per_image_dir / f"{cell}.parquet", lambda f: per_image.to_parquet(f, index=False))
            if per_subject is not None:
                self.per_subject_dir.mkdir(parents=True, exist_ok=True)
                atomic_write(self.per_subject_dir / f"{cell}.parquet", lambda f: per_subject.to_parquet(f, index=False))
            self.rows_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.rows_dir / f"{cell}.json", lambda f: f.write(payload.encode()))

    def write_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Store arrays shared by several cells (e.g. the test inputs and labels), atomically."""
        self.arrays_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.arrays_dir / f"{name}.npz", lambda f: np.savez_compressed(f, **_npz(arrays)))

    def has_arrays(self, name: str) -> bool:
        return (self.arrays_dir / f"{name}.npz").exists()

    def record_job(self, config_yaml: str, environment: dict[str, str]) -> Path:
        """Keep this job's resolved config and environment in its own ``jobs/<time>__<host>__<pid>_*``
        folder (never shared, so parallel jobs cannot collide) and refresh the latest-run copies
        ``experiment.yaml`` / ``environment.json`` atomically (last writer wins, never half-written)."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        job = Path(tempfile.mkdtemp(dir=self.jobs_dir, prefix=f"{stamp}__{socket.gethostname()}__{os.getpid()}_"))
        env = json.dumps(environment, indent=1).encode()
        for path, payload in (
            (job / "config.yaml", config_yaml.encode()),
            (job / "environment.json", env),
            (self.config_path, config_yaml.encode()),
            (self.environment_path, env),
        ):
            # atomic_write calls the writer before returning, so the late-bound payload is this iteration's
            atomic_write(path, lambda f: f.write(payload))  # noqa: B023
        return job

    def jobs(self) -> list[Path]:
        """Folders of the jobs recorded so far, oldest first."""
        return sorted(p for p in self.jobs_dir.glob("*") if p.is_dir()) if self.jobs_dir.exists() else []

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Exclusive store-wide lock while a cell's arrays and rows are replaced (released on exit or crash; a
        soft lock left by a killed job must be deleted by hand: filelock then says which file)."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock_class = SoftFileLock if self.soft_lock else FileLock
        with lock_class(self.root / ".write.lock"):
            yield

    def cells(self) -> list[str]:
        """Names of all finished cells, sorted."""
        return sorted(p.stem for p in self.rows_dir.glob("*.json"))

    def rows(self, cells: Iterable[str] | None = None) -> pd.DataFrame:
        """The rows of ``cells`` (default: every finished cell) as one DataFrame (empty if none)."""
        records: list[dict[str, Any]] = []
        for cell in self.cells() if cells is None else [c for c in cells if self.has(c)]:
            records.extend(json.loads((self.rows_dir / f"{cell}.json").read_text()))
        return pd.DataFrame.from_records(records)

    def per_image(self, cells: Iterable[str] | None = None) -> pd.DataFrame:
        """The per-image records of ``cells`` (default: every finished cell) as one tidy DataFrame."""
        names = self.cells() if cells is None else list(cells)
        paths = [self.per_image_dir / f"{c}.parquet" for c in names]
        frames = [pd.read_parquet(p) for p in paths if p.exists()]
        if not frames:
            return pd.DataFrame(columns=list(PER_IMAGE_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def per_subject(self, cells: Iterable[str] | None = None) -> pd.DataFrame:
        """The per-subject whole-volume records of ``cells`` (default: every finished cell); empty if none."""
        names = self.cells() if cells is None else list(cells)
        frames = [pd.read_parquet(p) for p in (self.per_subject_dir / f"{c}.parquet" for c in names) if p.exists()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays stored with a cell (anomaly maps, reconstructions, ...) or by ``write_arrays``."""
        with np.load(self.arrays_dir / f"{name}.npz") as data:
            return {k: data[k] for k in data.files}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """NaN/inf → None (strict JSON), numpy scalars → Python scalars."""
    return {key: _scalar(value) for key, value in row.items()}


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_scalar(v) for v in value]
    if isinstance(value, dict):
        return {k: _scalar(v) for k, v in value.items()}
    return value


def _npz(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """``arrays`` as ``np.savez_compressed`` keywords (its stub also types ``allow_pickle`` as a keyword, so a
    ``**dict[str, ndarray]`` does not type-check)."""
    return arrays
