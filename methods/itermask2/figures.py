"""Figure of IterMask²'s mask shrinking (issue 3): per test slice, the input, its label, the mask after
every iteration and the final anomaly map. Plotting only; the masks come from the model's ``refine`` step
(:class:`~methods.itermask2.inference.RefinementModel`). Used by :meth:`IterMask2.diagnostic_figures` (the
runner writes it once per cell)."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure  # no pyplot: renders with Agg, leaves the user's backend alone

from datasets.slices import SliceSet
from methods.itermask2.inference import RefinementModel

MAX_MASK_COLUMNS = 8


FORMATS = ("png", "pdf")


def shrinking_figure(model: RefinementModel, slices: SliceSet, path: Path | str, title: str = "") -> list[Path]:
    """Write ``path`` as PNG and PDF (suffix replaced) with one row per slice of ``slices`` (keep it to a
    handful); returns the written paths.

    Columns: input, label, the masks of up to :data:`MAX_MASK_COLUMNS` iterations (evenly chosen, first
    and last always shown, each titled with its iteration and masked share of the brain), final map.
    """
    if model.refine is None:
        raise ValueError(f"{model.name}: no iterative masks to show (-spat is single-step)")
    batch = slices.to(model.device)
    x, result = model.refine(batch, True, False)
    history = torch.stack(result.history).cpu()  # [T, B, H, W]; stopped images repeat their final mask
    steps = _chosen_steps(len(history))
    anomaly = ((result.reconstruction - x).square() * batch.brain.clamp(0, 1)).cpu()
    brain_pixels = (slices.brain > 0).flatten(1).sum(1).clamp_min(1)
    n, columns = len(slices), 3 + len(steps)
    fig = Figure(figsize=(1.6 * columns, 1.7 * n))
    axes = fig.subplots(n, columns, squeeze=False)
    for i in range(n):
        panels = [(x[i].cpu(), "input", "gray"), (slices.labels[i].float(), "label", "gray")]
        for t in steps:  # history[t] is the mask after iteration t + 1; a stopped image keeps its last one
            share = float(history[t, i].sum()) / float(brain_pixels[i])
            name = f"it {t + 1}: {100 * share:.0f}%" if t < int(result.nfe[i]) else "(stopped)"
            panels.append((history[t, i].float(), name, "magma"))
        panels.append((anomaly[i], f"map (NFE {int(result.nfe[i])})", "inferno"))
        for ax, (image, name, cmap) in zip(axes[i], panels, strict=True):
            ax.imshow(image.numpy(), cmap=cmap)
            ax.set_title(name, fontsize=7)
            ax.axis("off")
    fig.suptitle(title or f"{model.name}: mask shrinking (τ = {model.tau:.3g})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path.with_suffix(f".{fmt}") for fmt in FORMATS]
    for target in written:
        fig.savefig(target, dpi=120)
    return written


def _chosen_steps(total: int) -> list[int]:
    if total <= MAX_MASK_COLUMNS:
        return list(range(total))
    picks = torch.linspace(0, total - 1, MAX_MASK_COLUMNS).round().long().unique()
    return picks.tolist()
