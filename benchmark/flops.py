"""FLOPs and the machine's compute limit: what the fastest possible inference would cost.

* :func:`count_flops`: FLOPs of any callable, counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matmuls, convolutions and attention; element-wise work and FFTs count 0, so this is the network part).
* :func:`unet_forward_flops`: one forward of IterMask²'s UNets (f1: 1 input channel, f2: 2) at the
  default (64 px, ``small``) and paper (128 px, ``paper``) sizes, per slice.
* :func:`measured_throughput`: the device's achieved FLOP/s on a large fp32 matmul and on a 3x3 convolution
  of UNet-like shape; ``(NFE x forward FLOPs) / throughput`` is the compute-bound time of an inference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from methods.nets.unet import UNet, UNetConfig

if TYPE_CHECKING:
    from benchmark.timing import Timer

#: (name, image size, UNet preset) of the two reference sizes.
UNET_SIZES: tuple[tuple[str, int, str], ...] = (("default", 64, "small"), ("paper", 128, "paper"))


def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs (multiply-add = 2) of the tensor operations ``fn`` runs."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def unet_forward_flops(size: int, preset: str, in_channels: int, device: torch.device) -> tuple[int, int]:
    """``(FLOPs of one forward per slice, parameters)`` of ``UNet(in_channels, 1, preset)`` at ``size`` px."""
    net = UNet(in_channels, 1, UNetConfig.preset(preset)).to(device).eval()
    x = torch.zeros(1, in_channels, size, size, device=device)
    return count_flops(lambda: net(x)), sum(p.numel() for p in net.parameters())


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
    """Result rows: one per (size, network) with its forward FLOPs, and one with the measured throughput."""
    rows: list[dict[str, Any]] = []
    for name, size, preset in UNET_SIZES:
        for network, channels in (("itermask2_f1", 1), ("itermask2_f2", 2)):
            flops, params = unet_forward_flops(size, preset, channels, device)
            rows.append({
                "record": "forward_flops", "size_name": name, "image_size": size, "net": preset,
                "network": network, "gflop_per_forward": flops / 1e9, "params": params,
            })  # fmt: skip
    rows.append({"record": "throughput", **measured_throughput(device, timer)})
    return rows
