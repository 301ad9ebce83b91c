"""Training curves written live, per cell: a CSV and/or TensorBoard events (the run's ``logger`` key).

The training loop hands every validation record (``step``, ``train_loss``, ``val_loss``) to a
:class:`TrainLogger` as soon as it exists; each record is written and flushed at once, so that a user can
watch a run of hours (``tail -f train.csv``, or ``tensorboard --logdir <paths.logs>``). Files are opened on the
first record only: a cell that reloads its checkpoint leaves an earlier training's log as it was, while a
cell that trains again starts its log afresh.

TensorBoard is optional (``pip install tensorboard``); asking for it without the package is a config error.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

#: ``logger`` values and the sinks each writes.
LOGGER_SINKS: dict[str, tuple[str, ...]] = {
    "csv": ("csv",),
    "tensorboard": ("tensorboard",),
    "both": ("csv", "tensorboard"),
    "none": (),
}
#: Columns of ``train.csv`` (the loop's record fields, in this order).
CSV_COLUMNS: tuple[str, ...] = ("step", "train_loss", "val_loss")
CSV_NAME = "train.csv"


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package is installed)."""
    return importlib.util.find_spec("tensorboard") is not None


class TrainLogger:
    """Write each record under ``directory`` to the ``sinks`` (``csv``, ``tensorboard``) and flush it.

    A callable (the method's ``on_log``); :meth:`close` closes its files, and a closed logger takes no more
    records (reopening would start the CSV afresh).
    """

    def __init__(self, directory: Path, sinks: tuple[str, ...]) -> None:
        unknown = sorted(set(sinks) - {"csv", "tensorboard"})
        if unknown:
            raise ValueError(f"unknown training-log sink(s) {unknown}; expected csv and/or tensorboard")
        self.directory = directory
        self.sinks = sinks
        self._csv: IO[str] | None = None
        self._csv_writer: Any = None  # csv.writer's type is private to typeshed
        self._tensorboard: Any = None  # torch.utils.tensorboard.SummaryWriter, imported only when asked for
        self._closed = False

    def __call__(self, record: Mapping[str, float]) -> None:
        if self._closed:
            raise RuntimeError(f"training log {self.directory} is closed: it takes no more records")
        if "csv" in self.sinks:
            self._write_csv(record)
        if "tensorboard" in self.sinks:
            self._write_tensorboard(record)

    def _write_csv(self, record: Mapping[str, float]) -> None:
        if self._csv is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._csv = open(self.directory / CSV_NAME, "w", newline="")  # closed by close()
            self._csv_writer = csv.writer(self._csv)
            self._csv_writer.writerow(CSV_COLUMNS)
        self._csv_writer.writerow([_csv_value(record.get(column)) for column in CSV_COLUMNS])
        self._csv.flush()

    def _write_tensorboard(self, record: Mapping[str, float]) -> None:
        if self._tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency: imported only when asked for

            self._tensorboard = SummaryWriter(log_dir=str(self.directory))
        step = int(record["step"])
        for name in CSV_COLUMNS[1:]:
            value = record.get(name)
            if value is not None and math.isfinite(value):
                self._tensorboard.add_scalar(f"loss/{name.removesuffix('_loss')}", value, step)
        self._tensorboard.flush()

    def close(self) -> None:
        """Close the open files (none when no record came) and take no more records."""
        self._closed = True
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


def _csv_value(value: float | None) -> str:
    """A record field as CSV text: integers (steps) without a decimal point, floats in full, missing as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value) if isinstance(value, int) else repr(float(value))
