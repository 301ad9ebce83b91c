"""Run-wide compute options (the ``compute`` config group): numeric precision, memory format, compilation.

One place for what the comparison runner and the timing harness both apply to a method, so a cell's numbers
and its timing come from the same numerics. ``precision`` changes the numbers and is part of a cell's
identity (:func:`precision_identity`: empty for fp32, so fp32 cells keep their keys); ``channels_last`` and
``compile`` change only speed and are recorded in the rows, not hashed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from methods.base import AnomalyMethod
from methods.buckets import compile_bucketed

PRECISIONS = ("fp32", "bf16")
COMPUTE_KEYS = ("precision", "channels_last", "compile")
DEFAULT_PRECISION = "fp32"


@dataclass(frozen=True)
class ComputeOptions:
    """The ``compute`` group (configs/config.yaml); checked by :func:`benchmark.config.compute_options`."""

    precision: str = DEFAULT_PRECISION  # fp32 | bf16 (autocast on the run's device)
    channels_last: bool = False  # channels_last memory format of every network
    compile: bool = False  # torch.compile of every network's forward, batch sizes bucketed in eval mode

    def fields(self) -> dict[str, Any]:
        """Row fields saying which options a cell ran with."""
        return {"precision": self.precision} | {f"compute.{k}": getattr(self, k) for k in ("channels_last", "compile")}

    def applied(self) -> dict[str, str]:
        """What :func:`apply_compute` and :func:`autocast` do with these options, per option (timing rows)."""
        compile_text = "on (eval batches bucketed to powers of two)" if self.compile else "off"
        return {"precision": self.precision, "channels_last": "on" if self.channels_last else "off",
                "compile": compile_text}  # fmt: skip


LOW_PRECISION_REVISION = 2
"""Revision of the low-precision training path, part of every non-fp32 cell's and checkpoint's identity. Revision 1
(up to commit ad586bb) fitted under an autocast region that cached its bf16 weight copies (:func:`autocast`), so its
bf16 networks did not learn: its cells and checkpoints must not be resumed."""


def precision_identity(precision: str) -> dict[str, str | int]:
    """What ``precision`` adds to a cell's (and a checkpoint's) identity: nothing for fp32 (its keys predate the
    option), the precision and :data:`LOW_PRECISION_REVISION` otherwise."""
    if precision == DEFAULT_PRECISION:
        return {}
    return {"precision": precision, "revision": LOW_PRECISION_REVISION}


def autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """bf16 autocast on ``device``'s type (CPU and CUDA both support it), or nothing for fp32.

    Without its weight cache: torch's cache casts each fp32 weight once per region and reuses that copy until the
    region exits, and the runner fits a whole cell in one region, so every forward would see the first step's
    weights (measured on the default run: bf16 losses stayed at their initial level, 14.2 against 0.022 in fp32).
    Uncached, each forward casts the weights it reads, whichever loop (the shared one or a method's own) updates
    them in between.
    """
    if precision == DEFAULT_PRECISION:
        return nullcontext()
    if precision != "bf16":
        raise ValueError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False)


def apply_compute(method: AnomalyMethod, options: ComputeOptions) -> None:
    """Put channels_last / compilation on the method's networks (in place, before fit)."""
    for net in method.networks():
        if options.channels_last:
            net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub omits memory_format=
        if options.compile:
            compile_bucketed(net)
