"""Batch-size buckets for compiled networks: pad an eval-mode batch to the next power of two, slice the output.

A shape-specialised compiled forward (``torch.compile(dynamic=False)``, CUDA graphs) compiles once per input
shape. Forwards whose batch shrinks as images converge (IterMask²'s active set) would compile for every size;
padded to powers of two they compile at most ``log2(batch) + 1`` times. Padding is done only in eval mode,
where every network here treats the images of a batch independently (BatchNorm uses its running statistics),
so the sliced output equals the unpadded one. Training batches (fixed size, batch statistics) pass unpadded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def bucket_size(n: int) -> int:
    """The smallest power of two >= ``n`` (``n`` >= 1)."""
    if n < 1:
        raise ValueError(f"bucket_size: batch size {n} < 1")
    return 1 << (n - 1).bit_length()


class BucketedForward:
    """``forward`` of ``module`` with every batch-sized tensor argument padded (zeros) to :func:`bucket_size`
    rows in eval mode; tensor outputs (or tuples / lists of them) are cut back to the true batch."""

    def __init__(self, module: torch.nn.Module, forward: Callable[..., Any]) -> None:
        self.module = module
        self.forward = forward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.dim() > 0]
        if self.module.training or not tensors:
            return self.forward(*args, **kwargs)
        n = tensors[0].shape[0]
        size = bucket_size(n)
        if size == n:
            return self.forward(*args, **kwargs)

        def pad(a: Any) -> Any:
            if not isinstance(a, torch.Tensor) or a.dim() == 0 or a.shape[0] != n:
                return a
            return torch.cat([a, a.new_zeros((size - n, *a.shape[1:]))])

        out = self.forward(*map(pad, args), **{k: pad(v) for k, v in kwargs.items()})
        return _cut(out, n, size)


def _cut(out: Any, n: int, size: int) -> Any:
    if isinstance(out, torch.Tensor):
        return out[:n] if out.dim() > 0 and out.shape[0] == size else out
    if isinstance(out, tuple | list):
        return type(out)(_cut(o, n, size) for o in out)
    raise TypeError(f"BucketedForward: cannot cut a {type(out).__name__} output back to the batch (tensors only)")


def compile_bucketed(module: torch.nn.Module, backend: str | Callable[..., Any] = "inductor") -> None:
    """Compile ``module``'s forward for fixed shapes, behind :class:`BucketedForward` (in place; the
    state dict is unchanged, so checkpoints load either way). ``backend``: any ``torch.compile`` backend."""
    compiled = torch.compile(module.forward, dynamic=False, backend=backend)
    module.forward = BucketedForward(module, compiled)
