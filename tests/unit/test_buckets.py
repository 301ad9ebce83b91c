"""Batch-size buckets of compiled networks (methods/buckets.py): padded eval batches give the unpadded outputs,
training batches pass as they are, and a shrinking batch compiles once per power of two."""

from __future__ import annotations

import pytest
import torch

from methods.buckets import BucketedForward, bucket_size, compile_bucketed


def _net() -> torch.nn.Module:
    """Conv + BatchNorm (non-trivial running statistics) + ReLU + Conv, in eval mode."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Conv2d(4, 1, 3, padding=1))
    bn = net[1]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    return net.eval()


class _Recorder:
    """A forward that records the batch sizes it is called with."""

    def __init__(self, forward) -> None:
        self.forward, self.sizes = forward, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        return self.forward(x)


def test_bucket_sizes_are_the_next_power_of_two() -> None:
    assert [bucket_size(n) for n in (1, 2, 3, 4, 5, 8, 9, 33)] == [1, 2, 4, 4, 8, 8, 16, 64]
    with pytest.raises(ValueError, match="batch size 0 < 1"):
        bucket_size(0)


def test_padded_eval_batches_give_the_unpadded_outputs() -> None:
    net = _net()
    recorder = _Recorder(net.forward)
    bucketed = BucketedForward(net, recorder)
    x = torch.randn(7, 2, 8, 8)
    with torch.no_grad():
        for n in (1, 3, 5, 7):
            expected = torch.cat([net(x[i : i + 1]) for i in range(n)])  # one image at a time: no padding
            out = bucketed(x[:n])
            assert out.shape == (n, 1, 8, 8)
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert recorder.sizes == [1, 4, 8, 8]


def test_training_batches_are_not_padded() -> None:
    net = _net().train()  # batch statistics: padding would change them
    recorder = _Recorder(net.forward)
    BucketedForward(net, recorder)(torch.randn(3, 2, 8, 8))
    assert recorder.sizes == [3]


def test_tensor_arguments_of_the_batch_are_padded_and_tuple_outputs_cut() -> None:
    seen = {}

    def forward(x: torch.Tensor, t: torch.Tensor, scale: torch.Tensor, name: str = "") -> tuple[torch.Tensor, ...]:
        seen.update(x=x.shape[0], t=t.shape[0], scale=scale.shape, name=name)
        return x * scale + t[:, None], scale

    module = torch.nn.Identity().eval()
    x, t, scale = torch.arange(3.0)[:, None], torch.tensor([10.0, 20.0, 30.0]), torch.tensor(2.0)
    out, kept = BucketedForward(module, forward)(x, t=t, scale=scale, name="n")
    assert seen == {"x": 4, "t": 4, "scale": torch.Size([]), "name": "n"}  # 0-d tensors and non-tensors pass
    assert out.tolist() == [[10.0], [22.0], [34.0]] and kept.item() == 2.0
    with pytest.raises(TypeError, match="cannot cut a dict output"):
        BucketedForward(module, lambda x: {"y": x})(x)


def test_compiled_forward_compiles_once_per_bucket() -> None:
    graphs: list[int] = []

    def counting_backend(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        graphs.append(1)
        return graph.forward  # run the captured graph eagerly: counts compilations without a C++ toolchain

    net = _net()
    x = torch.randn(8, 2, 8, 8)
    with torch.no_grad():
        expected = [net(x[:n]) for n in range(1, 9)]
        torch._dynamo.reset()
        compile_bucketed(net, backend=counting_backend)
        outputs = [net(x[:n]) for n in range(8, 0, -1)]  # a shrinking batch, as IterMask²'s active set
    assert len(graphs) == 4  # batch shapes 8, 4, 2, 1
    for n, out in zip(range(8, 0, -1), outputs, strict=True):
        torch.testing.assert_close(out, expected[n - 1], rtol=0, atol=1e-6)
    assert set(net.state_dict()) == set(_net().state_dict())  # checkpoints load into either form


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_inductor_compiled_bucketed_network_on_cuda_matches_eager() -> None:
    net = _net().cuda()
    x = torch.randn(8, 2, 8, 8, device="cuda")
    with torch.no_grad():
        expected = [net(x[:n]) for n in (8, 5, 3)]
        compile_bucketed(net)  # the default backend (inductor), as compute.compile=true
        outputs = [net(x[:n]) for n in (8, 5, 3)]
    for out, ref in zip(outputs, expected, strict=True):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
