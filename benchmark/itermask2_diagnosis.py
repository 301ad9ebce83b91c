"""Why IterMask² segments what it does: where its masks go over the iterations, how f2 errs on healthy tissue
under inference-sized masks, and f1's single-step map (the ``-spat`` map of the same networks) beside the
final map. These are the checks behind the comparison of the full method with ``-spat``.

    python -m benchmark.itermask2_diagnosis                      # default experiment, its modalities
    python -m benchmark.itermask2_diagnosis methods.itermask2.train.steps=1800 experiment.modalities=[flair]

Trains the IterMask² cell if no checkpoint of its training identity exists, else reloads it (as the runner
does); writes ``itermask2_diagnosis.{md,json}`` to the experiment's report folder and prints the markdown.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from benchmark.config import method_specs
from benchmark.metrics import pixel_auroc
from benchmark.runner import Cell, open_run, train_or_load
from benchmark.thresholds import choose_threshold
from datasets.slices import SliceSet
from methods import MethodContext, create_method
from methods.itermask2 import IterMask2
from methods.itermask2_inference import fill_with_noise, first_step_mask
from methods.masks import random_training_masks

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
    """An anomaly map scored with the suite's oracle_global protocol and pixel AUROC."""

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
    method: IterMask2,
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
    if method.tau is None or not method.uses_refinement:
        raise ValueError("healthy_mask_errors needs a calibrated IterMask² with f2 (not -spat)")
    generator = torch.Generator(device=method.device).manual_seed(seed)
    names = ["training masks"] + [f"first step, top {f:.0%} of f1 error" for f in keep_fractions]
    errors: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    masked_pixels = dict.fromkeys(names, 0)
    brain_pixels = 0
    for batch in val.batches(batch_size):
        batch = batch.to(method.device)
        x = batch.channel(method.context.modality)
        region = batch.brain > 0
        brain_pixels += int(region.sum())
        x_s = method.high_pass(x)
        f1_error = (method.first_iteration(x_s) - x).square()
        weights = [random_training_masks(batch.brain, generator, method.mask_config)]
        weights += [first_step_mask(f1_error, region, f) * batch.brain.clamp(0.0, 1.0) for f in keep_fractions]
        for name, weight in zip(names, weights):
            masked = weight > 0.5
            noise = torch.randn(x.shape, generator=generator, device=x.device)
            error = (method.masked_model(fill_with_noise(x, weight, noise), x_s) - x).square()[masked]
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
            share_above_tau=float((error > method.tau).float().mean()),
        ))  # fmt: skip
    return rows


def score_map(name: str, maps: torch.Tensor, test: SliceSet) -> MapScore:
    """oracle_global mean Dice (the main table's protocol) and pixel AUROC of ``maps`` on ``test``."""
    chosen = choose_threshold("oracle_global", maps, test.labels, test.brain, warn_edge=False)
    return MapScore(name, chosen.objective, pixel_auroc(maps, test.labels, test.brain))


@dataclass(frozen=True)
class Diagnosis:
    """Everything :func:`diagnose` measures for one trained, calibrated IterMask² cell."""

    tau: float
    maps: list[MapScore]
    trajectory: list[MaskOverlap]
    healthy_errors: list[HealthyMaskError]
    healthy_final_mask_share: float  # share of the brain still masked when refinement stops on healthy slices
    f1_healthy_error: float  # f1's mean squared error on healthy brain pixels


@torch.inference_mode()
def diagnose(method: IterMask2, val: SliceSet, test: SliceSet, batch_size: int = 32) -> Diagnosis:
    """Run the full inference on ``test`` recording every iteration's masks, and the healthy-slice checks."""
    if method.tau is None or not method.uses_refinement:
        raise ValueError("diagnose needs a calibrated IterMask² with f2 (not -spat)")
    f1_maps, final_maps, history = [], [], []
    for batch in test.batches(batch_size):
        batch = batch.to(method.device)
        x, result = method.refine(batch, record_history=True)
        weight = batch.brain.clamp(0.0, 1.0)
        f1_maps.append(((method.first_iteration(method.high_pass(x)) - x).square() * weight).cpu())
        final_maps.append(((result.reconstruction - x).square() * weight).cpu())
        history.append([h.cpu() for h in result.history])
    depth = max(len(h) for h in history)  # a batch that stopped early keeps its last masks
    trajectory = [torch.cat([h[min(i, len(h) - 1)] for h in history]) for i in range(depth)]
    still_masked = brain_pixels = 0
    f1_error_sum = 0.0
    for batch in val.batches(batch_size):
        batch = batch.to(method.device)
        x, healthy = method.refine(batch)
        region = batch.brain > 0
        still_masked += int((healthy.final_mask & region).sum())
        brain_pixels += int(region.sum())
        f1_error_sum += float((method.first_iteration(method.high_pass(x)) - x).square()[region].sum())
    return Diagnosis(
        tau=float(method.tau),
        maps=[
            score_map("f1 single step (the -spat map of these networks)", torch.cat(f1_maps), test),
            score_map("IterMask² final map", torch.cat(final_maps), test),
        ],
        trajectory=mask_trajectory(trajectory, test.labels, test.brain > 0),
        healthy_errors=healthy_mask_errors(method, val, batch_size=batch_size),
        healthy_final_mask_share=still_masked / brain_pixels,
        f1_healthy_error=f1_error_sum / brain_pixels,
    )


def diagnosis_markdown(title: str, d: Diagnosis, max_rows: int = 12) -> str:
    """A short human-readable report of one :class:`Diagnosis`."""
    lines = [
        f"## {title}", "",
        f"τ = {d.tau:.4g}; f1's mean squared error on healthy brain pixels {d.f1_healthy_error:.4g}.", "",
        "| map | oracle_global DSC | pixel AUROC |", "|---|---|---|",
    ]  # fmt: skip
    lines += [f"| {m.name} | {m.dice:.3f} | {m.auroc:.3f} |" for m in d.maps]
    lines += ["", "Masks over the iterations (test set, pooled pixels):", "",
              "| iteration | lesion recall | precision | share of brain masked |", "|---|---|---|---|"]
    shown = d.trajectory if len(d.trajectory) <= max_rows else d.trajectory[: max_rows - 1] + d.trajectory[-1:]
    lines += [f"| {r.iteration} | {r.lesion_recall:.3f} | {r.precision:.3f} | {r.brain_share:.3f} |" for r in shown]
    lines += ["", f"Healthy validation slices: refinement stops with {d.healthy_final_mask_share:.1%} of the brain "
              "still masked (every masked pixel there ends up in the anomaly map).", "",
              "f2 on healthy validation slices, masked pixels only:", "",
              "| mask | share of brain | mean sq. error | p80 | share above τ |", "|---|---|---|---|---|"]
    lines += [f"| {e.mask} | {e.brain_share:.2f} | {e.mean_error:.4f} | {e.p80_error:.4f} | {e.share_above_tau:.3f} |"
              for e in d.healthy_errors]
    return "\n".join(lines) + "\n"


def run_diagnosis(cfg: DictConfig) -> str:
    """Diagnose every IterMask² method with f2 of the experiment in each of its modalities (first seed);
    write the markdown and JSON to ``paths.report`` and return the markdown."""
    setup = open_run(cfg)
    splits = setup.splits
    seed = int(cfg.seeds[0])
    sections, records = [], {}
    for modality in cfg.experiment.modalities:
        context = MethodContext(modality, splits.test.image_size[0], setup.device, seed, splits.test.modalities,
                                progress=bool(cfg.progress))  # fmt: skip
        for spec in method_specs(cfg):
            if spec.name != "itermask2":
                continue
            method = create_method(spec.name, context, **spec.params)
            if not (isinstance(method, IterMask2) and method.uses_refinement):
                continue  # -spat: no masks to diagnose
            cell = Cell.of(splits, modality, spec, seed)
            train_log, _ = train_or_load(method, cell, splits, setup.checkpoints, bool(cfg.retrain))
            result = diagnose(method, splits.val, splits.test, int(cfg.eval_batch_size))
            sections.append(diagnosis_markdown(f"{cell.key} ({train_log.steps} training steps)", result))
            records[cell.key] = asdict(result) | {"train_steps": train_log.steps}
    if not records:
        raise ValueError("itermask2_diagnosis: the experiment configures no IterMask² method with f2")
    out = Path(cfg.paths.report)
    out.mkdir(parents=True, exist_ok=True)
    text = "# IterMask² diagnosis\n\n" + "\n".join(sections)
    (out / "itermask2_diagnosis.md").write_text(text)
    (out / "itermask2_diagnosis.json").write_text(json.dumps(records, indent=2))
    return text


@hydra.main(config_path="../configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    print(run_diagnosis(cfg))


if __name__ == "__main__":
    main()
