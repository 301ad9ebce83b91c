"""Run a method over a whole split in batches and collect its outputs on the CPU."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from tqdm.auto import tqdm

from datasets.slices import SliceSet
from methods.base import AnomalyMethod


@dataclass(frozen=True)
class Predictions:
    """A method's outputs for every slice of a split, in split order (CPU tensors)."""

    anomaly_maps: torch.Tensor  # [N, H, W] float32
    reconstructions: torch.Tensor | None  # [N, H, W] or None
    final_masks: torch.Tensor | None  # [N, H, W] or None
    nfe: torch.Tensor  # [N] network evaluations per slice
    seconds: float  # wall time of all predict calls (device synchronised)

    @property
    def ms_per_slice(self) -> float:
        return 1000.0 * self.seconds / max(len(self.nfe), 1)


def predict_split(
    method: AnomalyMethod, slices: SliceSet, batch_size: int, progress: bool = False, description: str = "predict"
) -> Predictions:
    """``method.predict`` over ``slices`` in batches; times the calls with device synchronisation."""
    maps, recs, masks, nfes = [], [], [], []
    seconds = 0.0
    for batch in tqdm(list(slices.batches(batch_size)), desc=description, disable=not progress, leave=False):
        batch = batch.to(method.device)
        _synchronise(method.device)
        start = time.perf_counter()
        out = method.predict(batch)
        _synchronise(method.device)
        seconds += time.perf_counter() - start
        _check_output_shape(out.anomaly_map, batch, method)
        maps.append(out.anomaly_map.float().cpu())
        recs.append(None if out.reconstruction is None else out.reconstruction.float().cpu())
        masks.append(None if out.final_mask is None else out.final_mask.cpu())
        nfes.append(out.nfe.cpu())
    # a method returns reconstructions (final masks) for every batch or for none: the first batch decides
    return Predictions(
        anomaly_maps=torch.cat(maps) if maps else torch.empty(0),
        reconstructions=None if not recs or recs[0] is None else torch.cat(cast(list[torch.Tensor], recs)),
        final_masks=None if not masks or masks[0] is None else torch.cat(cast(list[torch.Tensor], masks)),
        nfe=torch.cat(nfes) if nfes else torch.empty(0, dtype=torch.long),
        seconds=seconds,
    )


def assemble_predictions(parts: Sequence[tuple[Sequence[int], Predictions]], n: int) -> Predictions:
    """One set's predictions from predictions of disjoint parts of it: ``parts`` holds (positions in the set,
    the part's predictions in that order) and must cover positions ``0 .. n-1`` exactly once. Seconds add up."""
    order = torch.as_tensor([i for positions, _ in parts for i in positions], dtype=torch.long)
    if len(order) != n or not torch.equal(torch.sort(order).values, torch.arange(n)):
        raise ValueError(f"assemble_predictions: the parts' positions do not cover 0..{n - 1} exactly once")
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n)

    def join(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
        present = [t for t in tensors if t is not None and len(t)]
        if not present:
            return None
        if len(present) != sum(len(positions) > 0 for positions, _ in parts):
            raise ValueError("assemble_predictions: an output is given for some parts only")
        return torch.cat(present)[inverse]

    maps = join([p.anomaly_maps for _, p in parts])
    nfe = join([p.nfe for _, p in parts])
    assert maps is not None and nfe is not None  # n > 0 slices
    return Predictions(
        anomaly_maps=maps,
        reconstructions=join([p.reconstructions for _, p in parts]),
        final_masks=join([p.final_masks for _, p in parts]),
        nfe=nfe,
        seconds=sum(p.seconds for _, p in parts),
    )


def _check_output_shape(anomaly_map: torch.Tensor, batch: SliceSet, method: AnomalyMethod) -> None:
    expected = (len(batch), *batch.image_size)
    if tuple(anomaly_map.shape) != expected:
        raise ValueError(f"{method.display_name}: anomaly_map shape {tuple(anomaly_map.shape)}, expected {expected}")
    if not torch.isfinite(anomaly_map).all():
        raise FloatingPointError(f"{method.display_name}: anomaly map contains NaN or inf")


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
