"""The result schema: what identifies a cell, what a result row and a per-image record hold, and the names of
the arrays stored beside them. Every writer and reader (runner, statistics, figures, reports) takes names from
here, so no key is formatted by hand in more than one place.

A *cell* is one (dataset, data, modality, method configuration, seed) run; it writes one row per threshold
protocol. A row carries its whole method configuration twice: as YAML (``config``) and flattened into
columns (``param.<name>``, ``train.<field>``), so that tables can tell configurations apart and sweeps can
read the swept value directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics import SIZE_BINS

PARAM_PREFIX = "param."
TRAIN_PREFIX = "train."

#: Row columns that, with the flattened ``param.*`` / ``train.*`` columns, say which configuration a row is.
CONFIGURATION_COLUMNS: tuple[str, ...] = ("image_size", "preprocess_hash", "data_hash")

#: Columns of the tidy per-image table (one record per cell, protocol and test slice).
PER_IMAGE_COLUMNS: tuple[str, ...] = (
    "cell", "method", "method_key", "method_label", "config_hash", "dataset", "modality", "seed", "protocol",
    "subject", "slice_index", "lesion_pixels", "size_bin", "dice", "sens", "prec", "ssim_paper", "ssim_normal",
    "threshold",
)  # fmt: skip
#: Per-image metric arrays copied into the per-image table (others, e.g. tp/fp/fn, stay out of it).
PER_IMAGE_METRICS: tuple[str, ...] = ("dice", "sens", "prec", "ssim_paper", "ssim_normal")


def cell_key(dataset: str, modality: str, method: str, seed: int, config_hash: str) -> str:
    """File-safe name of a cell in the results store (the config hash makes it unique)."""
    return f"{dataset}__{modality}__{method}__s{seed}__{config_hash}"


def stored_test_split(dataset: str, modality: str, preprocess_hash: str, data_hash: str) -> str:
    """Arrays of a test split's inputs, labels and brain masks (shared by every cell on that data)."""
    return f"testset__{dataset}__{modality}__{preprocess_hash}__{data_hash}"


def stored_test_split_of(row: Mapping[str, Any]) -> str:
    """:func:`stored_test_split` of a result row."""
    return stored_test_split(row["dataset"], row["modality"], row["preprocess_hash"], row["data_hash"])


def stored_test_slab(dataset: str, modality: str, preprocess_hash: str, data_hash: str) -> str:
    """Arrays of the whole test slab's inputs, labels, brain masks, subjects and slice indices (shared like
    :func:`stored_test_split`)."""
    return f"testslab__{dataset}__{modality}__{preprocess_hash}__{data_hash}"


def stored_test_slab_of(row: Mapping[str, Any]) -> str:
    """:func:`stored_test_slab` of a result row."""
    return stored_test_slab(row["dataset"], row["modality"], row["preprocess_hash"], row["data_hash"])


def segmentation_array(protocol: str) -> str:
    """Name of a cell's binary test segmentation under ``protocol`` in its arrays file."""
    return f"segmentation__{protocol}"


#: Name of a cell's anomaly maps on the whole test slab in its arrays file.
SLAB_MAPS_ARRAY = "slab_anomaly_maps"


def slab_segmentation_array(protocol: str) -> str:
    """Name of a cell's binary segmentation of the whole test slab under ``protocol`` in its arrays file."""
    return f"slab_segmentation__{protocol}"


#: Identity columns that every per-subject record (``per_subject.parquet``) starts with.
PER_SUBJECT_IDENTITY: tuple[str, ...] = (
    "cell", "method", "method_key", "method_label", "config_hash", "dataset", "modality", "seed",
)  # fmt: skip


def per_subject_records(header: Mapping[str, Any], frames: list[pd.DataFrame]) -> pd.DataFrame | None:
    """The per-subject whole-volume records of a cell (one frame per protocol) with the cell's identity
    columns first; None without any."""
    if not frames:
        return None
    records = pd.concat(frames, ignore_index=True)
    for column in PER_SUBJECT_IDENTITY:
        records[column] = header[column]
    first = [*PER_SUBJECT_IDENTITY, "protocol"]
    return records[first + [c for c in records.columns if c not in first]]


def flatten_config(method_config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"params": {...}, "train": {...}}`` → ``{"param.<path>": v, "train.<field>": v}``.

    Nested mappings are flattened with dots (``param.oracle.enabled``); lists become compact JSON text so
    that every value is a hashable scalar a table can compare and a CSV can hold.
    """
    flat: dict[str, Any] = {}
    for prefix, section in ((PARAM_PREFIX, "params"), (TRAIN_PREFIX, "train")):
        flat.update(_flatten(method_config.get(section) or {}, prefix))
    return flat


def _flatten(mapping: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (list, tuple)):
            out[f"{prefix}{key}"] = json.dumps(list(value), separators=(",", ":"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_column(parameter: str) -> str:
    """Row column of a method-config path: ``params.tau_percentile`` → ``param.tau_percentile``,
    ``train.steps`` → ``train.steps``."""
    section, _, rest = parameter.partition(".")
    if section == "params" and rest:
        return PARAM_PREFIX + rest
    if section == "train" and rest:
        return TRAIN_PREFIX + rest
    raise KeyError(f"config path {parameter!r}: expected params.<name> or train.<field>")


def per_image_records(
    header: Mapping[str, Any],
    protocol: str,
    per_image: Mapping[str, np.ndarray],
    subjects: tuple[str, ...],
    slice_index: tuple[int, ...],
) -> pd.DataFrame:
    """Per-image records of one protocol result of a cell: identity from the row ``header``, the test
    slices' subject and index, and the per-image metric arrays (``threshold`` included)."""
    n = len(subjects)
    frame = pd.DataFrame(
        {
            "subject": list(subjects),
            "slice_index": np.asarray(slice_index, dtype=np.int64),
            "lesion_pixels": np.asarray(per_image["lesion_px"], dtype=np.int64),
            "size_bin": [SIZE_BINS[int(b)] for b in per_image["size_bin"]],
        }
    )
    for metric in (*PER_IMAGE_METRICS, "threshold"):
        values = per_image.get(metric)
        frame[metric] = np.full(n, np.nan) if values is None else np.asarray(values, dtype=np.float64)
    for column in ("cell", "method", "method_key", "method_label", "config_hash", "dataset", "modality", "seed"):
        frame[column] = header[column]
    frame["protocol"] = protocol
    return frame[list(PER_IMAGE_COLUMNS)]
