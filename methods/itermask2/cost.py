"""IterMask²'s own cost study (issue 6), run by ``python -m benchmark experiment=timing`` through
:meth:`IterMask2.cost_studies`: active-set loop vs the official-style loop, the training-mask share of a
train step, and the FLOPs of one UNet forward at the default and paper sizes.

The official code keeps every image of a batch in f2 until the slowest one converges; ours drops converged
images (:func:`methods.itermask2.inference.iterative_refinement`). Both run here on the same trained
model, inputs and per-slice noise seeds; masks and reconstructions must be identical (checked, an error
otherwise), and the rows give NFE spent and time of each loop and their ratios.

Every row carries ``record`` (its section in the cost report) and ``title`` (the section's heading).
"""

from __future__ import annotations

from typing import Any

import torch

from datasets.slices import SliceSet, Splits
from methods.itermask2.inference import RefinementModel, RefinementResult
from methods.itermask2.masks import MaskConfig, random_training_masks
from methods.measure import Timer, count_flops
from methods.nets.unet import UNet, UNetConfig

#: (name, image size, UNet preset) of the two reference sizes.
UNET_SIZES: tuple[tuple[str, int, str], ...] = (("default", 64, "small"), ("paper", 128, "paper"))

LOOPS_TITLE = "IterMask²: active-set loop vs official-style loop"
MASK_SHARE_TITLE = "IterMask²: training-mask generation share of a step"
FLOPS_TITLE = "FLOPs of one UNet forward (per slice)"


def refine(model: RefinementModel, batch: SliceSet, keep_converged: bool) -> RefinementResult:
    """IterMask²'s inference loop on one batch; ``keep_converged=True`` is the official-style batching."""
    if model.refine is None:
        raise ValueError(f"{model.name}: no iterative refinement to time (-spat is single-step)")
    return model.refine(batch, False, keep_converged)[1]


def compare_loops(model: RefinementModel, batch: SliceSet, timer: Timer) -> dict[str, Any]:
    """Both loops on ``batch``: identical outputs (asserted), NFE spent, median ms and the ratios."""
    ours, official = refine(model, batch, False), refine(model, batch, True)
    # masks and capped flags must be equal; reconstructions up to float rounding, because a convolution's
    # result for one image can differ in the last bits with the size of the batch it runs in
    for name in ("final_mask", "capped", "reconstruction"):
        a, b = getattr(ours, name), getattr(official, name)
        same = torch.allclose(a, b, rtol=0.0, atol=1e-4) if a.is_floating_point() else torch.equal(a, b)
        if not same:
            diff = (a.float() - b.float()).abs().max()
            raise AssertionError(f"itermask2 loops disagree on {name} (max abs difference {float(diff):.3g})")
    t_ours = timer.repeat(lambda: refine(model, batch, False)).median
    t_official = timer.repeat(lambda: refine(model, batch, True)).median
    nfe_ours, nfe_official = int(ours.nfe.sum()), int(official.nfe.sum())
    return {
        "record": "itermask2_loops",
        "title": LOOPS_TITLE,
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


def mask_generation_share(
    mask_config: MaskConfig, brain: torch.Tensor, timer: Timer, train_step_ms: float
) -> dict[str, Any]:
    """Time of ``random_training_masks`` for one training batch and its share of a full train step."""
    generator = torch.Generator(device=brain.device).manual_seed(0)
    draw = lambda: random_training_masks(brain, generator, mask_config)  # noqa: E731
    ms = 1000 * timer.repeat(draw).median
    return {
        "record": "itermask2_mask_share",
        "title": MASK_SHARE_TITLE,
        "train_batch_size": brain.shape[0],
        "mask_ms": ms,
        "train_step_ms": train_step_ms,
        "mask_share": ms / train_step_ms,
    }


def unet_forward_flops(size: int, preset: str, in_channels: int, device: torch.device) -> tuple[int, int]:
    """``(FLOPs of one forward per slice, parameters)`` of ``UNet(in_channels, 1, preset)`` at ``size`` px."""
    net = UNet(in_channels, 1, UNetConfig.preset(preset)).to(device).eval()
    x = torch.zeros(1, in_channels, size, size, device=device)
    return count_flops(lambda: net(x)), sum(p.numel() for p in net.parameters())


def forward_flops_rows(device: torch.device) -> list[dict[str, Any]]:
    """One row per (reference size, network) with the forward FLOPs of the default layout's f1 (1 input
    channel) and f2 (2 input channels)."""
    rows: list[dict[str, Any]] = []
    for name, size, preset in UNET_SIZES:
        for network, channels in (("itermask2_f1", 1), ("itermask2_f2", 2)):
            flops, params = unet_forward_flops(size, preset, channels, device)
            rows.append({
                "record": "forward_flops", "title": FLOPS_TITLE, "size_name": name, "image_size": size,
                "net": preset, "network": network, "gflop_per_forward": flops / 1e9, "params": params,
            })  # fmt: skip
    return rows


def study_rows(model: RefinementModel, splits: Splits, batch_size: int, train_batch_size: int, train_step_ms: float,
               timer: Timer, seed: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """The loop comparison on the first ``batch_size`` test slices, the mask-generation share of a train step
    of ``train_batch_size`` slices, and the UNet forward FLOPs."""
    if not model.uses_refinement:
        raise ValueError(f"{model.name}: the loop study needs the masked model f2 (not -spat)")
    batch = splits.test.subset(slice(0, min(batch_size, len(splits.test)))).to(model.device)
    brain = splits.train.subset(slice(0, min(train_batch_size, len(splits.train)))).brain.to(model.device)
    base = {"modality": model.modality, "seed": seed, "image_size": batch.image_size[0]}
    return [
        base | compare_loops(model, batch, timer),
        base | mask_generation_share(model.mask_config, brain, timer, train_step_ms),
        *forward_flops_rows(model.device),
    ]
