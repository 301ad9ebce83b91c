"""Cyclic-UNet baseline: translate to a middle modality and back (Liang et al. 2023, "Cycl.UNet")."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from datasets.slices import SliceSet
from methods.base import (
    AnomalyMethod,
    MethodContext,
    MethodOutput,
    MethodUnavailable,
    TrainBudget,
    TrainLog,
    register,
)
from methods.dae import scaled_radius
from methods.nets.unet import UNet, UNetConfig
from methods.postprocess import ResidualKind, ResidualScoring
from methods.training import train_networks


def default_middle(modality: str) -> str:
    """The paper's middle modality: T1 when the input is FLAIR, FLAIR otherwise."""
    return "t1" if modality == "flair" else "flair"


@register("cyclic_unet")
class CyclicUNet(AnomalyMethod):
    """Forward UNet F: input → middle modality, backward UNet B: middle → input, both trained with MSE
    on paired healthy slices; at test only the input is needed and the map is (x - B(F(x)))² on an
    eroded brain mask. A lesion is not translated faithfully by F (it has not seen one), so the cycle
    does not return it: NFE 2 per slice.

    Paired modalities are needed at training only; on a dataset without the middle modality (ATLAS,
    single-modality) the method raises :class:`MethodUnavailable` and the table shows "–".
    """

    label = "Cyclic-UNet"
    deviations = (
        "Both directions are optimised in one loop on the same batches with their own parameters and "
        "losses (B is trained on the real middle modality, never on F's output), so the updates equal "
        "separate training; early stopping and best-weight selection use the summed validation loss.",
        "The CPU default (configs/method/cyclic_unet.yaml) uses the 'small' UNet preset (reference: the "
        "IterMask² UNet, preset 'paper'), 50 steps of batch 16 at lr 1e-3 (reference: 80k iterations of "
        "batch 32 at 1e-4).",
        "Brain-mask erosion is a disk of radius `erosion_at_128` (reference 4 at 128 px) scaled to the "
        "image size; the binary brain mask is the stored mask > 0.5 (reference: > 0).",
    )

    def __init__(
        self,
        context: MethodContext,
        unet: str = "small",
        middle: str | None = None,
        residual: ResidualKind = "squared",
        erosion_at_128: int = 4,
        median: int = 1,
        **params: Any,
    ) -> None:
        super().__init__(context, **params)
        self.middle = middle or default_middle(context.modality)
        if self.middle == context.modality:
            raise ValueError(f"Cyclic-UNet: middle modality must differ from the input ({context.modality!r})")
        self._require_middle(context.available_modalities)
        config = UNetConfig.preset(unet)
        self.forward_net = UNet(1, 1, config).to(context.device)
        self.backward_net = UNet(1, 1, config).to(context.device)
        self.scoring = ResidualScoring(
            residual=residual, erosion=scaled_radius(erosion_at_128, context.image_size), median=median
        )

    def _require_middle(self, modalities: tuple[str, ...]) -> None:
        if self.middle not in modalities:
            raise MethodUnavailable(
                f"Cyclic-UNet needs paired {self.context.modality!r} and {self.middle!r} (middle modality) "
                f"slices for training; the dataset provides only {tuple(modalities)}"
            )

    def networks(self) -> list[torch.nn.Module]:
        return [self.forward_net, self.backward_net]

    def translation_loss(self, batch: SliceSet, _: torch.Generator | None = None) -> torch.Tensor:
        """MSE(F(input), middle) + MSE(B(middle), input); the two terms share no parameters."""
        x = batch.channel(self.context.modality)[:, None]
        y = batch.channel(self.middle)[:, None]
        return F.mse_loss(self.forward_net(x), y) + F.mse_loss(self.backward_net(y), x)

    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        self._require_middle(train.modalities)
        params = [*self.forward_net.parameters(), *self.backward_net.parameters()]
        optimizer = torch.optim.AdamW(params, lr=budget.lr, weight_decay=budget.weight_decay)
        return train_networks(
            self.networks(),
            self.translation_loss,
            train,
            val,
            budget,
            optimizer,
            self.context.seed,
            description=f"Cyclic-UNet {self.context.modality}→{self.middle}→{self.context.modality}",
            progress=self.context.progress,
            on_log=self.context.on_log,
        )

    @torch.inference_mode()
    def predict(self, batch: SliceSet) -> MethodOutput:
        self.forward_net.eval()
        self.backward_net.eval()
        x = batch.channel(self.context.modality)
        cycled = self.backward_net(self.forward_net(x[:, None]))[:, 0]
        return MethodOutput(
            anomaly_map=self.scoring(x, cycled, batch.brain),
            reconstruction=cycled,
            nfe=torch.full((len(batch),), 2, dtype=torch.long),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"forward": self.forward_net.state_dict(), "backward": self.backward_net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.forward_net.load_state_dict(state["forward"])
        self.backward_net.load_state_dict(state["backward"])
        self.forward_net.eval()
        self.backward_net.eval()
