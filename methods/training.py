"""One training loop for every method that trains networks on healthy slices.

A method supplies a loss on a batch; this module owns batch sampling (seeded), the optimiser step,
periodic validation loss, early stopping with restoration of the best weights, the progress bar, and the
live hand-off of every history record to the caller's ``on_log`` sink (training curves).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from datasets.slices import SliceSet
from methods.base import TrainBudget, TrainLog, TrainRecordSink

BatchLoss = Callable[[SliceSet, torch.Generator], torch.Tensor]


def train_networks(
    modules: Sequence[nn.Module],
    loss_on_batch: BatchLoss,
    train: SliceSet,
    val: SliceSet,
    budget: TrainBudget,
    optimizer: torch.optim.Optimizer,
    seed: int,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    description: str = "train",
    progress: bool = True,
    on_log: TrainRecordSink | None = None,
) -> TrainLog:
    """Train ``modules`` by minimising ``loss_on_batch`` over random batches of ``train``.

    ``loss_on_batch(batch, generator)`` gets a batch on the method's device and a seeded generator
    for any randomness it needs (noise, masks), so a run is reproducible. Every ``budget.val_every``
    steps the mean loss over ``val`` (same function, fixed generator seed) is recorded; with
    ``budget.patience`` set, training stops after that many validations without improvement and the
    best weights are restored. Each validation record (``step``, ``train_loss``, ``val_loss``) goes to
    ``log.history`` and, as soon as it exists, to ``on_log``.
    """
    if len(train) == 0:
        raise ValueError("train split has no slices: nothing to fit on")
    device = next(modules[0].parameters()).device
    train = train.to(device)  # once: a step then only gathers its batch on the device
    _prefer_fast_update(optimizer)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    device_generator = _device_generator(device, seed)
    log = TrainLog()
    best_state: list[dict[str, Any]] | None = None
    since_best = 0
    start = time.perf_counter()
    bar = tqdm(range(budget.steps), desc=description, disable=not progress, leave=False)
    for step in bar:
        _set_mode(modules, training=True)
        index = torch.randint(len(train), (min(budget.batch_size, len(train)),), generator=generator)
        loss = loss_on_batch(train.subset(index), device_generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{description}: loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        log.steps = step + 1
        log.final_train_loss = loss.item()
        if (step + 1) % budget.val_every == 0 or step + 1 == budget.steps:
            val_loss = validation_loss(modules, loss_on_batch, val, budget.batch_size, seed, device)
            record = {"step": step + 1, "train_loss": log.final_train_loss, "val_loss": val_loss}
            log.history.append(record)
            if on_log is not None:
                on_log(dict(record))  # a copy: the sink cannot alter the history
            bar.set_postfix(loss=f"{log.final_train_loss:.4f}", val=f"{val_loss:.4f}")
            if not val_loss >= log.best_val_loss:  # also true while best is NaN
                log.best_val_loss = val_loss
                best_state = [_state_copy(m) for m in modules]
                since_best = 0
            else:
                since_best += 1
                if budget.patience is not None and since_best >= budget.patience:
                    break
    bar.close()
    if best_state is not None:
        for module, state in zip(modules, best_state):
            module.load_state_dict(state)
    _set_mode(modules, training=False)
    log.seconds = time.perf_counter() - start
    return log


@torch.no_grad()
def validation_loss(
    modules: Sequence[nn.Module],
    loss_on_batch: BatchLoss,
    val: SliceSet,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> float:
    """Mean loss over the whole validation split in eval mode, with a fixed noise seed."""
    if len(val) == 0:
        return math.nan
    _set_mode(modules, training=False)
    generator = _device_generator(device, seed + 1)
    total, count = 0.0, 0
    for batch in val.batches(batch_size):
        total += loss_on_batch(batch.to(device), generator).item() * len(batch)
        count += len(batch)
    return total / count


def _state_copy(module: nn.Module) -> dict[str, Any]:
    """A copy of the module's state: a detached clone per tensor (no generic Python deep copy)."""
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in module.state_dict().items()}


FUSED_OPTIMIZERS = (torch.optim.Adam, torch.optim.AdamW)
"""Optimisers whose fused kernel :func:`_prefer_fast_update` picks (one kernel per parameter, CPU and CUDA)."""


def _prefer_fast_update(optimizer: torch.optim.Optimizer) -> None:
    """Use the fused update (Adam, AdamW on CPU or CUDA floating-point parameters), else the multi-tensor
    (``foreach``) one, where the optimiser left the choice open (``foreach`` and ``fused`` None).

    torch picks ``foreach`` by default only for CUDA parameters, and on the CPU ``foreach`` still runs several small
    kernels per tensor; the fused kernel does the whole update of a tensor in one pass (AdamW over the two small
    UNets of IterMask², 1.55 M parameters in 384 tensors: 9.8 ms a step with ``foreach``, 4.9 ms fused; 1 CPU
    thread). Same update rule; the numbers differ from the loop by float rounding only.
    """
    for group in optimizer.param_groups:
        if group.get("foreach", False) is not None or group.get("fused"):
            continue
        params = group["params"]
        fusable = type(optimizer) in FUSED_OPTIMIZERS and group.get("fused", False) is None
        if fusable and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
            group["fused"] = True
        else:
            group["foreach"] = True


def _device_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _set_mode(modules: Sequence[nn.Module], training: bool) -> None:
    for module in modules:
        module.train(training)
