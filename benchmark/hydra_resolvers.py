"""OmegaConf resolvers that ``configs/`` uses, registered on import. Every command-line module with a
``@hydra.main`` imports this first (it imports nothing heavy), and so does :mod:`benchmark.config`, so the config
resolves wherever the suite reads it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from omegaconf import OmegaConf

MAX_DIRNAME = 120  # characters of a multirun job folder name (file systems allow 255 per component)


def job_dirname(override_dirname: str) -> str:
    """A multirun job's folder name from its overrides: slashes made safe, and when too long for a file
    system, the first characters plus a hash of the whole (still unique and still readable)."""
    name = override_dirname.replace("/", "_") or "job"
    if len(name) <= MAX_DIRNAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: MAX_DIRNAME - 12]}__{digest}"


def available_modalities(wanted: Sequence[str], available: Sequence[str]) -> list[str]:
    """An experiment's default modalities (``experiment.preferred_modalities``): those the dataset has, in the
    experiment's order. ``experiment.modalities=[...]`` replaces this interpolation and is checked as given."""
    return [str(m) for m in wanted if m in available]


OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)
OmegaConf.register_new_resolver("available_modalities", available_modalities, replace=True)
