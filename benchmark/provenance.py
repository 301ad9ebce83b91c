"""Where a result came from: git commit, package versions, device, seeds, config hashes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

_REPO = Path(__file__).resolve().parent.parent
_PACKAGES = ("torch", "numpy", "monai", "diffusers", "nibabel", "nilearn", "torchmetrics", "pandas", "hydra-core")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a cell is reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


#: cuBLAS workspace setting that makes CUDA matrix products deterministic (required by torch's deterministic mode).
CUBLAS_WORKSPACE = ":4096:8"


def set_deterministic(enabled: bool) -> None:
    """Turn torch's deterministic algorithms and the matching cuDNN flags on (or off, for speed on a GPU).

    On: ``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN deterministic without the
    benchmark autotuner, and ``CUBLAS_WORKSPACE_CONFIG`` (a user's own value is kept). ``warn_only``: an op
    without a deterministic CUDA kernel warns, naming the op, instead of aborting a run of hours; on the CPU
    every op this suite uses is deterministic. Off: all three back to torch's fast defaults (cuDNN autotuner
    on). Both states are set explicitly, so cells of one process never inherit each other's setting. Seeds are
    left alone (:func:`seed_everything`): MONAI's ``set_determinism`` reseeds and cannot switch off without
    drawing a new seed, so it is not used.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


@lru_cache(maxsize=1)
def git_commit() -> str:
    """``<sha>`` of HEAD, with ``+dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=_REPO, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if dirty else sha


def stable_hash(payload: Any, length: int = 12) -> str:
    """Short SHA-256 of a JSON-serialisable payload (keys sorted), for config hashes."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def device_name(device: torch.device) -> str:
    """Human-readable device, e.g. ``NVIDIA H100 80GB HBM3`` or
    ``cpu (AMD EPYC, family 26 model 2, AVX512, x86_64, 2 threads)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu ({cpu_description()}, {platform.machine()}, {threads} thread{'' if threads == 1 else 's'})"


@lru_cache(maxsize=1)
def cpu_description() -> str:
    """The CPU model and the vector instruction set torch's CPU kernels use (``AVX512``, ``AVX2``, ...).

    Why: CPU results are bit-reproducible on one kind of CPU only. torch and oneDNN pick kernels by instruction set
    and CPU, and other kernels round differently, so a trained network, and a single seed's Dice, differ in the
    last digits between CPU kinds; the device field says which kind a row came from.
    """
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():  # the first processor's block ends here
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:  # not Linux
        pass
    model = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        model += f", family {fields['cpu family']} model {fields['model']}"
    return f"{model}, {torch.backends.cpu.get_cpu_capability()}"


def environment() -> dict[str, str]:
    """Python, platform and package versions, for the report."""
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "not installed"
    return env
