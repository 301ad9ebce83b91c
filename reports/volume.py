"""The whole-volume section of the report: per data set and protocol a table of the slab metrics (methods as
rows; per modality subject Dice, false positives on healthy tissue, slice-level AUROC, lesion-wise detection),
per-subject Dice as box/strip plots, and one test subject's slab with every method's map and segmentation.

Reads the rows' ``vol_*`` fields (:mod:`benchmark.evaluate_volume`), the per-subject records and the stored slab
arrays; never models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.schema import SLAB_MAPS_ARRAY, slab_segmentation_array, stored_test_slab_of
from benchmark.store import ResultsStore
from reports.figures import MAP_CMAP, one_row_per_method, plt, save_figure, sns
from reports.tables import MISSING, Table, comparison_table

#: The whole-volume table's columns per modality.
VOLUME_METRICS: tuple[str, ...] = (
    "vol_dice", "vol_healthy_slice_fp", "vol_healthy_subject_fp", "vol_healthy_subject_flagged", "vol_slice_auroc",
    "vol_lesion_sens", "vol_fp_components", "vol_lesionwise_dice",
)  # fmt: skip
#: Slab slices shown per subject in the slab figure (lesion and lesion-free ones, spread over the slab).
SLAB_FIGURE_SLICES = 6


def has_volume_results(rows: pd.DataFrame) -> bool:
    """Whether any row carries whole-volume fields."""
    return "vol_view" in rows and bool(rows["vol_view"].notna().any())


def volume_table(
    rows: pd.DataFrame, protocol: str, dataset: str, modalities: list[str], method_order: tuple[str, ...]
) -> Table:
    """The whole-volume table of one data set and protocol (values: mean [95 % subject-bootstrap CI])."""
    of_data = rows[(rows["dataset"] == dataset) & (rows["protocol"] == protocol)]
    return comparison_table(
        rows, protocol, dataset, modalities, metrics=VOLUME_METRICS, method_order=method_order,
        degenerate_field="vol_degenerate", cost_columns=(), caption=volume_caption(of_data, protocol),
    )  # fmt: skip


def volume_caption(rows: pd.DataFrame, protocol: str) -> str:
    """The table's protocol, threshold source, test slab and why any value is missing (the metrics are defined
    once, in :func:`definitions`)."""
    first = rows.iloc[0] if len(rows) else pd.Series(dtype=object)
    threshold = (
        "threshold chosen on the slab for mean per-subject Dice over the lesion subjects (oracle: uses test labels)"
        if protocol == "oracle_global"
        else "threshold chosen on validation data, as in the slice table (no test label)"
    )
    counts = ", ".join(
        f"{_count(first, key)} {what}"
        for key, what in (("vol_n_subjects", "subjects"), ("vol_n_lesion_subjects", "with lesions"),
                          ("vol_n_healthy_subjects", "healthy"))
    )  # fmt: skip
    return (
        f"Whole volume, threshold protocol '{protocol}': {threshold}. Test slab: {counts}. Values: mean [95 % "
        "bootstrap CI over subjects]; bold = best (lowest for the false-positive columns)." + _missing_notes(rows)
    )


def definitions(rows: pd.DataFrame) -> str:
    """What every column of the whole-volume tables measures, with the settings stored in the rows."""
    first = rows.iloc[0]
    return (
        "Subj. DSC: per-subject 3-D Dice over the slab, mean over lesion subjects. FP healthy slices: flagged share "
        "of the brain pixels of lesion-free slices, per subject, mean over subjects. FP healthy subj.: flagged share "
        "of the brain of healthy test subjects; Healthy subj. flagged: share of healthy subjects with any "
        f"segmentation component of at least {_count(first, 'vol_min_component_voxels')} voxels. Slice AUROC: "
        f"slice score = {first.get('vol_slice_score_percentile', float('nan')):g}th percentile of the anomaly map "
        "over the slice's brain, target = the slice has a lesion voxel. Lesion-wise, on 3-D connected components "
        "(26-connectivity over the slab's slices) of at least that size: Lesion sens. = found / all lesions (found: "
        f"at least {first.get('vol_detection_overlap', float('nan')):g} of its voxels segmented); FP comp./subj. = "
        "segmentation components touching no lesion, mean per subject; Lesion-wise DSC as in BraTS 2023 (each "
        "lesion's Dice with the components meeting it, false-positive components counted as 0)."
    )


def _count(row: pd.Series, key: str) -> str:
    value = row.get(key)
    return "?" if value is None or pd.isna(value) else str(int(value))


def _missing_notes(rows: pd.DataFrame) -> str:
    """One footnote per metric that is NaN somewhere, with the reason stored in the rows."""
    notes = []
    for metric in VOLUME_METRICS:
        reason_column = f"{metric}_nan_reason"
        if reason_column not in rows:
            continue
        reasons = sorted({str(r) for r in rows[reason_column].dropna() if str(r)})
        if reasons:
            notes.append(f"{metric}: {'; '.join(reasons)}")
    return f" {MISSING} where not computable: " + " | ".join(notes) + "." if notes else ""


def per_subject_dice_figure(per_subject: pd.DataFrame, rows: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """Per-subject 3-D Dice of the lesion subjects as box + strip plots per method, a panel per modality."""
    shown = per_subject[~per_subject["healthy"].astype(bool)] if "healthy" in per_subject else per_subject
    if shown.empty:
        return []
    labels = rows.drop_duplicates("cell").set_index("cell")["method_label"]
    shown = shown.assign(method_label=shown["cell"].map(labels))
    order = list(dict.fromkeys(rows["method_label"]))
    grid = sns.catplot(
        data=shown, x="dice", y="method_label", col="modality", kind="box", order=order, height=2.8, aspect=1.3,
        color="0.85", fliersize=0, sharex=True,
    )  # fmt: skip
    for ax, modality in zip(grid.axes.flat, grid.col_names):
        sns.stripplot(
            data=shown[shown["modality"] == modality], x="dice", y="method_label", order=order, ax=ax, size=3,
            color="tab:blue", jitter=0.2,
        )  # fmt: skip
    grid.set(xlim=(0.0, 1.0))
    grid.set_axis_labels("per-subject Dice (slab)", "")
    grid.set_titles("{col_name}")
    return save_figure(grid.figure, out_dir, stem)


def slab_figure(store: ResultsStore, rows: pd.DataFrame, out_dir: Path, stem: str) -> list[Path]:
    """One test subject's slab (the lesion subject with the most lesion-free slices): input with the lesion
    outline, then per method its anomaly map (its slab's own 1st–99th percentile scale over the brain) with the
    segmentation outlined, on lesion and lesion-free slices. ``rows``: one ok row per method with slab results."""
    rows = rows[rows["vol_view"].notna()] if "vol_view" in rows else rows.iloc[:0]
    if rows.empty:
        return []
    data = store.arrays(stored_test_slab_of(rows.iloc[0]))
    positions = _subject_slices(data)
    if not positions:
        return []
    n_cols = len(positions)
    shown_brain = data["brain"][positions] > 0
    grey = np.percentile(data["images"][positions][shown_brain], [0.5, 99.5]) if shown_brain.any() else (None, None)
    fig, axes = plt.subplots(1 + len(rows), n_cols, figsize=(1.3 * n_cols, 1.35 * (1 + len(rows))), squeeze=False)
    for c, k in enumerate(positions):
        lesion = bool(data["labels"][k].any())
        ax = axes[0, c]
        ax.imshow(
            data["images"][k].astype(np.float32), cmap="gray", vmin=grey[0], vmax=grey[1], interpolation="nearest"
        )
        if lesion:
            ax.contour(data["labels"][k].astype(float), levels=[0.5], colors="lime", linewidths=0.5)
        ax.set_title(f"z={int(data['slice_index'][k])} {'lesion' if lesion else 'healthy'}", fontsize=6)
    for r, (_, row) in enumerate(rows.iterrows(), start=1):
        arrays = store.arrays(row["cell"])
        maps = arrays[SLAB_MAPS_ARRAY][positions].astype(np.float32)
        segmentation = arrays[slab_segmentation_array(row["protocol"])][positions]
        brain = data["brain"][positions] > 0
        low, high = np.percentile(maps[brain], [1, 99]) if brain.any() else (0.0, 1.0)
        for c in range(n_cols):
            ax = axes[r, c]
            ax.imshow(np.where(brain[c], maps[c], low), cmap=MAP_CMAP, vmin=low, vmax=high, interpolation="nearest")
            if segmentation[c].any():
                ax.contour(segmentation[c].astype(float), levels=[0.5], colors="cyan", linewidths=0.5)
        axes[r, 0].set_ylabel(str(row["method_label"]), fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    first = rows.iloc[0]
    subject = data["subjects"][positions[0]]
    fig.suptitle(
        f"{first['dataset']} {first['modality']} — subject {subject}: slab slices, lesion outline (green), "
        f"segmentation under '{first['protocol']}' (cyan)",
        fontsize=7,
    )
    return save_figure(fig, out_dir, stem)


def _subject_slices(data: dict[str, np.ndarray]) -> list[int]:
    """Up to :data:`SLAB_FIGURE_SLICES` slab positions of the lesion subject with the most lesion-free slices,
    spread evenly over its slab (its largest lesion slice included)."""
    subjects = data["subjects"]
    has_lesion = data["labels"].reshape(len(subjects), -1).any(1)
    frame = pd.DataFrame({"subject": subjects, "lesion": has_lesion})
    per_subject = frame.groupby("subject", sort=False)["lesion"].agg(["sum", "size"])
    lesion_subjects = per_subject[per_subject["sum"] > 0]
    if lesion_subjects.empty:
        return []
    chosen = (lesion_subjects["size"] - lesion_subjects["sum"]).idxmax()
    positions = np.flatnonzero(subjects == chosen)
    picks = set(np.linspace(0, len(positions) - 1, min(SLAB_FIGURE_SLICES, len(positions))).round().astype(int))
    areas = data["labels"][positions].reshape(len(positions), -1).sum(1)
    picks.add(int(np.argmax(areas)))
    return [int(positions[i]) for i in sorted(picks)][: SLAB_FIGURE_SLICES + 1]


def figure_rows(rows: pd.DataFrame, method_order: tuple[str, ...]) -> pd.DataFrame:
    """One ok row per method of one (data set, modality, protocol) group, for the slab figure."""
    return one_row_per_method(rows[rows["status"] == "ok"], method_order)
