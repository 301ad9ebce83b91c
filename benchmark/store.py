"""Append-only results store: one JSON file of rows per finished cell, written atomically.

A cell is one (dataset, modality, method, variant, seed) run evaluated under every configured
threshold protocol. Its rows file is written last, via a temporary file and ``os.replace``, so that a
crash or Ctrl-C never leaves a half-written result, a rerun skips exactly the cells whose rows file
exists, and parallel writers (hydra multirun, SLURM array jobs) never corrupt each other: distinct
cells write distinct files, and a rename is atomic on POSIX file systems.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datasets.cache import atomic_write


class ResultsStore:
    """Rows under ``<root>/rows/<cell>.json``; per-cell arrays under ``<root>/arrays/<cell>.npz``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.rows_dir = self.root / "rows"
        self.arrays_dir = self.root / "arrays"
        self.config_path = self.root / "experiment.yaml"  # resolved run config, written by the runner
        self.environment_path = self.root / "environment.json"  # package versions, written by the runner

    def has(self, cell: str) -> bool:
        """True when the cell finished (its rows file exists)."""
        return (self.rows_dir / f"{cell}.json").exists()

    def write(self, cell: str, rows: list[dict[str, Any]], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Store the arrays (if any) first, then the rows; the rows file marks the cell finished."""
        if arrays:
            self.arrays_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.arrays_dir / f"{cell}.npz", lambda f: np.savez_compressed(f, **arrays))
        payload = json.dumps([_jsonable(r) for r in rows], indent=1, allow_nan=False)
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.rows_dir / f"{cell}.json", lambda f: f.write(payload.encode()))

    def write_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Store arrays shared by several cells (e.g. the test inputs and labels), atomically."""
        self.arrays_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.arrays_dir / f"{name}.npz", lambda f: np.savez_compressed(f, **arrays))

    def has_arrays(self, name: str) -> bool:
        return (self.arrays_dir / f"{name}.npz").exists()

    def cells(self) -> list[str]:
        """Names of all finished cells, sorted."""
        return sorted(p.stem for p in self.rows_dir.glob("*.json"))

    def rows(self) -> pd.DataFrame:
        """All rows of all finished cells as one DataFrame (empty if none)."""
        records: list[dict[str, Any]] = []
        for cell in self.cells():
            records.extend(json.loads((self.rows_dir / f"{cell}.json").read_text()))
        return pd.DataFrame.from_records(records)

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


