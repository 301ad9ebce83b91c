"""The real-MRI reference statistics the synthetic generator is calibrated and tested against.

``tests/data/real_ms_reference.json`` holds, per working resolution, patient and modality, the statistics of the
three MS patients of ``../shared/real/ms-ljubljana`` (Ljubljana MS lesion dataset, CC-BY 4.0) computed by the
statistics command (:mod:`datasets.dataset_statistics`): numbers only, never the scans. The test that it still
matches the scans (``tests/integration/test_real_scans.py``) runs where the scans are present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "real_ms_reference.json"
REFERENCE_SIZES = (64, 128)
STATISTICS = ("healthy_mean", "healthy_std", "texture", "spectrum_slope", "contrast")


def read_reference() -> dict[str, Any]:
    """The recorded reference (``statistics[size][patient][modality][statistic]``)."""
    data: dict[str, Any] = json.loads(REFERENCE_FILE.read_text())
    return data


def reference_range(size: int, modality: str, statistic: str) -> tuple[float, float]:
    """(min, max) of a statistic over the reference patients at ``size`` px."""
    values = [p[modality][statistic] for p in read_reference()["statistics"][str(size)].values()]
    return min(values), max(values)
