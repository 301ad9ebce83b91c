"""Dataset statistics (the dicts of :func:`datasets.dataset_statistics.dataset_statistics`, or their JSON read
back, where NaN is null) as a markdown table and a figure, one column or colour per dataset: intensity
histograms of healthy tissue and lesions, radially averaged power spectra, lesion share per lesion slice."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

ROWS: tuple[tuple[str, str], ...] = (
    ("healthy mean", "healthy.mean"),
    ("healthy std", "healthy.std"),
    ("healthy p5 / p95", "healthy.quantiles"),
    ("texture (mean abs. horizontal difference)", "texture"),
    ("spectrum slope (log power / log k)", "spectrum_slope"),
    ("lesion contrast ((lesion - healthy) / std healthy)", "contrast"),
)
#: per-subject ranges shown after the pooled value, ``pooled (min – max)``
RANGES = {
    "healthy.std": "healthy_std",
    "texture": "texture",
    "spectrum_slope": "spectrum_slope",
    "contrast": "contrast",
}


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _fmt(value: Any, digits: int = 3) -> str:
    x = _num(value)
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _get(block: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        block = block[key]
    return block


def _cell(block: dict[str, Any] | None, dotted: str) -> str:
    if block is None:
        return "n/a"
    if dotted == "healthy.quantiles":
        q = block["healthy"]["quantiles"]
        return f"{_fmt(q['0.05'], 2)} / {_fmt(q['0.95'], 2)}"
    text = _fmt(_get(block, dotted))
    if dotted in RANGES:
        r = block["per_subject_range"][RANGES[dotted]]
        text += f" ({_fmt(r['min'])} – {_fmt(r['max'])})" if r["n"] > 1 else ""
    return text


def _label(stats: dict[str, Any]) -> str:
    return f"{stats['dataset']} ({stats['image_size']} px)"


def markdown_table(datasets: Sequence[dict[str, Any]]) -> str:
    """One row per modality and statistic, one column per dataset: the pooled value and, in brackets, the range
    over subjects; then the lesion share per lesion slice and the lesion load per subject."""
    header = "| modality | statistic | " + " | ".join(_label(d) for d in datasets) + " |"
    lines = [header, "|" + "---|" * (len(datasets) + 2)]
    for modality in _modalities(datasets):
        for title, dotted in ROWS:
            cells = [_cell(d["modalities"].get(modality), dotted) for d in datasets]
            lines.append(f"| {modality} | {title} | " + " | ".join(cells) + " |")
    shares = [d["lesion_share_per_slice"] for d in datasets]
    lines.append(
        "| lesions | share of brain per lesion slice: median (p5 – p95), n | "
        + " | ".join(
            f"{_fmt(s['quantiles']['0.5'])} ({_fmt(s['quantiles']['0.05'])} – "
            f"{_fmt(s['quantiles']['0.95'])}), {s['n_slices']}"
            for s in shares
        )  # fmt: skip
        + " |"
    )
    loads = [[v["brain_share"] for v in d["lesion_per_subject"].values()] for d in datasets]
    lines.append(
        "| lesions | lesion share of brain per val/test subject: median (min – max), n | "
        + " | ".join(_spread(v) for v in loads)
        + " |"
    )
    note = "Pooled over every slice; in brackets the range over subjects. Definitions: the JSON's `definitions`."
    return "\n".join(lines) + f"\n\n{note}\n"


def _spread(values: list[Any]) -> str:
    v = np.asarray([_num(x) for x in values], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "–"
    return f"{np.median(v):.3f} ({v.min():.3f} – {v.max():.3f}), {v.size}"


def _modalities(datasets: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(m for d in datasets for m in d["modalities"]))


def statistics_figure(datasets: Sequence[dict[str, Any]], path: Path) -> Path:
    """Per modality a row: healthy (solid) and lesion (dashed) intensity densities, and the healthy-tissue power
    spectrum (log-log); a last row with the lesion share per lesion slice. One colour per dataset."""
    modalities = _modalities(datasets)
    fig, axes = plt.subplots(len(modalities) + 1, 2, figsize=(10, 2.6 * (len(modalities) + 1)), squeeze=False)
    colours = [plt.get_cmap("tab10")(i % 10) for i in range(len(datasets))]
    for d, colour in zip(datasets, colours):
        label = _label(d)
        for row, modality in enumerate(modalities):
            block = d["modalities"].get(modality)
            if block is None:
                continue
            h = block["histogram"]
            centres = _centres(h["edges"])
            axes[row, 0].plot(centres, h["healthy"], color=colour, label=f"{label}: healthy")
            axes[row, 0].plot(centres, h["lesion"], color=colour, linestyle="--", label=f"{label}: lesion")
            power = np.asarray([_num(p) for p in block["spectrum"]["power"]])
            axes[row, 1].loglog(block["spectrum"]["k"], power, color=colour, marker=".", label=label)
        share = d["lesion_share_per_slice"]["histogram"]
        axes[-1, 0].step(_centres(share["edges"]), share["density"], where="mid", color=colour, label=label)
    for row, modality in enumerate(modalities):
        axes[row, 0].set(title=f"{modality}: intensity of healthy tissue / lesions", xlabel="normalised intensity",
                         ylabel="density")  # fmt: skip
        axes[row, 1].set(title=f"{modality}: healthy-tissue power spectrum", xlabel="k (cycles per patch)",
                         ylabel="power")  # fmt: skip
        axes[row, 1].xaxis.set_major_formatter(ScalarFormatter())
        axes[row, 1].xaxis.set_minor_formatter(NullFormatter())
    axes[-1, 0].set(title="lesion share of brain per lesion slice", xlabel="share", ylabel="density")
    axes[-1, 1].axis("off")
    for ax in axes[:, :1].ravel().tolist() + axes[:-1, 1].tolist():
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _centres(edges: list[float]) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    return (e[1:] + e[:-1]) / 2
