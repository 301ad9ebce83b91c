"""AE baseline: dense-bottleneck convolutional auto-encoder (Baur et al., MedIA 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from datasets.slices import SliceSet
from methods.base import MethodContext, TrainBudget, TrainLog, register
from methods.nets.conv_ae import DenseBottleneckAE
from methods.postprocess import ResidualKind, ResidualScoring
from methods.reconstruction import SingleNetworkReconstruction
from methods.training import train_networks


@register("ae")
class AutoEncoder(SingleNetworkReconstruction):
    """Reconstruct the slice through a 128-d bottleneck; anomaly map = post-processed residual.

    Network and loss follow baselines.md (4 x [5x5 conv s2, BN, LeakyReLU] 32-64-128-128, dense z,
    dropout 0.2, mirrored decoder, 1x1 conv; L1 summed per image; Adam β1 = 0.5). Map: residual x
    eroded brain mask, then a median filter.
    """

    label = "AE"
    deviations = (
        "Training length is a step budget with early stopping on the validation loss (reference: "
        "epochs with early stopping); batch size and learning rate come from the config (reference 128 and "
        "1e-4; the CPU default uses 32 and 1e-3 so that the AE converges within minutes).",
        "At image sizes other than 128 the bottleneck grid is size/16 (8x8 at 128, 4x4 at 64).",
        "Connected-component removal (<= 7 px) is not applied (optional in the reference).",
    )

    def __init__(
        self,
        context: MethodContext,
        widths: Sequence[int] = (32, 64, 128, 128),
        latent_dim: int = 128,
        dropout: float = 0.2,
        residual: ResidualKind = "abs",
        erosion: int = 2,
        median: int = 5,
        **params: Any,
    ) -> None:
        super().__init__(context, **params)
        self.net = DenseBottleneckAE(context.image_size, widths, latent_dim, dropout).to(context.device)
        self.scoring = ResidualScoring(residual=residual, erosion=erosion, median=median)

    def fit(self, train: SliceSet, val: SliceSet, budget: TrainBudget) -> TrainLog:
        modality = self.context.modality

        def l1_summed_per_image(batch: SliceSet, _: torch.Generator) -> torch.Tensor:
            x = batch.channel(modality)[:, None]
            return (self.net(x) - x).abs().sum(dim=(1, 2, 3)).mean()

        optimizer = torch.optim.Adam(
            self.net.parameters(), lr=budget.lr, betas=(0.5, 0.999), weight_decay=budget.weight_decay
        )
        return train_networks(
            [self.net],
            l1_summed_per_image,
            train,
            val,
            budget,
            optimizer,
            self.context.seed,
            description=f"AE {modality}",
            progress=self.context.progress,
            on_log=self.context.on_log,
        )
