"""methods/nets/dropout.py: nn.Dropout's layer with a cheaper CPU mask: its drop rate, scale, gradient, layout."""

from __future__ import annotations

import math

import pytest
import torch

from methods.nets.dropout import Dropout, keep_factors

P = 0.1
DRAWN_P = round(P * 2**16) / 2**16  # the rate the layer draws: p on a grid of 2**-16


def test_mask_drops_p_of_the_elements_within_binomial_noise_and_scales_by_the_exact_keep_probability() -> None:
    torch.manual_seed(0)
    n = 2**20
    factors = keep_factors(torch.empty(n), P)
    kept = factors != 0
    dropped = 1.0 - kept.double().mean().item()
    assert abs(dropped - P) < 5 * math.sqrt(P * (1 - P) / n)  # 5 binomial standard deviations (0.0015)
    assert abs(DRAWN_P - P) <= 2**-17
    assert factors.dtype == torch.float32
    assert (factors[kept] == factors[kept][0]).all()
    assert factors[kept][0].item() == pytest.approx(1 / (1 - DRAWN_P), rel=1e-7)


def test_the_four_quarters_of_a_word_are_drawn_independently() -> None:
    """All four 16-bit quarters of every 64-bit word are used, and independently: neighbours agree as often as
    independent draws would ((1 - p)^2 + p^2), and each quarter drops p of its elements."""
    torch.manual_seed(1)
    kept = keep_factors(torch.empty(2**20), P).view(-1, 4) != 0
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        agree = (kept[:, a] == kept[:, b]).double().mean().item()
        assert agree == pytest.approx((1 - P) ** 2 + P**2, abs=0.005)
    assert torch.allclose(1 - kept.double().mean(0), torch.full((4,), P, dtype=torch.float64), atol=0.005)


def test_a_rate_just_below_one_keeps_a_finite_scale() -> None:
    torch.manual_seed(7)
    factors = keep_factors(torch.empty(2**20), 1 - 2**-20)  # rounds to 2**16 drop levels: one level is kept
    assert set(factors.unique().tolist()) == {0.0, 2.0**16}  # about 16 of 2**20 elements kept, scaled by 2**16


def test_training_output_is_the_input_scaled_on_kept_elements_and_zero_elsewhere() -> None:
    torch.manual_seed(2)
    x = torch.rand(4, 8, 16, 16) + 0.5  # no zeros in the input: a zero in the output means dropped
    y = Dropout(P).train()(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - DRAWN_P))
    assert 0.05 < 1 - kept.double().mean().item() < 0.15


def test_gradient_is_the_same_mask_and_scale() -> None:
    torch.manual_seed(3)
    x = (torch.rand(2, 4, 8, 8) + 0.5).requires_grad_()
    y = Dropout(P).train()(x)
    (y * 3.0).sum().backward()
    assert x.grad is not None
    expected = torch.where(y != 0, torch.full_like(x, 3.0 / (1 - DRAWN_P)), 0.0)
    torch.testing.assert_close(x.grad, expected)


def test_channels_last_input_gives_channels_last_output_and_gradient() -> None:
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = Dropout(P).train()(x)
    y.sum().backward()
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert x.grad is not None and x.grad.is_contiguous(memory_format=torch.channels_last)


def test_eval_mode_and_zero_rate_are_the_identity_and_seeds_reproduce_training() -> None:
    x = torch.randn(2, 4, 8, 8)
    assert Dropout(P).eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    torch.manual_seed(4)
    first = Dropout(P).train()(x)
    torch.manual_seed(4)
    torch.testing.assert_close(Dropout(P).train()(x), first)


def test_bf16_input_gives_bf16_output_rounded_once_from_the_float32_product() -> None:
    torch.manual_seed(6)
    x = (torch.rand(2, 4, 8, 8) + 0.5).to(torch.bfloat16)
    y = Dropout(P).train()(x)
    assert y.dtype == torch.bfloat16
    kept = y != 0
    scale = 1 / (1 - DRAWN_P)
    torch.testing.assert_close(y[kept], (x[kept].float() * scale).to(torch.bfloat16), rtol=0, atol=0)


def test_odd_sizes_and_strided_inputs_fall_back_to_torch_dropout() -> None:
    torch.manual_seed(5)
    odd = torch.rand(3, 5, 7) + 0.5
    y = Dropout(0.5).train()(odd)
    assert ((y == 0) | torch.isclose(y, 2 * odd)).all() and (y == 0).any()
    strided = (torch.rand(4, 8, 8) + 0.5)[:, ::2]
    z = Dropout(0.5).train()(strided)
    assert ((z == 0) | torch.isclose(z, 2 * strided)).all() and (z == 0).any()


def test_rate_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 0 <= p < 1"):
        Dropout(1.0)
