"""Shared part of methods that score one network's reconstruction of the input (AE, DAE)."""

from __future__ import annotations

from typing import Any

import torch

from datasets.slices import SliceSet
from methods.base import AnomalyMethod, MethodOutput
from methods.postprocess import ResidualScoring


class SingleNetworkReconstruction(AnomalyMethod):
    """``predict`` = post-processed residual between the input and ``self.net(input)`` (NFE 1).

    Subclasses build ``self.net`` (``[B, 1, H, W] → [B, 1, H, W]``) and ``self.scoring`` in
    ``__init__`` and implement ``fit``; prediction and (de)serialisation live here once.
    """

    net: torch.nn.Module
    scoring: ResidualScoring

    def networks(self) -> list[torch.nn.Module]:
        return [self.net]

    @torch.inference_mode()
    def predict(self, batch: SliceSet) -> MethodOutput:
        self.net.eval()
        x = batch.channel(self.context.modality)
        reconstruction = self.net(x[:, None])[:, 0]
        return MethodOutput(
            anomaly_map=self.scoring(x, reconstruction, batch.brain),
            reconstruction=reconstruction,
            nfe=torch.ones(len(batch), dtype=torch.long),
        )

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.net.eval()
