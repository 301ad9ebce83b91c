"""Trained method state saved per (dataset, modality, method, variant, seed, config hash).

Later runs reuse a checkpoint whose key matches unless the user asks to retrain (``retrain=true``).
The key includes a hash of the method's parameters, its training budget and the pre-processing, so a
changed config never silently reuses stale weights.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from datasets.cache import atomic_write
from methods.base import TrainLog


class CheckpointStore:
    """Files ``<root>/<dataset>/<modality>/<method>/<variant>/seed<seed>-<hash>.pt``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, dataset: str, modality: str, method: str, variant: str, seed: int, config_hash: str) -> Path:
        safe_variant = "".join(c if c.isalnum() or c in "-_" else "_" for c in variant)
        return self.root / dataset / modality / method / safe_variant / f"seed{seed}-{config_hash}.pt"

    def save(self, path: Path, state: dict[str, Any], log: TrainLog) -> None:
        """Atomic save (temporary file + rename): a crash never leaves a truncated checkpoint."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: torch.save({"state": state, "train_log": asdict(log)}, f))

    def load(self, path: Path, device: torch.device) -> tuple[dict[str, Any], TrainLog]:
        payload = torch.load(path, map_location=device, weights_only=True)
        return payload["state"], TrainLog(**payload["train_log"])
