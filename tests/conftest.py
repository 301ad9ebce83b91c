"""Shared fixtures: one tiny built-in synthetic BraTS-layout set and its slice cache per test session,
so that end-to-end tests pay for generation and NIfTI reading once."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SYNTHETIC_SUBJECTS = 6


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """A folder holding ``synthetic_brats/`` (generated on first use) and a slice cache."""
    return tmp_path_factory.mktemp("shared_data")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under ``tests/integration/`` runs the real pipeline on data: mark it ``slow``, so that
    ``pytest -m "not slow"`` is the quick loop (``tests/unit/``)."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.slow)
