"""Figures from the results store (PNG and PDF): the paper's Fig. 2 qualitative grid, Dice by lesion size,
reconstruction examples. Read only rows and saved arrays, never models.

Anomaly maps of different methods live on different scales; the grid shows each method's map after its
own test-set min–max normalisation (the ``norm_min``/``norm_max`` of the row's threshold protocol,
which is what the threshold was applied to), so one colour scale [0, 1] serves every map of a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402

from benchmark.schema import segmentation_array, stored_test_split_of  # noqa: E402
from benchmark.store import ResultsStore  # noqa: E402
from reports.tables import order_methods  # noqa: E402

FORMATS: tuple[str, ...] = ("png", "pdf")
MAP_CMAP = "inferno"
SIZE_FIELDS: tuple[tuple[str, str], ...] = (("dice_small", "small"), ("dice_medium", "medium"), ("dice_large", "large"))


def save_figure(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` into ``out_dir`` and close it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{fmt}" for fmt in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def example_indices(lesion_px: np.ndarray, n: int) -> list[int]:
    """``n`` test slices spread over the lesion sizes (quantiles of the lesion area), largest first."""
    order = np.argsort(-np.asarray(lesion_px), kind="stable")
    n = min(n, len(order))
    picks = np.linspace(0, len(order) - 1, n).round().astype(int) if n > 1 else np.array([0])
    return [int(order[i]) for i in dict.fromkeys(picks)]


def stored_test_set(store: ResultsStore, row: pd.Series) -> dict[str, np.ndarray]:
    """The stored test inputs, labels, brain masks and subjects of a row's data set and modality."""
    return store.arrays(stored_test_split_of(row))


def normalised_maps(maps: np.ndarray, row: pd.Series) -> np.ndarray:
    """Maps scaled to [0, 1] with the protocol's test-set normalisation (else the maps' own min–max)."""
    low, high = row.get("norm_min"), row.get("norm_max")
    if low is None or high is None or not np.isfinite([low, high]).all() or high <= low:
        low, high = float(np.min(maps)), float(np.max(maps))
    return np.clip((maps.astype(np.float32) - low) / max(high - low, 1e-12), 0.0, 1.0)


def qualitative_grid(
    store: ResultsStore, rows: pd.DataFrame, out_dir: Path, stem: str, n_examples: int = 4
) -> list[Path]:
    """Fig. 2: per test slice (figure row) the input, the ground truth and each method's anomaly map and
    binary segmentation. ``rows``: one ok row per method (one data set, modality and protocol)."""
    if rows.empty:
        return []
    data = stored_test_set(store, rows.iloc[0])
    picks = example_indices(data["labels"].reshape(len(data["labels"]), -1).sum(1), n_examples)
    methods = []  # (label, normalised maps, segmentations) per method
    for _, row in rows.iterrows():
        arrays = store.arrays(row["cell"])
        segmentations = arrays[segmentation_array(row["protocol"])]
        methods.append((row["method_label"], normalised_maps(arrays["anomaly_maps"], row), segmentations))
    n_cols = 2 + 2 * len(methods)
    fig, axes = plt.subplots(len(picks), n_cols, figsize=(1.4 * n_cols, 1.5 * len(picks)), squeeze=False)
    for r, index in enumerate(picks):
        panels: list[tuple[str, Any, str, tuple[int, int] | None]] = [("Input", data["images"][index], "gray", None)]
        panels.append(("Ground truth", data["labels"][index], "gray", (0, 1)))
        for label, maps, segmentations in methods:
            panels.append((f"{label}\nmap", maps[index], MAP_CMAP, (0, 1)))
            panels.append((f"{label}\nseg.", segmentations[index], "gray", (0, 1)))
        for c, (title, panel, cmap, limits) in enumerate(panels):
            ax = axes[r, c]
            vmin, vmax = limits if limits is not None else (None, None)
            ax.imshow(np.asarray(panel, dtype=np.float32), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=6)
        axes[r, 0].set_ylabel(f"{data['subjects'][index]}", fontsize=5)
    scale = plt.cm.ScalarMappable(norm=Normalize(0.0, 1.0), cmap=MAP_CMAP)
    fig.subplots_adjust(right=0.9)
    fig.colorbar(scale, cax=fig.add_axes((0.92, 0.3, 0.01, 0.4)), label="normalised anomaly score")
    first = rows.iloc[0]
    fig.suptitle(f"{first['dataset']} {first['modality']} — threshold protocol {first['protocol']}", fontsize=8)
    return save_figure(fig, out_dir, stem)


def dice_by_size(rows: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """Bars of mean Dice per lesion-size bin and method, one panel per (data set, modality)."""
    present = [f for f, _ in SIZE_FIELDS if f in rows]
    if rows.empty or not present:
        return []
    long = rows.melt(
        id_vars=["dataset", "modality", "method_label"], value_vars=present, var_name="bin", value_name="Dice"
    )
    long["bin"] = long["bin"].map(dict(SIZE_FIELDS))
    long["panel"] = long["dataset"] + " " + long["modality"]
    grid = sns.catplot(
        data=long, x="bin", y="Dice", hue="method_label", col="panel", kind="bar", errorbar=None,
        order=[name for _, name in SIZE_FIELDS], height=2.6, aspect=1.2, sharey=True,
    )  # fmt: skip
    grid.set_axis_labels("lesion size", "mean Dice")
    grid.set_titles("{col_name}")
    grid.legend.set_title("")
    return save_figure(grid.figure, out_dir, stem)


def reconstruction_examples(
    store: ResultsStore, rows: pd.DataFrame, out_dir: Path, stem: str, n_examples: int = 4
) -> list[Path]:
    """Input, ground-truth outline and each reconstruction-based method's pseudo-healthy image."""
    # (row, arrays of its cell), then (row, its reconstructions)
    with_recon: list[tuple[pd.Series, Any]] = [(row, store.arrays(row["cell"])) for _, row in rows.iterrows()]
    with_recon = [(row, a["reconstructions"]) for row, a in with_recon if "reconstructions" in a]
    if not with_recon:
        return []
    data = stored_test_set(store, with_recon[0][0])
    picks = example_indices(data["labels"].reshape(len(data["labels"]), -1).sum(1), n_examples)
    n_cols = 1 + len(with_recon)
    fig, axes = plt.subplots(len(picks), n_cols, figsize=(1.5 * n_cols, 1.5 * len(picks)), squeeze=False)
    for r, index in enumerate(picks):
        image = data["images"][index].astype(np.float32)
        limits = (float(image.min()), float(image.max()))  # same grey scale for input and reconstructions
        panels = [("Input", image)] + [(row["method_label"], rec[index].astype(np.float32)) for row, rec in with_recon]
        for c, (title, panel) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, cmap="gray", vmin=limits[0], vmax=limits[1], interpolation="nearest")
            if c == 0:
                ax.contour(data["labels"][index].astype(float), levels=[0.5], colors="red", linewidths=0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=6)
    first = with_recon[0][0]
    fig.suptitle(f"Reconstructions — {first['dataset']} {first['modality']}", fontsize=8)
    return save_figure(fig, out_dir, stem)


def one_row_per_method(rows: pd.DataFrame, method_order: Sequence[str] | None = None) -> pd.DataFrame:
    """The first seed's row of every method (figures show one model per method), in ``method_order``."""
    return order_methods(rows.sort_values("seed", kind="stable").drop_duplicates("method_label"), method_order)
