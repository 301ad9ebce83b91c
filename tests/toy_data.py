"""Tiny in-memory SliceSets for fast tests: disk-shaped 'brains' with smooth texture and bright or dark
blob lesions, built directly as tensors (no NIfTI, no generator)."""

from __future__ import annotations

import torch

from datasets.slices import SliceSet, Splits

MODALITIES = ("flair", "t1")


def toy_slices(n: int, size: int = 32, lesions: bool = False, seed: int = 0, lesion_radius: float = 4.0) -> SliceSet:
    """``n`` slices of two modalities; with ``lesions`` each slice gets one blob, bright on FLAIR and
    dark on T1, at a random position inside the brain."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    c = (size - 1) / 2
    brain = (((yy - c) ** 2 + (xx - c) ** 2) <= (0.42 * size) ** 2).float()
    images, labels = [], []
    for _ in range(n):
        phase = torch.rand(2, generator=g) * 6.28
        texture = 0.6 * torch.sin(xx / 3 + phase[0]) * torch.cos(yy / 4 + phase[1])
        noise = 0.05 * torch.randn(size, size, generator=g)
        flair = (0.5 + texture + noise) * brain - 3 * (1 - brain)
        t1 = (0.8 - texture + noise) * brain - 3 * (1 - brain)
        label = torch.zeros(size, size, dtype=torch.bool)
        if lesions:
            angle, dist = torch.rand(2, generator=g)
            cy = c + (0.2 * size) * dist * torch.sin(angle * 6.28)
            cx = c + (0.2 * size) * dist * torch.cos(angle * 6.28)
            label = ((yy - cy) ** 2 + (xx - cx) ** 2) <= lesion_radius**2
            flair = torch.where(label, flair + 2.5, flair)
            t1 = torch.where(label, t1 - 2.0, t1)
        images.append(torch.stack([flair, t1]))
        labels.append(label)
    return SliceSet(
        images=torch.stack(images),
        brain=brain.expand(n, size, size).clone(),
        labels=torch.stack(labels),
        modalities=MODALITIES,
        subjects=tuple(f"sub{i // 2:03d}" for i in range(n)),
        slice_index=tuple(70 + i % 2 for i in range(n)),
    )


def toy_splits(size: int = 32, n_train: int = 24, n_val: int = 8, n_test: int = 8) -> Splits:
    return Splits(
        train=toy_slices(n_train, size, seed=1),
        val=toy_slices(n_val, size, seed=2),
        test=toy_slices(n_test, size, lesions=True, seed=3),
        name="toy",
        preprocess_hash="toy000000000",
    )
