"""Trained method state saved per (dataset, modality, seed, training hash).

The training hash covers the pre-processing, the method's training identity (by default its whole
config; see ``AnomalyMethod.training_identity``) and its training budget, so a changed config never
silently reuses stale weights, while methods that train the same network (DDPM and AutoDDPM) share one
checkpoint. Later runs reuse a matching checkpoint unless the user asks to retrain (``retrain=true``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from datasets.cache import atomic_write
from methods.base import TrainLog


class CheckpointStore:
    """Files ``<root>/<dataset>/<modality>/seed<seed>-<training hash>.pt`` (state after ``fit``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, dataset: str, modality: str, seed: int, training_hash: str) -> Path:
        return self.root / dataset / modality / f"seed{seed}-{training_hash}.pt"

    def save(self, path: Path, state: dict[str, Any], log: TrainLog) -> None:
        """Atomic save (temporary file + rename): a crash never leaves a truncated checkpoint."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save({"state": state, "train_log": asdict(log)}, f))

    def load(self, path: Path, device: torch.device) -> tuple[dict[str, Any], TrainLog]:
        payload = torch.load(path, map_location=device, weights_only=True)
        return payload["state"], TrainLog(**payload["train_log"])
