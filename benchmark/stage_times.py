"""Wall time per stage of a cell (train, calibrate, predict each set, evaluate, ...), so that a run's records say
where its time goes (the report's time breakdown). On CUDA every stage boundary synchronises the device, so
asynchronous kernels are charged to the stage that launched them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch

PREFIX = "time_"
SUFFIX = "_s"


def stage_column(stage: str) -> str:
    """Row column of a stage's seconds, e.g. ``time_train_s``."""
    return f"{PREFIX}{stage}{SUFFIX}"


class StageTimes:
    """Seconds per named stage, accumulated (a stage entered twice adds up)."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body as stage ``name`` (device-synchronised before and after on CUDA)."""
        self._synchronise()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._synchronise()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def fields(self) -> dict[str, float]:
        """``{time_<stage>_s: seconds}`` in the order the stages were first entered."""
        return {stage_column(name): seconds for name, seconds in self.seconds.items()}

    def _synchronise(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
