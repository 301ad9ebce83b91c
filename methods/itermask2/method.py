"""IterMask² (Liang, Guo, Noble, Kamnitsas, MICCAI 2024): iterative spatial mask refinement guided by a
high-frequency image. Spec: ``/work/shared/spec/itermask2.md`` (summary: ``methods/itermask2/README.md``).

Two UNets trained on healthy slices only: f1 reconstructs the slice from its high-pass image ``x_s``
(:mod:`methods.itermask2.frequency`); f2 reconstructs it from a randomly masked, noise-filled copy plus ``x_s``
(:mod:`methods.itermask2.masks`). Inference (:mod:`methods.itermask2.inference`) masks the top 60 % of f1's in-brain
error, then repeatedly lets f2 reconstruct the masked region and unmasks every pixel whose error falls
under τ (a percentile of f2's masked-pixel error on healthy validation slices) until the mask stops
shrinking. The anomaly map is the squared error of the last reconstruction.

Layouts (``params.layout``, paper Table 3): ``default``; ``-freq`` trains and runs f2 without the ``x_s``
channel (iteration 1 unchanged); ``-spat`` is f1's single-step reconstruction error (no f2, no τ, one NFE).
The row label is the config's ``label``, not the layout.

Hooks used by the runner and the commands: :meth:`IterMask2.human_ai_segmentation` (the ORACLE "human–AI"
mode of :mod:`methods.itermask2.oracle`), :meth:`IterMask2.diagnostic_figures`
(:mod:`methods.itermask2.figures`), :meth:`IterMask2.inference_stats` (capped images, mean NFE),
:meth:`IterMask2.diagnose` (:mod:`methods.itermask2.diagnosis`) and :meth:`IterMask2.cost_studies`
(:mod:`methods.itermask2.cost`). Those modules get the trained model as callables
(:meth:`IterMask2.refinement_model`), never the method object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from datasets.slices import SliceSet, Splits
from methods.base import AnomalyMethod, MapScorer, MethodContext, MethodOutput, TrainBudget, TrainLog, register
from methods.itermask2.cost import study_rows
from methods.itermask2.diagnosis import diagnose, diagnosis_markdown
from methods.itermask2.figures import shrinking_figure
from methods.itermask2.frequency import DEFAULT_RADIUS, RADIUS_REFERENCE_SIZE, high_pass, scaled_radius
from methods.itermask2.inference import (
    RefinementConfig,
    RefinementModel,
    RefinementResult,
    SliceNoise,
    fill_with_noise,
    iterative_refinement,
    pooled_tau,
)
from methods.itermask2.masks import MaskConfig, MaskSampling, random_training_masks
from methods.itermask2.oracle import OracleConfig, dice_per_image, human_ai_oracle
from methods.nets.unet import UNet, UNetConfig
from methods.training import train_networks, validation_loss

if TYPE_CHECKING:
    from methods.measure import Timer

LAYOUTS = ("default", "-freq", "-spat")  # network layouts (paper Table 3)


@dataclass
class RefinementStats:
    """Counters over all ``predict`` calls since the last :meth:`IterMask2.reset_stats`."""

    slices: int = 0
    capped: int = 0
    nfe_total: int = 0

    def as_row(self) -> dict[str, float]:
        """Fields for a result row: capped images and mean NFE."""
        return {
            "n_capped": self.capped,
            "capped_fraction": self.capped / self.slices if self.slices else float("nan"),
            "nfe_mean": self.nfe_total / self.slices if self.slices else float("nan"),
        }


@register("itermask2")
class IterMask2(AnomalyMethod):
    """IterMask² and its ablations ``-freq`` / ``-spat`` (``layout``; see the module docstring)."""

    label = "IterMask²"
    deviations = (
        "f1 and f2 are trained in one loop on the same batches with a summed MSE and one AdamW over both "
        "(AdamW is per-parameter, so the updates equal separate training on those batches); the best "
        "checkpoint / early stopping follow the summed validation loss. Step budget and batch size come from "
        "the config (paper: 150k steps configured, 90k-step raw checkpoint evaluated, batch 32).",
        "Training masks are drawn on a 240 x 240 grid from the brain mask upsampled (nearest) from the working "
        "resolution (official: the raw 240 px slice), then area-resized as in the official pipeline. Patch "
        "corners are drawn jointly by default (official: rows and columns independently; "
        "params.mask_sampling=independent).",
        "Inference masks are binary over brain > 0 pixels; the soft brain mask weights the noise fill and the "
        "anomaly map (official: mask x soft brain mask everywhere, which also scales the shrink errors at the "
        "brain edge). The first step masks exactly round(60 % x brain pixels) (official: kthvalue threshold, "
        "equal up to ties).",
        "Converged images leave the batch (official: they keep going through f2); an iteration cap "
        "(params.max_iterations, official: none) stops the rest and is counted.",
        "All randomness is seeded: training masks/noise from the run seed, inference noise per slice from the "
        "seed and the slice's identity, τ calibration masks from the seed (official: unseeded).",
        "The frequency-mask radius scales with the image size (r = 15 at 128 px, 7.5 at 64 px).",
    )

    def __init__(
        self,
        context: MethodContext,
        layout: str = "default",
        net: str | Mapping[str, Any] = "small",
        radius: float = DEFAULT_RADIUS,
        radius_reference_size: int | None = RADIUS_REFERENCE_SIZE,
        low_band_amplitude: float = 1.0,
        mask_sampling: MaskSampling = "joint",
        mask_reference_size: int = 240,
        tau_percentile: float = 80.0,
        keep_fraction: float = 0.6,
        min_shrink: float = 0.01,
        max_iterations: int = 100,
        calibration_batch_size: int = 32,
        oracle: Mapping[str, Any] | bool | None = None,
        **params: Any,
    ) -> None:
        """``layout``: the network layout, one of :data:`LAYOUTS`. ``oracle``: the human–AI search space (fields
        of :class:`~methods.itermask2.oracle.OracleConfig`); None/True = official defaults, False = no oracle."""
        if layout not in LAYOUTS:
            raise ValueError(f"itermask2: unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        super().__init__(context, **params)
        self.layout = layout
        if not 0.0 <= tau_percentile <= 100.0:
            raise ValueError(f"itermask2: tau_percentile must lie in [0, 100], got {tau_percentile}")
        if isinstance(net, str):
            self.net_config = UNetConfig.preset(net)
        else:
            fields: dict[str, Any] = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in net.items()}
            self.net_config = UNetConfig(**fields)
        self.radius = scaled_radius(radius, context.image_size, radius_reference_size)
        self.low_band_amplitude = low_band_amplitude
        self.mask_config = MaskConfig(sampling=mask_sampling, reference_size=mask_reference_size)
        self.tau_percentile = float(tau_percentile)
        self.refinement = RefinementConfig(keep_fraction, min_shrink, max_iterations)
        self.calibration_batch_size = calibration_batch_size
        self.oracle_config = _oracle_config(oracle)
        self.f1 = UNet(1, 1, self.net_config).to(context.device)
        self.f2: UNet | None = None
        if layout != "-spat":
            self.f2 = UNet(1 if layout == "-freq" else 2, 1, self.net_config).to(context.device)
        self.tau: float | None = None
        self.stats = RefinementStats()

    # ------------------------------------------------------------------ pieces shared by fit / predict
    @property
    def display_name(self) -> str:
        """``IterMask²``, ``IterMask² -freq`` or ``IterMask² -spat`` (messages, progress bars, figure titles)."""
        return self.label if self.layout == "default" else f"{self.label} {self.layout}"

    def networks(self) -> list[torch.nn.Module]:
        return [self.f1] if self.f2 is None else [self.f1, self.f2]

    @property
    def uses_refinement(self) -> bool:
        """False for ``-spat`` (single-step map, no f2, no τ)."""
        return self.f2 is not None

    def high_pass(self, x: torch.Tensor) -> torch.Tensor:
        """``x_s`` of ``[..., H, W]`` images with this method's radius."""
        return high_pass(x, self.radius, self.low_band_amplitude)

    def masked_model(self, x_in: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        """f2 on ``[b, H, W]`` inputs → ``[b, H, W]`` (``-freq``: without the ``x_s`` channel)."""
        if self.f2 is None:
            raise RuntimeError("itermask2 -spat has no masked model f2")
        channels = [x_in] if self.layout == "-freq" else [x_in, x_s]
        return self.f2(torch.stack(channels, dim=1))[:, 0]

    def first_iteration(self, x_s: torch.Tensor) -> torch.Tensor:
        """f1(x_s): ``[b, H, W]`` → ``[b, H, W]``."""
        return self.f1(x_s[:, None])[:, 0]

    def slice_noise(self, batch: SliceSet, salt: str = "") -> SliceNoise:
        """Per-slice noise generators for one batch (reproducible, batch-independent)."""
        return SliceNoise(self.context.seed, batch.subjects, batch.slice_index, batch.image_size, self.device, salt)

    def _masked_input_loss(self, batch: SliceSet, generator: torch.Generator) -> torch.Tensor:
        x = batch.channel(self.context.modality)
        weights = random_training_masks(batch.brain, generator, self.mask_config)
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        x_in = fill_with_noise(x, weights, noise)
        return F.mse_loss(self.masked_model(x_in, self.high_pass(x)), x)

    def _first_iteration_loss(self, batch: SliceSet, _: torch.Generator) -> torch.Tensor:
        x = batch.channel(self.context.modality)
        return F.mse_loss(self.first_iteration(self.high_pass(x)), x)

    # ------------------------------------------------------------------ lifecycle
    def training_identity(self) -> dict[str, Any]:
        """What determines the trained f1 / f2: layout, net, frequency mask and (with f2) training masks.

        Inference settings (τ percentile, first-step share, stopping rule, cap, oracle) are left out, so a
        τ sweep trains once; the runner always calibrates τ again after loading.
        """
        identity: dict[str, Any] = {
            "family": "itermask2",
            "layout": self.layout,
            "net": asdict(self.net_config),
            "radius": self.radius,
            "low_band_amplitude": self.low_band_amplitude,
        }
        if self.f2 is not None:
            identity["mask"] = asdict(self.mask_config)
        return identity

    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        def loss(batch: SliceSet, generator: torch.Generator) -> torch.Tensor:
            total = self._first_iteration_loss(batch, generator)
            if self.f2 is not None:
                total = total + self._masked_input_loss(batch, generator)
            return total

        params = [p for net in self.networks() for p in net.parameters()]
        optimizer = torch.optim.AdamW(params, lr=budget.lr, weight_decay=budget.weight_decay)
        log = train_networks(
            self.networks(),
            loss,
            train,
            val,
            budget,
            optimizer,
            self.context.seed,
            description=f"{self.display_name} {self.context.modality}",
            progress=self.context.progress,
            on_log=self.context.on_log,
        )
        if log.history:  # per-network validation losses of the kept weights, for the report
            seed, device = self.context.seed, self.device
            log.history[-1]["f1_val_loss"] = validation_loss(
                [self.f1], self._first_iteration_loss, val, budget.batch_size, seed, device
            )
            if self.f2 is not None:
                log.history[-1]["f2_val_loss"] = validation_loss(
                    [self.f2], self._masked_input_loss, val, budget.batch_size, seed, device
                )
        return log

    @torch.inference_mode()
    def calibrate(self, val: SliceSet) -> None:
        """τ = the ``tau_percentile``-th percentile of f2's squared error on randomly masked pixels of the
        healthy validation slices, pooled over the whole split (itermask2.md §6). ``-spat`` needs no τ."""
        if self.f2 is None:
            return
        if len(val) == 0:
            raise ValueError("itermask2: calibrate needs healthy validation slices, got an empty split")
        self.f2.eval()
        generator = torch.Generator(device=self.device).manual_seed(self.context.seed + 2)
        errors, weights = [], []
        for batch in val.batches(self.calibration_batch_size):
            batch = batch.to(self.device)
            x = batch.channel(self.context.modality)
            w = random_training_masks(batch.brain, generator, self.mask_config)
            noise = torch.randn(x.shape, generator=generator, device=x.device)
            prediction = self.masked_model(fill_with_noise(x, w, noise), self.high_pass(x))
            errors.append((prediction - x).square().cpu())
            weights.append(w.cpu())
        self.tau = pooled_tau(torch.cat(errors), torch.cat(weights), self.tau_percentile)

    @torch.inference_mode()
    def refine(
        self, batch: SliceSet, record_history: bool = False, keep_converged: bool = False
    ) -> tuple[torch.Tensor, RefinementResult]:
        """Run the full iterative inference on one batch (on the method's device): ``(x, result)``.
        ``keep_converged``: the official code's batching (for cost comparisons; same masks and maps)."""
        self._eval()
        if self.tau is None:
            raise RuntimeError("itermask2: τ is not set; call calibrate(val) (or load a calibrated state) first")
        x = batch.channel(self.context.modality)
        x_s = self.high_pass(x)
        result = iterative_refinement(
            x,
            x_s,
            batch.brain,
            self.first_iteration(x_s),
            self.masked_model,
            self.tau,
            self.slice_noise(batch),
            self.refinement,
            record_history,
            keep_converged,
        )
        return x, result

    @torch.inference_mode()
    def predict(self, batch: SliceSet) -> MethodOutput:
        self._eval()
        brain_weight = batch.brain.clamp(0.0, 1.0)
        if self.f2 is None:
            x = batch.channel(self.context.modality)
            reconstruction = self.first_iteration(self.high_pass(x))
            return MethodOutput(
                anomaly_map=(reconstruction - x).square() * brain_weight,
                reconstruction=reconstruction,
                nfe=torch.ones(len(batch), dtype=torch.long),
            )
        x, result = self.refine(batch)
        self.stats.slices += len(batch)
        self.stats.capped += int(result.capped.sum())
        self.stats.nfe_total += int(result.nfe.sum())
        return MethodOutput(
            anomaly_map=(result.reconstruction - x).square() * brain_weight,
            reconstruction=result.reconstruction,
            nfe=result.nfe.cpu(),
            final_mask=result.final_mask,
        )

    def reset_inference_stats(self) -> None:
        """Zero the capped / NFE counters (call before predicting the split whose counts you want)."""
        self.stats = RefinementStats()

    def inference_stats(self) -> dict[str, float]:
        """Counters of the ``predict`` calls since :meth:`reset_inference_stats`, as result-row fields:
        ``n_capped`` (images stopped by the iteration cap), ``capped_fraction``, ``nfe_mean``."""
        return self.stats.as_row()

    def refinement_model(self) -> RefinementModel:
        """The trained networks (put in eval mode) and the calibrated τ as callables and constants: what the
        oracle, the figures, the diagnosis and the cost study take (they never see the method object)."""
        self._eval()
        return RefinementModel(
            name=self.display_name,
            modality=self.context.modality,
            device=self.device,
            high_pass=self.high_pass,
            first_iteration=self.first_iteration,
            masked_model=self.masked_model if self.f2 is not None else None,
            refine=self._refine_step if self.f2 is not None else None,
            slice_noise=self.slice_noise,
            tau=self.tau,
            mask_config=self.mask_config,
        )

    def _refine_step(
        self, batch: SliceSet, record_history: bool, keep_converged: bool
    ) -> tuple[torch.Tensor, RefinementResult]:
        return self.refine(batch, record_history=record_history, keep_converged=keep_converged)

    def human_ai_segmentation(self, test: SliceSet) -> torch.Tensor | None:
        """Per image the best mask of the human–AI search (an ORACLE: reads ``test.labels``); None for
        ``-spat`` or when ``params.oracle`` is false."""
        if not self.uses_refinement or self.oracle_config is None:
            return None
        model = self.refinement_model()
        return human_ai_oracle(model, test, dice_per_image, self.calibration_batch_size, self.oracle_config).masks

    def diagnostic_figures(self, slices: SliceSet, out_dir: Path) -> list[Path]:
        """The mask-shrinking figure of ``slices`` (PNG + PDF); none for ``-spat`` (no iterations)."""
        if not self.uses_refinement:
            return []
        return shrinking_figure(self.refinement_model(), slices, Path(out_dir) / "itermask2_shrinking")

    def diagnose(
        self, val: SliceSet, test: SliceSet, batch_size: int, score_maps: MapScorer | None = None
    ) -> dict[str, Any] | None:
        """Where the masks go over the iterations, f2 on healthy tissue under inference-sized masks, f1's
        single-step map beside the final one (:mod:`methods.itermask2.diagnosis`); None for ``-spat``."""
        if not self.uses_refinement:
            return None
        result = diagnose(self.refinement_model(), val, test, batch_size, score_maps)
        return asdict(result) | {"markdown": diagnosis_markdown(result)}

    def cost_studies(
        self,
        splits: Splits,
        batch_size: int,
        train_step_ms: float,
        timer: Timer,
        *,
        train_batch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Active-set vs official-style loop on the first ``batch_size`` test slices, training-mask share of a
        train step (``train_step_ms`` at ``train_batch_size``), UNet forward FLOPs at the default and paper
        sizes (:mod:`methods.itermask2.cost`); none for ``-spat``."""
        if not self.uses_refinement:
            return []
        return study_rows(
            self.refinement_model(),
            splits,
            batch_size,
            train_batch_size or batch_size,
            train_step_ms,
            timer,
            seed=self.context.seed,
        )

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"f1": self.f1.state_dict(), "tau": self.tau, "tau_percentile": self.tau_percentile}
        if self.f2 is not None:
            state["f2"] = self.f2.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.f1.load_state_dict(state["f1"])
        if self.f2 is not None:
            if "f2" not in state:
                raise KeyError(f"itermask2 {self.layout}: the saved state has no f2 (saved from a -spat run?)")
            self.f2.load_state_dict(state["f2"])
        # networks trained at any τ percentile load (a τ sweep trains once); a τ calibrated at another
        # percentile is dropped, so predict asks for calibrate(val) instead of using the wrong τ
        same_q = state.get("tau_percentile", self.tau_percentile) == self.tau_percentile
        self.tau = state["tau"] if same_q else None
        self._eval()

    def _eval(self) -> None:
        for net in self.networks():
            net.eval()


def _oracle_config(oracle: Mapping[str, Any] | bool | None) -> OracleConfig | None:
    """``params.oracle`` → the human–AI search space (None/True: official defaults; False or a mapping with
    ``enabled: false``: disabled, so an experiment can switch off the search without restating it)."""
    if oracle is False:
        return None
    if oracle is None or oracle is True:
        return OracleConfig()
    fields = dict(oracle)
    if not fields.pop("enabled", True):
        return None
    if "start_fractions" in fields:
        fields["start_fractions"] = tuple(float(f) for f in fields["start_fractions"])
    try:
        return OracleConfig(**fields)
    except TypeError as why:
        raise ValueError(f"itermask2: params.oracle: {why}; expected fields of OracleConfig") from None
