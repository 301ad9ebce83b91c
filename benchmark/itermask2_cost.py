"""IterMask²-specific cost study (issue 6): active-set loop vs the official-style loop, training-mask share.

The official code keeps every image of a batch in f2 until the slowest one converges; ours drops converged
images (:func:`methods.itermask2_inference.iterative_refinement`). Both run here on the same trained
method, inputs and per-slice noise seeds; masks and reconstructions must be identical (checked, an error
otherwise), and the rows give NFE spent and time of each loop and their ratios.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmark.timing import Timer
from datasets.slices import SliceSet, Splits
from methods.itermask2 import IterMask2
from methods.itermask2_inference import RefinementResult
from methods.masks import random_training_masks


def refine(method: IterMask2, batch: SliceSet, keep_converged: bool) -> RefinementResult:
    """IterMask²'s inference loop on one batch; ``keep_converged=True`` is the official-style batching."""
    return method.refine(batch, keep_converged=keep_converged)[1]


def compare_loops(method: IterMask2, batch: SliceSet, timer: Timer, repeats: int, warmup: int) -> dict[str, Any]:
    """Both loops on ``batch``: identical outputs (asserted), NFE spent, median ms and the ratios."""
    ours, official = refine(method, batch, False), refine(method, batch, True)
    # masks and capped flags must be equal; reconstructions up to float rounding, because a convolution's
    # result for one image can differ in the last bits with the size of the batch it runs in
    for name in ("final_mask", "capped", "reconstruction"):
        a, b = getattr(ours, name), getattr(official, name)
        same = torch.allclose(a, b, rtol=0.0, atol=1e-4) if a.is_floating_point() else torch.equal(a, b)
        if not same:
            diff = (a.float() - b.float()).abs().max()
            raise AssertionError(f"itermask2 loops disagree on {name} (max abs difference {float(diff):.3g})")
    t_ours = timer.repeat(lambda: refine(method, batch, False), repeats, warmup).median
    t_official = timer.repeat(lambda: refine(method, batch, True), repeats, warmup).median
    nfe_ours, nfe_official = int(ours.nfe.sum()), int(official.nfe.sum())
    return {
        "record": "itermask2_loops",
        "batch_size": len(batch),
        "nfe_active_set": nfe_ours / len(batch),
        "nfe_official_style": nfe_official / len(batch),
        "nfe_max": int(ours.nfe.max()),
        "ms_per_slice_active_set": 1000 * t_ours / len(batch),
        "ms_per_slice_official_style": 1000 * t_official / len(batch),
        "nfe_ratio": nfe_official / nfe_ours,
        "speedup": t_official / t_ours,
        "identical_outputs": True,  # masks equal; reconstructions within 1e-4
    }


def mask_generation_share(method: IterMask2, brain: torch.Tensor, timer: Timer, train_step_ms: float,
                          repeats: int, warmup: int) -> dict[str, Any]:  # fmt: skip
    """Time of ``random_training_masks`` for one training batch and its share of a full train step."""
    generator = torch.Generator(device=brain.device).manual_seed(0)
    draw = lambda: random_training_masks(brain, generator, method.mask_config)  # noqa: E731
    ms = 1000 * timer.repeat(draw, repeats, warmup).median
    return {
        "record": "itermask2_mask_share",
        "train_batch_size": brain.shape[0],
        "mask_ms": ms,
        "train_step_ms": train_step_ms,
        "mask_share": ms / train_step_ms,
    }


def study_rows(method: IterMask2, splits: Splits, batch_size: int, train_batch_size: int, train_step_ms: float,
               timer: Timer, repeats: int, warmup: int) -> list[dict[str, Any]]:  # fmt: skip
    """The loop comparison on the first ``batch_size`` test slices and the mask-generation share."""
    if not isinstance(method, IterMask2) or not method.uses_refinement:
        raise TypeError(f"timing.itermask2_study must name an IterMask² method with f2, got {method.display_name}")
    batch = splits.test.subset(slice(0, min(batch_size, len(splits.test)))).to(method.device)
    brain = splits.train.subset(slice(0, min(train_batch_size, len(splits.train)))).brain.to(method.device)
    base = {"modality": method.context.modality, "seed": method.context.seed, "image_size": batch.image_size[0]}
    return [
        base | compare_loops(method, batch, timer, repeats, warmup),
        base | mask_generation_share(method, brain, timer, train_step_ms, repeats, warmup),
    ]
