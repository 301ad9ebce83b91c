"""Fail early and clearly when Python finds another ``datasets`` package instead of this suite's.

This suite's top-level data package is called ``datasets``, like the Hugging Face library. If both are
installed, whichever comes first on ``sys.path`` wins, and the wrong one would produce confusing errors
deep inside a run. We check a marker attribute once, when ``benchmark`` or ``methods`` is imported.
"""

from __future__ import annotations

import importlib

_MARKER = "IS_BRAIN_UAS_BENCH_DATASETS"


class DatasetsPackageClash(ImportError):
    """Another package named ``datasets`` shadows this suite's data package."""


def check_datasets_package() -> None:
    """Raise :class:`DatasetsPackageClash` unless ``import datasets`` gives this suite's package."""
    module = importlib.import_module("datasets")
    if getattr(module, _MARKER, False):
        return
    location = getattr(module, "__file__", None) or "an unknown location"
    raise DatasetsPackageClash(
        f"`import datasets` found a different package at {location} (probably Hugging Face "
        "`datasets`), not this benchmark's `datasets/` data package. Fix: run from the repository "
        "root after `pip install -e .` in this project's own virtual environment "
        "(`python3 -m venv .venv`, see README), or `pip uninstall datasets` in the environment you use."
    )
