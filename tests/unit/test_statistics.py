"""Dataset statistics (datasets/statistics.py, datasets/dataset_statistics.py) against values computed by hand on
small arrays, and the synthetic set's statistics beside its description (datasets/synthetic_statistics.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets import statistics as st
from datasets.dataset_statistics import VERSION, dataset_statistics, to_json
from datasets.slices import SliceSet, Splits
from datasets.synthetic_statistics import record_statistics


def test_healthy_mask_needs_full_brain_weight_and_no_lesion() -> None:
    brain = np.array([[[1.0, 0.995, 0.98, 1.0]]])
    labels = np.array([[[False, False, False, True]]])
    assert st.healthy_mask(brain, labels).tolist() == [[[True, True, False, False]]]
    assert st.lesion_tissue_mask(brain, labels).tolist() == [[[False, False, False, True]]]


def test_intensity_summary_by_hand() -> None:
    s = st.intensity_summary(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert s["mean"] == 3.0
    assert s["std"] == pytest.approx(math.sqrt(2.0))  # population std: mean of (4, 1, 0, 1, 4)
    assert s["quantiles"]["0.5"] == 3.0 and s["quantiles"]["0.25"] == 2.0  # type: ignore[index]
    assert s["quantiles"]["0.01"] == pytest.approx(1.04)  # type: ignore[index]  # linear: 1 + 0.01 * 4


def test_neighbour_difference_counts_only_pairs_inside_the_mask() -> None:
    images = np.array([[[0.0, 1.0, 3.0, 10.0], [5.0, 5.0, 6.0, 0.0]]])
    mask = np.array([[[True, True, True, False], [True, True, True, True]]])
    # row 0: pairs (0,1) |1|, (1,2) |2|; (2,3) has a pixel outside. row 1: |0|, |1|, |6|
    assert st.neighbour_difference(images, mask) == pytest.approx((1 + 2 + 0 + 1 + 6) / 5)
    assert math.isnan(st.neighbour_difference(images, np.zeros_like(mask)))


def test_contrast_by_hand() -> None:
    images = np.array([[[1.0, 3.0, 8.0]]])
    healthy = np.array([[[True, True, False]]])
    lesion = ~healthy
    assert st.contrast(images, lesion, healthy) == pytest.approx((8.0 - 2.0) / 1.0)  # healthy std of (1, 3) = 1
    assert math.isnan(st.contrast(images, np.zeros_like(lesion), healthy))


def test_tissue_patches_keep_patches_with_enough_tissue() -> None:
    images = np.arange(36, dtype=np.float64).reshape(1, 6, 6)
    mask = np.ones((1, 6, 6), dtype=bool)
    mask[0, 5, 4:] = False  # 2 of the 16 pixels of the patch at (2, 2): coverage 14/16 = 0.875
    patches, masks = st.tissue_patches(images, mask, 4, coverage=0.9)  # stride 2: corners (0,0) (0,2) (2,0) (2,2)
    assert patches.shape == (3, 4, 4) and masks.all()
    assert patches[:, 0, 0].tolist() == [0.0, 2.0, 12.0]
    patches, masks = st.tissue_patches(images, mask, 4, coverage=0.85)
    assert patches[:, 0, 0].tolist() == [0.0, 2.0, 12.0, 14.0] and int(masks[3].sum()) == 14


def test_radial_average_rings_by_hand() -> None:
    s = 4
    f = np.fft.fftfreq(s) * s  # 0, 1, -2, -1
    kx, ky = np.meshgrid(f, f, indexing="ij")
    out = st.radial_average(np.hypot(kx, ky))  # each ring's mean radius before rounding
    # ring 1: 4 points at radius 1 and 4 at sqrt 2; ring 2: 2 at radius 2 and 4 at sqrt 5; (-2, -2) at sqrt 8
    # rounds to 3 > s // 2 and is left out
    assert out.tolist() == pytest.approx([0.0, (4 + 4 * math.sqrt(2)) / 8, (2 * 2 + 4 * math.sqrt(5)) / 6])


def test_radial_spectrum_of_a_cosine_peaks_at_its_frequency() -> None:
    s = 16
    y = np.arange(s)
    patch = np.tile(np.cos(2 * np.pi * 3 * y / s), (s, 1))  # 3 cycles per patch along the last axis
    power = st.radial_power_spectrum(patch[None], np.ones((1, s, s), dtype=bool))
    assert power.shape == (8,)
    assert int(np.argmax(power)) + 1 == 3


def test_spectrum_of_white_noise_is_its_variance_at_every_frequency_even_with_holes() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=2.0, size=(2000, 16, 16))
    masks = rng.random(noise.shape) > 0.1  # 10 % of the pixels missing, as CSF holes in a real brain mask
    power = st.radial_power_spectrum(noise, masks)
    assert power[2:] == pytest.approx(np.full(6, 4.0), rel=0.03)  # E|FFT|^2 / sum((w m)^2) = variance 4
    assert 0.8 * 4.0 < power[0] < 4.0  # k = 1: part of its power went with the patch mean
    assert abs(st.spectrum_slope(power)) < 0.05  # fitted from k = 2


def test_spectrum_slope_of_a_power_law_is_its_exponent() -> None:
    k = np.arange(1, 9, dtype=np.float64)
    assert st.spectrum_slope(3.0 * k**-2.0) == pytest.approx(-2.0)
    assert st.spectrum_slope(np.r_[1e-9, k[1:] ** -1.0]) == pytest.approx(-1.0)  # k = 1 is not fitted
    assert math.isnan(st.spectrum_slope(np.array([1.0, np.nan, 0.0])))
    noise = np.random.default_rng(0).normal(size=(400, 16, 16))
    smooth = np.cumsum(np.cumsum(noise, axis=1), axis=2)  # integrated noise: power ~ k^-4, strongly negative
    assert st.spectrum_slope(st.radial_power_spectrum(smooth, np.ones(smooth.shape, dtype=bool))) < -2.0
    assert math.isnan(st.spectrum_slope(st.radial_power_spectrum(np.zeros((0, 16, 16)), np.zeros((0, 16, 16)))))


def test_lesion_shares_per_lesion_slice() -> None:
    brain = np.full((3, 2, 2), 0.5)  # brain weight 2 per slice
    labels = np.zeros((3, 2, 2), dtype=bool)
    labels[0, 0, 0] = True
    labels[2] = True
    assert st.lesion_shares(brain, labels).tolist() == [0.5, 2.0]


def test_density_histogram_integrates_to_the_share_inside() -> None:
    edges = np.array([0.0, 0.5, 1.0])
    density = st.density_histogram(np.array([0.1, 0.2, 0.7, 5.0]), edges)
    assert density == [pytest.approx(2 / 4 / 0.5), pytest.approx(1 / 4 / 0.5)]


def _slices(images: np.ndarray, brain: np.ndarray, labels: np.ndarray, subjects: tuple[str, ...]) -> SliceSet:
    return SliceSet(torch.from_numpy(images[:, None]), torch.from_numpy(brain), torch.from_numpy(labels),
                    ("flair",), subjects, tuple(range(len(subjects))))  # fmt: skip


def _splits() -> Splits:
    """Healthy train slice of subject a and val slice of c (columns alternating 0 and 2), a test slab slice of b
    (tissue 1, a 2x2 lesion of 10)."""
    size = 8
    brain = np.ones((1, size, size), dtype=np.float32)
    columns = np.tile(np.array([0.0, 2.0] * (size // 2), dtype=np.float32), (size, 1))[None]
    none = np.zeros((1, size, size), dtype=bool)
    train = _slices(columns, brain, none, ("a",))
    lesion = none.copy()
    lesion[0, :2, :2] = True  # 4 lesion pixels of 64 brain pixels
    slab_images = np.where(lesion, 10.0, 1.0).astype(np.float32)
    slab = _slices(slab_images, brain, lesion, ("b",))
    val = _slices(columns, brain, none, ("c",))
    return Splits(train=train, val=val, test=slab, name="toy", preprocess_hash="p", data_hash="h1",
                  test_slab=slab, test_view=(0,))  # fmt: skip


def test_dataset_statistics_pool_and_per_subject_by_hand() -> None:
    stats = dataset_statistics(_splits())
    flair = stats["modalities"]["flair"]
    # pixels: train and val slices of 0/2 columns, slab: 60 healthy pixels of 1
    assert stats["n_slices"] == 3 and stats["n_subjects"] == 3
    assert flair["healthy"]["n_pixels"] == 64 + 64 + 60
    assert flair["healthy"]["mean"] == pytest.approx(1.0)  # 0/2 columns average 1, the slab's tissue is 1
    assert flair["healthy"]["std"] == pytest.approx(math.sqrt(128 / 188))  # 128 pixels 1 away from the mean
    assert flair["per_subject"]["a"]["texture"] == pytest.approx(2.0)  # every horizontal pair differs by 2
    assert flair["per_subject"]["b"]["texture"] == 0.0
    assert flair["per_subject"]["b"]["contrast"] != flair["per_subject"]["b"]["contrast"]  # NaN: healthy std 0
    assert flair["lesion"] == {"n_pixels": 4, "mean": 10.0}
    assert stats["lesion_share_per_slice"]["n_slices"] == 1
    assert stats["lesion_share_per_slice"]["mean"] == pytest.approx(4 / 64)
    # val and test subjects only (a train subject has only its lesion-free slices loaded)
    assert stats["lesion_per_subject"] == {
        "b": {"lesion_pixels": 4, "brain_share": 4 / 64},
        "c": {"lesion_pixels": 0, "brain_share": 0.0},
    }
    assert flair["per_subject_range"]["texture"] == {"n": 3, "min": 0.0, "median": 2.0, "max": 2.0}
    assert "NaN" not in to_json(stats) and json.loads(to_json(stats))["modalities"]["flair"]["per_subject"]["b"][
        "contrast"] is None  # fmt: skip


def test_record_statistics_writes_once_per_data_hash_and_references_it(tmp_path: Path) -> None:
    description = tmp_path / "dataset_description.json"
    description.write_text(json.dumps({"name": "synthetic-brats", "subjects": []}))
    path = record_statistics(tmp_path, _splits())
    assert json.loads(path.read_text())["data_hash"] == "h1"
    reference = json.loads(description.read_text())
    assert reference["name"] == "synthetic-brats"  # the generator's content is kept
    assert reference["statistics"] == {"file": "dataset_statistics.json", "data_hash": "h1", "image_size": 8}
    path.write_text(json.dumps({"data_hash": "h1", "version": VERSION, "marker": 1}))
    record_statistics(tmp_path, _splits())  # same data hash: not recomputed
    assert json.loads(path.read_text())["marker"] == 1
    path.write_text(json.dumps({"data_hash": "h1", "version": VERSION - 1}))
    record_statistics(tmp_path, _splits())  # written by an older version of the statistics: recomputed
    assert json.loads(path.read_text())["version"] == VERSION
    changed = _splits()
    record_statistics(tmp_path, Splits(**{**changed.__dict__, "data_hash": "h2"}))
    assert json.loads(path.read_text())["data_hash"] == "h2"
    assert json.loads(description.read_text())["statistics"]["data_hash"] == "h2"
