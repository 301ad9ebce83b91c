"""IterMask² (Liang, Guo, Noble, Kamnitsas, MICCAI 2024) as one package; spec summary in ``README.md``.

Importing it registers the method ``itermask2`` (:class:`IterMask2`, :mod:`.method`). Modules:
:mod:`.frequency` (high-pass ``x_s``), :mod:`.masks` (training masks), :mod:`.inference` (first step,
shrinking loop, τ, per-slice noise, :class:`RefinementModel`), :mod:`.oracle` (human–AI ORACLE),
:mod:`.figures` (mask-shrinking figure), :mod:`.diagnosis` (``diagnose`` hook), :mod:`.cost` (``cost_studies``
hook). Everything but :mod:`.method` takes the trained model as callables, never the method object.
"""

from methods.itermask2.frequency import high_pass, low_band, scaled_radius
from methods.itermask2.inference import (
    RefinementConfig,
    RefinementModel,
    RefinementResult,
    first_step_mask,
    iterative_refinement,
    pooled_tau,
)
from methods.itermask2.masks import MaskConfig, masked_fraction, random_training_masks, sample_corners
from methods.itermask2.method import LAYOUTS, IterMask2
from methods.itermask2.oracle import OracleConfig, OracleResult, dice_per_image, human_ai_oracle

__all__ = [
    "LAYOUTS",
    "IterMask2",
    "MaskConfig",
    "OracleConfig",
    "OracleResult",
    "RefinementConfig",
    "RefinementModel",
    "RefinementResult",
    "dice_per_image",
    "first_step_mask",
    "high_pass",
    "human_ai_oracle",
    "iterative_refinement",
    "low_band",
    "masked_fraction",
    "pooled_tau",
    "random_training_masks",
    "sample_corners",
    "scaled_radius",
]
