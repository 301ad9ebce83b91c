"""IterMask² inference pieces (itermask2.md §5–6) as pure functions of networks given as callables.

* :func:`first_step_mask`: per image, exactly the top ``keep_fraction`` of in-brain error pixels.
* :func:`iterative_refinement`: the batched mask-shrinking loop with a per-image active set; converged
  or capped images leave the batch and cost no further network evaluations (``keep_converged=True``: the
  official code's loop, where they keep passing through f2 with frozen state, for cost comparisons).
* :func:`pooled_tau`: τ as the pooled percentile of masked-pixel errors (the official ``kthvalue`` rule).
* :class:`SliceNoise`: fresh N(0, 1) noise per iteration from one generator per slice, seeded from the
  method's seed and the slice's identity, so a slice's result does not depend on its batch.
* :class:`RefinementModel`: a trained, calibrated IterMask² as callables (networks, high-pass, the full
  inference step, noise), what the oracle, the figures, the diagnosis and the cost study take instead of the
  method object (``IterMask2.refinement_model()`` builds it).

The networks are callables so that tests can drive the loop with stubs whose errors they control.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from datasets.slices import SliceSet
    from methods.itermask2.masks import MaskConfig

#: ``f2(x_in [b, H, W], x_s [b, H, W]) -> reconstruction [b, H, W]``
MaskedModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``noise(indices [b]) -> N(0, 1) [b, H, W]`` for the images at ``indices`` of the batch
NoiseSource = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RefinementConfig:
    """Constants of the shrinking loop (defaults = paper / official code).

    Attributes:
        keep_fraction: share of the brain kept masked after the first step (top error pixels).
        min_shrink: an image stops when its mask shrinks by less than this share of its current size.
        max_iterations: safety cap on iterations per image, the first (f1) step included (= NFE cap).
    """

    keep_fraction: float = 0.6
    min_shrink: float = 0.01
    max_iterations: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must lie in [0, 1], got {self.keep_fraction}")
        if not 0.0 <= self.min_shrink <= 1.0:
            raise ValueError(f"min_shrink must lie in [0, 1], got {self.min_shrink}")
        if self.max_iterations < 2:
            raise ValueError(f"max_iterations must be >= 2 (first step + one masked step), got {self.max_iterations}")


@dataclass(frozen=True)
class RefinementResult:
    """Outcome of :func:`iterative_refinement` for a batch of B slices.

    Attributes:
        reconstruction: ``[B, H, W]`` the reconstruction of each image's last iteration.
        final_mask: bool ``[B, H, W]`` the mask that reconstruction was made with.
        nfe: int64 ``[B]`` network evaluations per image (1 for f1 + one per masked step).
        capped: bool ``[B]`` images stopped by the iteration cap instead of the < min_shrink rule.
        history: masks after each iteration (``history[0]`` = first-step mask) when recorded, else empty.
    """

    reconstruction: torch.Tensor
    final_mask: torch.Tensor
    nfe: torch.Tensor
    capped: torch.Tensor
    history: list[torch.Tensor] = field(default_factory=list)


def fill_with_noise(x: torch.Tensor, weight: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``(1 - w) x + w eps``: masked pixels (weight 1) replaced by noise, soft weights blend."""
    return (1.0 - weight) * x + weight * noise


def first_step_mask(error: torch.Tensor, region: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """Bool ``[B, H, W]``: per image the ``round(keep_fraction * n_brain)`` brain pixels of highest error.

    Exactly that many pixels are masked; ties are broken by pixel order (stable sort).
    """
    b = error.shape[0]
    n_brain = region.flatten(1).sum(1)
    keep = torch.floor(keep_fraction * n_brain.double() + 0.5).long()
    scores = torch.where(region, error, torch.full_like(error, -torch.inf)).flatten(1)
    order = scores.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand(b, -1))
    return (rank < keep[:, None]).view_as(region) & region


def iterative_refinement(
    x: torch.Tensor,
    x_s: torch.Tensor,
    brain: torch.Tensor,
    first_reconstruction: torch.Tensor,
    masked_model: MaskedModel,
    tau: float,
    noise: NoiseSource,
    config: RefinementConfig = RefinementConfig(),
    record_history: bool = False,
    keep_converged: bool = False,
) -> RefinementResult:
    """Shrink each image's mask from the first step until it shrinks by < ``min_shrink`` (§5).

    Args:
        x: images ``[B, H, W]``.
        x_s: their high-pass images ``[B, H, W]`` (passed to ``masked_model``).
        brain: soft or binary brain masks ``[B, H, W]``; the region is ``brain > 0`` and the noise fill
            weight of a masked pixel is ``clamp(brain, 0, 1)`` (the official ``mask * brain_mask``).
        first_reconstruction: ``f1(x_s)`` ``[B, H, W]`` (iteration 1, one NFE per image).
        masked_model: f2; called only on the images still active.
        tau: shrink threshold in squared-error units.
        noise: fresh noise per call (see :class:`SliceNoise`).
        config: first-step share, stopping rule and cap.
        record_history: keep every iteration's masks (for figures and tests).
        keep_converged: official-style batching: every image passes through f2 until the slowest stops, but
            stopped images keep their state, so masks and maps equal the active-set loop's; ``nfe`` then
            counts the evaluations actually spent (the loop's iteration count for every image).
    """
    region = brain > 0
    fill_weight = brain.clamp(0.0, 1.0)
    b = x.shape[0]
    mask = first_step_mask((first_reconstruction - x).square(), region, config.keep_fraction)
    reconstruction = first_reconstruction.clone()
    nfe = torch.ones(b, dtype=torch.long, device=x.device)
    capped = torch.zeros(b, dtype=torch.bool, device=x.device)
    history = [mask.clone()] if record_history else []
    active = torch.arange(b, device=x.device)
    everyone = torch.arange(b, device=x.device)
    while active.numel():
        run = everyone if keep_converged else active  # images sent through f2 this iteration
        m = mask[active]
        x_a = x[active]
        x_in = fill_with_noise(x[run], mask[run] * fill_weight[run], noise(run))
        prediction = masked_model(x_in, x_s[run])
        if keep_converged:
            prediction = prediction[active]
        nfe[run] += 1
        reconstruction[active] = prediction
        shrunk = ((prediction - x_a).square() > tau) & m
        size = m.flatten(1).sum(1)
        shrink = (size - shrunk.flatten(1).sum(1)).double() / size.clamp_min(1)
        converged = (size == 0) | (shrink < config.min_shrink)
        hit_cap = ~converged & (nfe[active] >= config.max_iterations)
        stop = converged | hit_cap
        # stopping images keep the mask their last reconstruction was made with
        mask[active] = torch.where(stop[:, None, None], m, shrunk)
        capped[active[hit_cap]] = True
        active = active[~stop]
        if record_history:
            history.append(mask.clone())
    return RefinementResult(reconstruction, mask, nfe, capped, history)


def pooled_tau(errors: torch.Tensor, weights: torch.Tensor, q: float) -> float:
    """τ = the ``q``-th percentile of squared errors on masked pixels, pooled over all images (§6).

    The official rule on ``v = error * weight`` over *all* pixels: τ is the k-th smallest value with
    ``k = numel - floor((100 - q) / 100 * sum(weight))`` (``torch.kthvalue``). For binary weights this is the
    nearest-rank q-th percentile of the errors of masked pixels (q = 100 gives their maximum); soft
    weights count fractionally, as in the official code.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"tau percentile must lie in [0, 100], got {q}")
    values = (errors * weights).flatten().double()
    total = float(weights.double().sum())
    if total <= 0:
        raise ValueError("pooled_tau: no masked pixel (all weights are 0)")
    k = values.numel() - math.floor((100.0 - q) * total / 100.0 + 1e-9)  # (100 - q) / 100 as the official 0.20
    return float(torch.kthvalue(values.cpu(), max(k, 1)).values)


def slice_seed(seed: int, subject: str, slice_index: int) -> int:
    """A stable 63-bit seed for one slice (independent of batch composition and Python's hash salt)."""
    digest = hashlib.blake2b(f"{seed}|{subject}|{slice_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SliceNoise:
    """One generator per slice of a batch; ``noise(indices)`` draws the next ``[H, W]`` field of each."""

    def __init__(
        self,
        seed: int,
        subjects: Sequence[str],
        slice_indices: Sequence[int],
        shape: tuple[int, int],
        device: torch.device,
        salt: str = "",
    ) -> None:
        self.shape = shape
        self.device = device
        self.generators = [
            torch.Generator(device=device).manual_seed(slice_seed(seed, salt + s, int(z)))
            for s, z in zip(subjects, slice_indices)
        ]

    def __call__(self, indices: torch.Tensor) -> torch.Tensor:
        fields = [torch.randn(self.shape, generator=self.generators[int(i)], device=self.device) for i in indices]
        return torch.stack(fields) if fields else torch.empty(0, *self.shape, device=self.device)


#: ``refine(batch, record_history, keep_converged) -> (x [B, H, W], result)``: the full inference on one batch
#: (already on the model's device)
RefineStep = Callable[["SliceSet", bool, bool], "tuple[torch.Tensor, RefinementResult]"]


@dataclass(frozen=True)
class RefinementModel:
    """A trained IterMask² as plain callables and constants (networks in eval mode; no method object).

    Attributes:
        name: display name for messages and figure titles.
        modality: the input channel read from a :class:`~datasets.slices.SliceSet`.
        device: where batches must be for the callables.
        high_pass: ``x [b, H, W] -> x_s [b, H, W]``.
        first_iteration: f1, ``x_s [b, H, W] -> reconstruction [b, H, W]``.
        masked_model: f2 (see :data:`MaskedModel`); None for ``-spat`` (no iterative refinement).
        refine: the full inference on a batch (see :data:`RefineStep`); None without f2.
        slice_noise: ``(batch, salt) -> NoiseSource``, per-slice seeded noise.
        tau: the calibrated shrink threshold, None before calibration.
        mask_config: the training-mask generator's settings (τ is calibrated on such masks).
    """

    name: str
    modality: str
    device: torch.device
    high_pass: Callable[[torch.Tensor], torch.Tensor]
    first_iteration: Callable[[torch.Tensor], torch.Tensor]
    masked_model: MaskedModel | None
    refine: RefineStep | None
    slice_noise: Callable[[SliceSet, str], NoiseSource]
    tau: float | None
    mask_config: MaskConfig

    @property
    def uses_refinement(self) -> bool:
        """False for ``-spat`` (single-step map, no f2, no τ)."""
        return self.masked_model is not None
