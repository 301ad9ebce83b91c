"""PointwiseConv2d is nn.Conv2d(kernel_size=1): same parameters, same outputs and gradients, any input layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from methods.nets.conv_ae import DenseBottleneckAE
from methods.nets.pointwise import PointwiseConv2d


@pytest.mark.parametrize("out_channels", [1, 5])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_pointwise_equals_a_1x1_convolution_forward_and_backward(
    out_channels: int, layout: torch.memory_format
) -> None:
    generator = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(7, out_channels, kernel_size=1)
    pointwise = PointwiseConv2d(7, out_channels)
    pointwise.load_state_dict(conv.state_dict())  # the same parameter names and shapes
    x = torch.randn(3, 7, 6, 5, generator=generator).contiguous(memory_format=layout)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_conv, out_pointwise = conv(a), pointwise(b)
    assert out_pointwise.shape == out_conv.shape == (3, out_channels, 6, 5)
    torch.testing.assert_close(out_pointwise, out_conv)
    upstream = torch.randn(out_conv.shape, generator=generator)
    out_conv.backward(upstream)
    out_pointwise.backward(upstream)
    torch.testing.assert_close(b.grad, a.grad)
    torch.testing.assert_close(pointwise.weight.grad, conv.weight.grad)
    torch.testing.assert_close(pointwise.bias.grad, conv.bias.grad)


def test_ae_with_the_pointwise_head_loads_a_plain_conv_head_state() -> None:
    """Checkpoints written with ``nn.Conv2d`` heads keep loading (same keys and shapes)."""
    ae = DenseBottleneckAE(32, widths=(4, 8), latent_dim=6)
    state = ae.state_dict()
    plain = nn.Conv2d(4, 1, kernel_size=1)
    assert {k: v.shape for k, v in plain.state_dict().items()} == {
        k.removeprefix("head."): v.shape for k, v in state.items() if k.startswith("head.")
    }
    ae.load_state_dict(state)
    assert ae(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)
