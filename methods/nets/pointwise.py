"""A 1x1 convolution computed as a matrix product over the channel axis: ``nn.Conv2d(kernel_size=1)``'s layer.

oneDNN's CPU kernel for a 1x1 convolution to ONE output channel (the reconstruction heads of the AE and the DAE)
is slow: forward plus backward of ``[32, 32, 64, 64] -> 1`` channel took 30 ms of a 195 ms AE training step
(1 thread, NCHW; 13 ms of the backward still with channels_last); the same product as ``F.linear`` over the
channels of the channels_last activation is one small matrix multiply. The parameters are ``nn.Conv2d``'s
(``weight [out, in, 1, 1]``, ``bias``), so state dicts and checkpoints do not change; the output equals the
convolution's up to float rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, kernel_size=1)``, evaluated as a matmul over channels."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, C, H, W] -> [B, H, W, C] is a view without copy for channels_last input; the result comes back in
        # channels_last layout with the usual [B, out, H, W] shape
        return F.linear(x.permute(0, 2, 3, 1), self.weight.flatten(1), self.bias).permute(0, 3, 1, 2)
