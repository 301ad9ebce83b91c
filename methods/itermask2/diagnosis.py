"""Why IterMask² segments what it does: where its masks go over the iterations, how f2 errs on healthy tissue
under inference-sized masks, and f1's single-step map (the ``-spat`` map of the same networks) beside the
final map. These are the checks behind the comparison of the full method with ``-spat``.

Reached through :meth:`IterMask2.diagnose`, which the generic command ``python -m benchmark.diagnose``
calls (it trains or reloads the cell, then writes ``diagnosis.{md,json}``). The functions here get the
trained model as callables (:class:`~methods.itermask2.inference.RefinementModel`) and the map scores
(oracle-global Dice, pixel AUROC) as a :data:`~methods.base.MapScorer` from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from datasets.slices import SliceSet
from methods.base import MapScorer
from methods.itermask2.inference import RefinementModel, fill_with_noise, first_step_mask
from methods.itermask2.masks import random_training_masks


@dataclass(frozen=True)
class MaskOverlap:
    """The masks of one iteration over a whole test set (pooled pixels)."""

    iteration: int
    lesion_recall: float  # share of lesion pixels (in the brain) still masked
    precision: float  # share of masked pixels that are lesion
    brain_share: float  # share of brain pixels masked


@dataclass(frozen=True)
class HealthyMaskError:
    """f2's squared error on the masked pixels of healthy slices, for one kind of mask."""

    mask: str
    brain_share: float  # mean share of the brain masked
    mean_error: float
    p80_error: float
    share_above_tau: float  # masked pixels that would stay masked after one shrink step


@dataclass(frozen=True)
class MapScore:
    """An anomaly map scored with the suite's oracle_global protocol and pixel AUROC (by the caller's scorer)."""

    name: str
    dice: float
    auroc: float


def mask_trajectory(history: Sequence[torch.Tensor], labels: torch.Tensor, region: torch.Tensor) -> list[MaskOverlap]:
    """Pooled overlap of every iteration's masks (``history[i]``: bool ``[N, H, W]``) with the lesion labels."""
    lesion = (labels > 0.5) & region
    n_lesion, n_brain = float(lesion.sum()), float(region.sum())
    rows = []
    for i, mask in enumerate(history):
        masked = mask & region
        hit = float((masked & lesion).sum())
        size = float(masked.sum())
        rows.append(MaskOverlap(i, hit / max(n_lesion, 1.0), hit / max(size, 1.0), size / max(n_brain, 1.0)))
    return rows


@torch.inference_mode()
def healthy_mask_errors(
    model: RefinementModel,
    val: SliceSet,
    keep_fractions: Sequence[float] = (0.3, 0.6, 1.0),
    seed: int = 0,
    batch_size: int = 32,
) -> list[HealthyMaskError]:
    """f2 on healthy validation slices under training-distribution masks (what τ is calibrated on) and under
    first-step masks that cover the top ``keep_fractions`` of f1's in-brain error (what inference gives it).

    If f2 reconstructs healthy tissue under the large inference masks much worse than under training masks,
    healthy pixels stay above τ, the mask stalls on healthy tissue and the final map carries f2's errors there.
    """
    if model.tau is None or model.masked_model is None:
        raise ValueError("healthy_mask_errors needs a calibrated IterMask² with f2 (not -spat)")
    generator = torch.Generator(device=model.device).manual_seed(seed)
    names = ["training masks"] + [f"first step, top {f:.0%} of f1 error" for f in keep_fractions]
    errors: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    masked_pixels = dict.fromkeys(names, 0)
    brain_pixels = 0
    for batch in val.batches(batch_size):
        batch = batch.to(model.device)
        x = batch.channel(model.modality)
        region = batch.brain > 0
        brain_pixels += int(region.sum())
        x_s = model.high_pass(x)
        f1_error = (model.first_iteration(x_s) - x).square()
        weights = [random_training_masks(batch.brain, generator, model.mask_config)]
        weights += [first_step_mask(f1_error, region, f) * batch.brain.clamp(0.0, 1.0) for f in keep_fractions]
        for name, weight in zip(names, weights):
            masked = weight > 0.5
            noise = torch.randn(x.shape, generator=generator, device=x.device)
            error = (model.masked_model(fill_with_noise(x, weight, noise), x_s) - x).square()[masked]
            errors[name].append(error.cpu())
            masked_pixels[name] += int(masked.sum())
    rows = []
    for name in names:
        error = torch.cat(errors[name])
        rows.append(HealthyMaskError(
            mask=name,
            brain_share=masked_pixels[name] / brain_pixels,
            mean_error=float(error.mean()),
            p80_error=float(np.percentile(error.numpy(), 80)),  # torch.quantile caps the input size
            share_above_tau=float((error > model.tau).float().mean()),
        ))  # fmt: skip
    return rows


def score_map(name: str, maps: torch.Tensor, test: SliceSet, score_maps: MapScorer) -> MapScore:
    """``maps`` on ``test`` scored by ``score_maps`` (its ``dice``: oracle_global mean Dice, the main table's
    protocol; its ``auroc``: pixel AUROC)."""
    scores = score_maps(maps, test)
    return MapScore(name, float(scores["dice"]), float(scores["auroc"]))


@dataclass(frozen=True)
class Diagnosis:
    """Everything :func:`diagnose` measures for one trained, calibrated IterMask² cell (``maps`` is empty when
    no scorer was given)."""

    tau: float
    maps: list[MapScore]
    trajectory: list[MaskOverlap]
    healthy_errors: list[HealthyMaskError]
    healthy_final_mask_share: float  # share of the brain still masked when refinement stops on healthy slices
    f1_healthy_error: float  # f1's mean squared error on healthy brain pixels


@torch.inference_mode()
def diagnose(
    model: RefinementModel, val: SliceSet, test: SliceSet, batch_size: int = 32, score_maps: MapScorer | None = None
) -> Diagnosis:
    """Run the full inference on ``test`` recording every iteration's masks, and the healthy-slice checks;
    ``score_maps`` scores f1's single-step map and the final map (None: not scored)."""
    if model.tau is None or model.refine is None:
        raise ValueError("diagnose needs a calibrated IterMask² with f2 (not -spat)")
    f1_maps, final_maps, history = [], [], []
    for batch in test.batches(batch_size):
        batch = batch.to(model.device)
        x, result = model.refine(batch, True, False)
        weight = batch.brain.clamp(0.0, 1.0)
        f1_maps.append(((model.first_iteration(model.high_pass(x)) - x).square() * weight).cpu())
        final_maps.append(((result.reconstruction - x).square() * weight).cpu())
        history.append([h.cpu() for h in result.history])
    depth = max(len(h) for h in history)  # a batch that stopped early keeps its last masks
    trajectory = [torch.cat([h[min(i, len(h) - 1)] for h in history]) for i in range(depth)]
    still_masked = brain_pixels = 0
    f1_error_sum = 0.0
    for batch in val.batches(batch_size):
        batch = batch.to(model.device)
        x, healthy = model.refine(batch, False, False)
        region = batch.brain > 0
        still_masked += int((healthy.final_mask & region).sum())
        brain_pixels += int(region.sum())
        f1_error_sum += float((model.first_iteration(model.high_pass(x)) - x).square()[region].sum())
    maps = (
        []
        if score_maps is None
        else [
            score_map("f1 single step (the -spat map of these networks)", torch.cat(f1_maps), test, score_maps),
            score_map("IterMask² final map", torch.cat(final_maps), test, score_maps),
        ]
    )
    return Diagnosis(
        tau=float(model.tau),
        maps=maps,
        trajectory=mask_trajectory(trajectory, test.labels, test.brain > 0),
        healthy_errors=healthy_mask_errors(model, val, batch_size=batch_size),
        healthy_final_mask_share=still_masked / brain_pixels,
        f1_healthy_error=f1_error_sum / brain_pixels,
    )


def diagnosis_markdown(d: Diagnosis, max_rows: int = 12) -> str:
    """A short human-readable report of one :class:`Diagnosis` (no heading: the caller titles it)."""
    lines = [f"τ = {d.tau:.4g}; f1's mean squared error on healthy brain pixels {d.f1_healthy_error:.4g}.", ""]
    if d.maps:
        lines += ["| map | oracle_global DSC | pixel AUROC |", "|---|---|---|"]
        lines += [f"| {m.name} | {m.dice:.3f} | {m.auroc:.3f} |" for m in d.maps]
    else:
        lines.append("(maps not scored: no scorer given)")
    lines += [
        "",
        "Masks over the iterations (test set, pooled pixels):",
        "",
        "| iteration | lesion recall | precision | share of brain masked |",
        "|---|---|---|---|",
    ]
    shown = d.trajectory if len(d.trajectory) <= max_rows else d.trajectory[: max_rows - 1] + d.trajectory[-1:]
    lines += [f"| {r.iteration} | {r.lesion_recall:.3f} | {r.precision:.3f} | {r.brain_share:.3f} |" for r in shown]
    lines += [
        "",
        f"Healthy validation slices: refinement stops with {d.healthy_final_mask_share:.1%} of the brain "
        "still masked (every masked pixel there ends up in the anomaly map).",
        "",
        "f2 on healthy validation slices, masked pixels only:",
        "",
        "| mask | share of brain | mean sq. error | p80 | share above τ |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {e.mask} | {e.brain_share:.2f} | {e.mean_error:.4f} | {e.p80_error:.4f} | {e.share_above_tau:.3f} |"
        for e in d.healthy_errors
    ]
    return "\n".join(lines) + "\n"
