"""Measuring cost on a device: :class:`Timer` (CUDA events on GPU, ``perf_counter`` elsewhere), the statistics
of repeated timings (:class:`TimingStats`) and FLOP counting (:func:`count_flops`).

They live in ``methods`` (not ``benchmark``) so that a method's own cost studies
(:meth:`methods.base.AnomalyMethod.cost_studies`) and the benchmark's timing harness use the same clock
without an upward import; ``benchmark.timing`` and ``benchmark.flops`` import them from here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class TimingStats:
    """Median and quartiles (linear interpolation) of repeated measurements, in seconds."""

    samples: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("TimingStats needs at least one sample")

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def q1(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def q3(self) -> float:
        return float(np.percentile(self.samples, 75))

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def scaled(self, factor: float) -> TimingStats:
        """The same statistics of ``sample * factor`` (e.g. per slice, per step, in ms)."""
        return TimingStats(tuple(s * factor for s in self.samples))


class Timer:
    """Wall time of a callable on ``device``: CUDA events on GPU, ``perf_counter`` on CPU.

    ``repeats`` / ``warmup`` are the run's protocol, used by :meth:`repeat` when a call does not give its own
    (so a method's cost study times the way the harness was configured to).
    """

    def __init__(self, device: torch.device, repeats: int = 5, warmup: int = 1) -> None:
        self.device = device
        self.repeats = repeats
        self.warmup = warmup

    def once(self, fn: Callable[[], Any]) -> float:
        """Seconds of one call, with all queued device work before and inside it completed."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0
        start_s = time.perf_counter()
        fn()
        return time.perf_counter() - start_s

    def repeat(self, fn: Callable[[], Any], repeats: int | None = None, warmup: int | None = None) -> TimingStats:
        """``warmup`` untimed calls, then ``repeats`` timed ones (None: the timer's own settings)."""
        repeats = self.repeats if repeats is None else repeats
        warmup = self.warmup if warmup is None else warmup
        if repeats < 1 or warmup < 0:
            raise ValueError(f"Timer.repeat: repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
        for _ in range(warmup):
            self.once(fn)
        return TimingStats(tuple(self.once(fn) for _ in range(repeats)))


def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs (multiply-add = 2) of the tensor operations ``fn`` runs, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and attention; element-wise work and
    FFTs count 0, so this is the network part)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
