"""Cyclic-UNet: the cycle uses the right modalities (spies on the two networks), it is unavailable on
single-modality data, and the map is (x - B(F(x)))² on the eroded brain."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from datasets.slices import SliceSet
from methods import MethodContext, TrainBudget, create_method
from methods.base import MethodUnavailable
from methods.cyclic_unet import CyclicUNet
from methods.postprocess import erode
from tests.toy_data import toy_slices

SLICES = toy_slices(4, 32)


def _context(modality: str = "flair", available: tuple[str, ...] = ("flair", "t1")) -> MethodContext:
    return MethodContext(modality, 32, torch.device("cpu"), seed=0, available_modalities=available)


def _four_modalities(slices: SliceSet) -> SliceSet:
    """The toy slices with two more channels (t1ce, t2) that are shifted copies, all distinct."""
    images = torch.cat([slices.images, slices.images + 10.0], dim=1)
    modalities = ("flair", "t1", "t1ce", "t2")
    return SliceSet(images, slices.brain, slices.labels, modalities, slices.subjects, slices.slice_index)


class _Spy(torch.nn.Module):
    """Records every input; outputs ``input + offset`` (a learnable scalar offset)."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = torch.nn.Parameter(torch.tensor(offset))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return x + self.offset


@pytest.mark.parametrize(
    ("modality", "middle", "expected_middle"),
    [
        ("flair", None, "t1"),
        ("t1", None, "flair"),
        ("t2", None, "flair"),
        ("t1ce", None, "flair"),
        ("flair", "t2", "t2"),
    ],
)
def test_training_pairs_input_and_middle_modalities(modality: str, middle: str | None, expected_middle: str) -> None:
    slices = _four_modalities(SLICES)
    method = create_method("cyclic_unet", _context(modality, slices.modalities), middle=middle)
    assert method.middle == expected_middle
    method.forward_net, method.backward_net = _Spy(1.0), _Spy(-2.0)
    x, y = slices.channel(modality)[:, None], slices.channel(expected_middle)[:, None]

    loss = method.translation_loss(slices)

    (f_in,), (b_in,) = method.forward_net.inputs, method.backward_net.inputs
    assert torch.equal(f_in, x), "F must read the input modality"
    assert torch.equal(b_in, y), "B must be trained on the real middle modality, not on F's output"
    expected = F.mse_loss(x + 1.0, y) + F.mse_loss(y - 2.0, x)  # targets: middle for F, input for B
    torch.testing.assert_close(loss, expected)


def test_each_direction_gets_gradient_only_from_its_own_loss() -> None:
    method = create_method("cyclic_unet", _context())
    method.forward_net, method.backward_net = _Spy(0.5), _Spy(0.5)
    method.translation_loss(SLICES).backward()
    x, y = SLICES.channel("flair"), SLICES.channel("t1")
    torch.testing.assert_close(method.forward_net.offset.grad, 2 * (x + 0.5 - y).mean())
    torch.testing.assert_close(method.backward_net.offset.grad, 2 * (y + 0.5 - x).mean())


def test_prediction_cycles_the_input_only_and_scores_squared_error_on_eroded_brain() -> None:
    method = create_method("cyclic_unet", _context(), erosion_at_128=8)  # radius 2 at 32 px
    method.forward_net, method.backward_net = _Spy(1.0), _Spy(-3.0)
    test = SLICES.subset([0, 1])
    test = SliceSet(test.images.clone(), test.brain, test.labels, test.modalities, test.subjects, test.slice_index)
    test.images[:, 1] = float("nan")  # the middle modality is not read at test time
    out = method.predict(test)

    x = test.channel("flair")
    (f_in,), (b_in,) = method.forward_net.inputs, method.backward_net.inputs
    assert torch.equal(f_in[:, 0], x) and torch.equal(b_in, f_in + 1.0)
    eroded = erode(test.brain > 0.5, 2)
    assert eroded.sum() < (test.brain > 0.5).sum()
    assert out.anomaly_map[~eroded].eq(0).all()
    torch.testing.assert_close(out.anomaly_map, 4.0 * eroded.float())  # (x - (x + 1 - 3))² = 4
    torch.testing.assert_close(out.reconstruction, x - 2.0)
    assert torch.equal(out.nfe, torch.full((2,), 2, dtype=torch.long))


def test_unavailable_without_the_middle_modality() -> None:
    with pytest.raises(MethodUnavailable, match="Cyclic-UNet needs paired 't1' and 'flair'"):
        create_method("cyclic_unet", _context("t1", available=("t1",)))

    # also when the training split itself is single-modality
    single = SliceSet(SLICES.images[:, 1:], SLICES.brain, SLICES.labels, ("t1",), SLICES.subjects, SLICES.slice_index)
    method = create_method("cyclic_unet", _context("t1"))
    budget = TrainBudget(steps=1, batch_size=2, lr=1e-4)
    with pytest.raises(MethodUnavailable, match="provides only \\('t1',\\)"):
        method.fit(single, single, budget)


def test_middle_must_differ_from_input() -> None:
    with pytest.raises(ValueError, match="middle modality must differ"):
        create_method("cyclic_unet", _context("flair"), middle="flair")


def test_row_label_and_shared_unet() -> None:
    from methods.nets.unet import UNet

    method = create_method("cyclic_unet", _context())
    assert method.display_name == "Cyclic-UNet"
    assert isinstance(method, CyclicUNet)
    assert all(type(net) is UNet for net in method.networks()) and len(method.networks()) == 2
