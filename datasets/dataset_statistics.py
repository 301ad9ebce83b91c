"""Statistics of one loaded dataset (:class:`~datasets.slices.Splits`), per modality and subject, as a JSON-ready
dict: what ``python -m benchmark.dataset_stats`` writes and what the built-in synthetic set records beside its
``dataset_description.json`` (:func:`record_statistics`).

Which slices: every slice the loader returns once, i.e. ``train`` and ``val`` (healthy slices of the train and
val subjects), ``val_labelled`` (the val subjects' lesion slices) and ``test_slab`` (every brain slice of the
test subjects' slice range; ``test`` is a view of it and not counted twice). A train subject therefore
contributes only its lesion-free slices. The statistic functions are :mod:`datasets.statistics`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from datasets import statistics as st
from datasets.slices import SliceSet, Splits

STATISTICS_FILE = "dataset_statistics.json"
VERSION = 1
HISTOGRAM_EDGES = np.linspace(-3.5, 7.0, 85)  # normalised intensity (BraTS: brain p90 = +3, background -3)
SHARE_EDGES = np.linspace(0.0, 1.0, 51)
SLICE_SETS = ("train", "val", "val_labelled", "test_slab")
PER_SUBJECT = ("healthy_mean", "healthy_std", "texture", "spectrum_slope", "contrast")

DEFINITIONS = {
    "slices": "every slice of train + val (healthy slices), val_labelled (val lesion slices) and test_slab "
    "(all brain slices of the test subjects in slice_range), each once",
    "healthy": f"pixels with brain weight > {st.HEALTHY_BRAIN} and no lesion label",
    "lesion": f"pixels with a lesion label (label > 0 after area resizing) and brain weight > {st.HEALTHY_BRAIN}",
    "texture": "mean |x[i, j+1] - x[i, j]| over horizontal neighbour pairs (last array axis) that are both healthy",
    "spectrum": f"patches of image_size // 4 px (stride half a patch) with >= {st.PATCH_COVERAGE} of their pixels "
    "healthy; per patch: minus the healthy mean, 0 elsewhere, times a 2-D Hann window w, |FFT|^2 / sum((w * "
    "healthy)^2); averaged over patches and over rings round(|k|) = 1 .. patch // 2 (cycles per patch)",
    "spectrum_slope": f"least-squares slope of log power against log k over the rings k >= {st.SLOPE_FROM_K} "
    "(white noise: ~0; k = 1 is lowered by removing the patch mean)",
    "contrast": "(mean lesion - mean healthy) / std healthy (population std)",
    "lesion_share_per_slice": "per slice with a lesion pixel: lesion pixels / sum of the soft brain mask",
    "lesion_per_subject": "val and test subjects (their lesion slices are loaded): lesion pixels at the working "
    "resolution over their loaded slices, and lesion pixels / brain weight over those slices",
    "per_subject_range": "min / median / max over subjects with a finite value",
}


def slices_of(splits: Splits) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Images ``[N, C, H, W]``, brain ``[N, H, W]``, labels ``[N, H, W]``, subject of every slice and the
    modalities, of every slice of :data:`SLICE_SETS` once (``test`` when there is no ``test_slab``)."""
    sets = [getattr(splits, name) for name in SLICE_SETS]
    if splits.test_slab is None:
        sets.append(splits.test)
    kept: list[SliceSet] = [s for s in sets if s is not None and len(s)]
    images, brain, labels = (
        np.concatenate([getattr(s, f).numpy() for s in kept]) for f in ("images", "brain", "labels")
    )
    return images, brain, labels, tuple(x for s in kept for x in s.subjects), kept[0].modalities


def dataset_statistics(splits: Splits) -> dict[str, Any]:
    """The statistics of ``splits`` (see :data:`DEFINITIONS`) as a JSON-ready dict (NaN where a statistic has
    no pixels: :func:`to_json` writes it as null)."""
    images, brain, labels, subject_of, modality_names = slices_of(splits)
    subjects = np.asarray(subject_of)
    size = images.shape[-1]
    loaded_lesions = {
        s
        for name in ("val", "val_labelled", "test_slab", "test")
        if (x := getattr(splits, name)) is not None
        for s in x.subjects
    }
    by_subject = {s: np.flatnonzero(subjects == s) for s in dict.fromkeys(subject_of)}
    modalities = {m: _modality(images[:, c], brain, labels, by_subject, size) for c, m in enumerate(modality_names)}
    shares = st.lesion_shares(brain, labels)
    return {
        "version": VERSION,
        "dataset": splits.name,
        "data_hash": splits.data_hash,
        "preprocess_hash": splits.preprocess_hash,
        "image_size": size,
        "n_slices": len(images),
        "n_subjects": len(by_subject),
        "definitions": DEFINITIONS,
        "modalities": modalities,
        "lesion_share_per_slice": {
            "n_slices": int(shares.size),
            **st.intensity_summary(shares),
            "histogram": {"edges": SHARE_EDGES.tolist(), "density": st.density_histogram(shares, SHARE_EDGES)},
        },
        "lesion_per_subject": {
            s: _lesion_load(brain[i], labels[i]) for s, i in by_subject.items() if s in loaded_lesions
        },
    }


def _modality(
    images: np.ndarray, brain: np.ndarray, labels: np.ndarray, by_subject: dict[str, np.ndarray], size: int
) -> dict[str, Any]:
    healthy = st.healthy_mask(brain, labels)
    lesion = st.lesion_tissue_mask(brain, labels)
    power = st.radial_power_spectrum(*st.tissue_patches(images, healthy, st.patch_size(size)))
    per_subject = {s: _subject(images[i], healthy[i], lesion[i], size) for s, i in by_subject.items()}
    return {
        "healthy": {"n_pixels": int(healthy.sum()), **st.intensity_summary(images[healthy])},
        "lesion": {"n_pixels": int(lesion.sum()), "mean": _mean(images[lesion])},
        "texture": st.neighbour_difference(images, healthy),
        "spectrum_slope": st.spectrum_slope(power),
        "contrast": st.contrast(images, lesion, healthy),
        "spectrum": {"k": list(range(1, power.size + 1)), "power": power.tolist()},
        "histogram": {
            "edges": HISTOGRAM_EDGES.tolist(),
            "healthy": st.density_histogram(images[healthy], HISTOGRAM_EDGES),
            "lesion": st.density_histogram(images[lesion], HISTOGRAM_EDGES),
        },
        "per_subject_range": {key: _range([v[key] for v in per_subject.values()]) for key in PER_SUBJECT},
        "per_subject": per_subject,
    }


def _subject(images: np.ndarray, healthy: np.ndarray, lesion: np.ndarray, size: int) -> dict[str, float]:
    values = images[healthy].astype(np.float64)
    power = st.radial_power_spectrum(*st.tissue_patches(images, healthy, st.patch_size(size)))
    return {
        "healthy_mean": _mean(values),
        "healthy_std": float(values.std()) if values.size else float("nan"),
        "texture": st.neighbour_difference(images, healthy),
        "spectrum_slope": st.spectrum_slope(power),
        "contrast": st.contrast(images, lesion, healthy),
    }


def _lesion_load(brain: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pixels = int(labels.sum())
    return {"lesion_pixels": pixels, "brain_share": pixels / max(float(brain.sum()), 1e-12)}


def _mean(values: np.ndarray) -> float:
    return float(values.astype(np.float64).mean()) if values.size else float("nan")


def _range(values: list[float]) -> dict[str, float | int]:
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {"n": 0, "min": float("nan"), "median": float("nan"), "max": float("nan")}
    return {"n": int(finite.size), "min": float(finite.min()), "median": float(np.median(finite)),
            "max": float(finite.max())}  # fmt: skip


def to_json(stats: dict[str, Any]) -> str:
    """``stats`` as JSON text; NaN (a statistic without pixels) is written as ``null``, valid JSON."""
    return json.dumps(_nan_to_none(stats), indent=1)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
