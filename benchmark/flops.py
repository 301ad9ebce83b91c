"""FLOPs and the machine's compute limit: what the fastest possible inference would cost.

* :func:`count_flops` (from :mod:`methods.measure`): FLOPs of any callable, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and attention; element-wise work and
  FFTs count 0, so this is the network part).
* :func:`measured_throughput`: the device's achieved FLOP/s on a large fp32 matmul and on a 3x3 convolution
  of UNet-like shape; ``(NFE x forward FLOPs) / throughput`` is the compute-bound time of an inference.

FLOPs of a method's own networks at other sizes are the method's business (its ``cost_studies``).
"""

from __future__ import annotations

from typing import Any

import torch

from methods.measure import Timer, count_flops


def measured_throughput(device: torch.device, timer: Timer, repeats: int = 3) -> dict[str, float]:
    """Achieved GFLOP/s of an fp32 1024² matmul and of a 3x3 conv (8 x 64 ch x 64² px) on ``device``."""
    a = torch.randn(1024, 1024, device=device)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device).eval()
    x = torch.randn(8, 64, 64, 64, device=device)
    result = {}
    with torch.inference_mode():
        for name, fn in (("matmul", lambda: a @ a), ("conv3x3", lambda: conv(x))):
            flops = count_flops(fn)
            seconds = timer.repeat(fn, repeats, warmup=2).median
            result[f"{name}_gflops_per_s"] = flops / seconds / 1e9
    return result


def flops_rows(device: torch.device, timer: Timer) -> list[dict[str, Any]]:
    """Result rows: the measured throughput of the device (one row, ``record = "throughput"``)."""
    return [{"record": "throughput", "title": "Measured throughput", **measured_throughput(device, timer)}]
