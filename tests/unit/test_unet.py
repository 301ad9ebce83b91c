"""The shared guided-diffusion-style UNet (methods/nets/unet.py)."""

from __future__ import annotations

import pytest
import torch

from methods.nets.unet import AttentionBlock, UNet, UNetConfig


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("in_channels", [1, 2])
def test_paper_config_has_the_papers_parameter_count(in_channels: int) -> None:
    # the issue: ~5.9 M used parameters (IterMask² f1 has 1 input channel, f2 has 2)
    assert abs(_count(UNet(in_channels, 1, UNetConfig.preset("paper"))) - 5.9e6) <= 0.1 * 5.9e6


def test_presets_and_their_errors() -> None:
    assert UNetConfig.preset("paper") == UNetConfig()
    small = UNetConfig.preset("small")
    assert (small.base_channels, small.channel_mult, small.num_res_blocks, small.attention_downsample) == (
        16,
        (1, 2, 2, 4),
        1,
        (),
    )
    assert _count(UNet(1, 1, small)) < _count(UNet(1, 1, UNetConfig())) / 4
    with pytest.raises(ValueError, match="unknown UNet preset 'huge'.*paper, small"):
        UNetConfig.preset("huge")
    with pytest.raises(ValueError, match="norm"):
        UNetConfig(norm="layer")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [64, 128])
def test_output_shape_equals_input_shape(size: int) -> None:
    net = UNet(2, 1, UNetConfig.preset("paper")).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 2, size, size)).shape == (1, 1, size, size)


def test_attention_sits_at_32_16_8_px_and_in_the_middle_at_128() -> None:
    net = UNet(1, 1, UNetConfig.preset("paper")).eval()
    sizes: list[int] = []
    for module in net.modules():
        if isinstance(module, AttentionBlock):
            module.register_forward_hook(lambda m, inputs, out: sizes.append(inputs[0].shape[-1]))
    with torch.no_grad():
        net(torch.randn(1, 1, 128, 128))
    # down: 2 blocks at each of 32, 16, 8 px; middle: 1 at 8 px; up: 3 blocks at each level
    assert sorted(sizes) == sorted([32] * 5 + [16] * 5 + [8] * 6)


def test_eval_mode_output_of_an_image_does_not_depend_on_its_batch() -> None:
    # IterMask² drops converged images from the batch: that must not change the others' outputs
    torch.manual_seed(0)
    net = UNet(2, 1, UNetConfig.preset("small"))
    net.train()
    for _ in range(2):  # move BatchNorm running statistics and break the zero init
        net(torch.randn(4, 2, 32, 32)).sum().backward()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.01 * torch.randn_like(p))
    net.eval()
    x = torch.randn(5, 2, 32, 32)
    with torch.no_grad():
        full = net(x)
        part = net(x[[1, 3]])
    assert full.abs().max() > 0
    torch.testing.assert_close(part, full[[1, 3]], rtol=1e-5, atol=1e-6)


def test_group_norm_variant_and_bad_sizes() -> None:
    net = UNet(
        1,
        3,
        UNetConfig(
            base_channels=8, channel_mult=(1, 2), num_res_blocks=1, norm="group", attention_downsample=(2,), num_heads=2
        ),
    )
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="divisible by 2"):
        net(torch.randn(1, 1, 15, 16))
