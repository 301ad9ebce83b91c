"""Tests of benchmark.volume_metrics: hand-built slabs with values counted by hand, and reference
implementations (scikit-learn, MONAI, numpy's percentile, scipy.ndimage with a per-component loop)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmark import volume_metrics as V
from benchmark.bootstrap import draw_subject_counts
from benchmark.thresholds import make_grid, oracle_global

Case = tuple[str, np.ndarray, np.ndarray]  # (subject, segmentation [K, H, W], labels [K, H, W])


def _empty(k: int, hw: int = 8) -> np.ndarray:
    return np.zeros((k, hw, hw), dtype=bool)


def _compute(
    cases: list[Case], brain: np.ndarray | None = None, maps: np.ndarray | None = None, **kw: object
) -> V.VolumeMetricResult:
    seg = np.concatenate([c[1] for c in cases])
    lab = np.concatenate([c[2] for c in cases])
    subjects = [name for name, s, _ in cases for _ in range(s.shape[0])]
    b = np.ones(seg.shape, dtype=np.float32) if brain is None else brain
    m = np.zeros(seg.shape, dtype=np.float32) if maps is None else maps
    kw.setdefault("n_boot", 0)
    return V.compute_volume_metrics(
        torch.from_numpy(seg), torch.from_numpy(m), torch.from_numpy(lab), torch.from_numpy(b), subjects, **kw
    )


def _row(result: V.VolumeMetricResult, subject: str) -> dict[str, object]:
    return result.per_subject.set_index("subject").loc[subject].to_dict()


# --------------------------------------------------------------------------------------------------
# slab layout
# --------------------------------------------------------------------------------------------------
def test_subject_slabs_runs_and_non_contiguous_error() -> None:
    assert V.subject_slabs(["a", "a", "b", "c", "c", "c"]) == [
        ("a", slice(0, 2)),
        ("b", slice(2, 3)),
        ("c", slice(3, 6)),
    ]
    assert V.subject_slabs([]) == []
    with pytest.raises(ValueError, match=r"subject 'a' are not contiguous \(again at position 3\)"):
        V.subject_slabs(["a", "a", "b", "a"])


def test_stack_subject_volumes_layout_and_padding() -> None:
    x = torch.arange(5 * 2 * 3, dtype=torch.float32).reshape(5, 2, 3)
    out = V.stack_subject_volumes(x, ["a", "a", "a", "b", "b"], fill=-1.0)
    assert out.shape == (2, 3 * 2, 3)
    assert torch.equal(out[0], torch.cat([x[0], x[1], x[2]]))
    assert torch.equal(out[1, :4], torch.cat([x[3], x[4]]))
    assert bool((out[1, 4:] == -1).all())
    masks = V.stack_subject_volumes(x > 10, ["a", "a", "a", "b", "b"], fill=False)
    assert masks.dtype == torch.bool and not bool(masks[1, 4:].any())
    with pytest.raises(ValueError, match="5 slices but 4 subject ids"):
        V.stack_subject_volumes(x, ["a", "a", "b", "b"])


def test_stacked_oracle_global_maximises_mean_subject_dice() -> None:
    g = torch.Generator().manual_seed(3)
    sizes = {"a": 3, "b": 2, "c": 4, "d": 1, "e": 2}
    subjects = [s for s, k in sizes.items() for _ in range(k)]
    n = len(subjects)
    lab = torch.rand(n, 6, 6, generator=g) < 0.15
    lab[subjects.index("e") :] = False  # one healthy subject
    maps = (torch.rand(n, 6, 6, generator=g) + 0.6 * lab).double()
    brain = torch.rand(n, 6, 6, generator=g)
    brain[brain < 0.1] = 0.0
    grid = make_grid(0.0, 1.0, 0.02)
    stacked = [V.stack_subject_volumes(t, subjects, fill=f) for t, f in ((maps, 0.0), (lab, False), (brain, 0.0))]
    result = oracle_global(*stacked, grid=grid, warn_edge=False)

    region = brain > 0
    lo, hi = float(maps[region].min()), float(maps[region].max())
    means = []
    for t in lo + grid * (hi - lo):
        dices = []
        for s in sizes:
            rows = [i for i, x in enumerate(subjects) if x == s]
            p = ((maps[rows] > t) & region[rows]).numpy()
            y = lab[rows].numpy()
            den = p.sum() + y.sum()
            dices.append(1.0 if den == 0 else 2 * (p & y).sum() / den)
        means.append(np.mean(dices))
    best = int(np.argmax(means))
    assert result.threshold == pytest.approx(float(lo + grid[best] * (hi - lo)))
    assert result.objective == pytest.approx(means[best])


# --------------------------------------------------------------------------------------------------
# healthy subjects and false positives
# --------------------------------------------------------------------------------------------------
def test_healthy_subjects_with_and_without_false_positive_blob() -> None:
    blob = _empty(3)
    blob[1, 2:4, 2:4] = True  # 4 voxels, one component
    result = _compute([("clean", _empty(3), _empty(3)), ("blob", blob, _empty(3))])
    clean, flagged = _row(result, "clean"), _row(result, "blob")
    assert clean["healthy"] and flagged["healthy"]
    assert clean["brain_fp_share"] == 0.0 and flagged["brain_fp_share"] == pytest.approx(4 / 192)
    assert flagged["healthy_slice_fp"] == pytest.approx(4 / 192)  # every slice is lesion-free
    assert (clean["n_fp_components"], flagged["n_fp_components"]) == (0, 1)
    assert (clean["flagged"], flagged["flagged"]) == (False, True)
    assert (clean["lesionwise_dice"], flagged["lesionwise_dice"]) == (1.0, 0.0)
    assert (clean["volume_bin"], clean["n_lesions"]) == ("none", 0)
    v = result.values
    assert v["vol_healthy_subject_fp"] == pytest.approx(2 / 192)
    assert v["vol_healthy_subject_flagged"] == 0.5
    assert v["vol_healthy_slice_fp"] == pytest.approx(2 / 192)
    assert v["vol_fp_components"] == 0.5
    assert (v["vol_n_subjects"], v["vol_n_lesion_subjects"], v["vol_n_healthy_subjects"]) == (2.0, 0.0, 2.0)
    for key in ("vol_dice", "vol_sens", "vol_prec", "vol_lesionwise_dice", "vol_dice_small"):
        assert math.isnan(v[key])
    assert result.reasons["vol_dice"] == "no lesion test subject"
    assert result.reasons["vol_slice_auroc"] == "no slab slice has a label voxel"
    assert "min_component_voxels" in result.reasons["vol_lesion_sens"]
    assert set(result.reasons) == {k for k, x in v.items() if math.isnan(x)}


def test_healthy_metrics_nan_without_healthy_subject() -> None:
    lab = _empty(2)
    lab[0, 1:3, 1:3] = True
    result = _compute([("a", lab.copy(), lab)], n_boot=20)
    for key in ("vol_healthy_subject_fp", "vol_healthy_subject_flagged"):
        assert math.isnan(result.values[key])
        assert result.reasons[key] == "no healthy test subject"
        assert key not in result.ci
    flat = result.flat()
    assert flat["vol_healthy_subject_fp_nan_reason"] == "no healthy test subject"
    assert flat["vol_dice"] == 1.0 and flat["vol_dice_lo"] == 1.0 and flat["vol_dice_hi"] == 1.0
    assert "vol_dice_nan_reason" not in flat


def test_false_positive_blob_on_healthy_slice_of_lesion_subject() -> None:
    brain = np.zeros((4, 8, 8), dtype=np.float32)
    brain[:, 1:7, 0:8] = 0.5  # 48 soft brain pixels per slice
    lab = _empty(4)
    lab[1, 2:4, 2:4] = True
    seg = lab.copy()
    seg[3, 4:6, 4:6] = True  # FP blob on a lesion-free slice
    seg[2, 0, 0] = True  # outside the brain: not counted
    result = _compute([("s", seg, lab)], brain=brain)
    row = _row(result, "s")
    assert row["healthy_slice_fp"] == pytest.approx(4 / (3 * 48))
    assert row["brain_fp_share"] == pytest.approx(8 / (4 * 48))
    assert (row["dice"], row["sens"], row["prec"]) == pytest.approx((8 / 12, 1.0, 0.5))
    assert (row["n_lesions"], row["n_found"], row["n_fp_components"]) == (1, 1, 1)
    assert row["lesionwise_dice"] == pytest.approx(1 / 2)  # lesion Dice 1, one FP component
    assert result.values["vol_healthy_slice_fp"] == pytest.approx(4 / 144)
    assert math.isnan(result.values["vol_healthy_subject_fp"])


def test_healthy_slice_fp_averages_subjects_with_a_lesion_free_slice() -> None:
    full_lab = _empty(2)
    full_lab[:, 0, 0] = True  # lesion on every slice: no lesion-free slice
    full_seg = full_lab.copy()
    full_seg[:, 5, 5:7] = True
    healthy_seg = _empty(1)
    healthy_seg[0, 3, 3:5] = True  # 2 of 64
    lesion_lab, lesion_seg = _empty(2), _empty(2)
    lesion_lab[0, 0, 0] = True
    lesion_seg[1, 2:4, 2:4] = True  # 4 of 64 on the lesion-free slice
    result = _compute([("full", full_seg, full_lab), ("h", healthy_seg, _empty(1)), ("l", lesion_seg, lesion_lab)])
    assert math.isnan(_row(result, "full")["healthy_slice_fp"])
    assert _row(result, "l")["healthy_slice_fp"] == pytest.approx(4 / 64)
    assert result.values["vol_healthy_slice_fp"] == pytest.approx((2 / 64 + 4 / 64) / 2)
    assert result.values["vol_healthy_subject_fp"] == pytest.approx(2 / 64)


# --------------------------------------------------------------------------------------------------
# lesions and components
# --------------------------------------------------------------------------------------------------
def test_lesion_split_over_two_slices_is_one_component() -> None:
    lab = _empty(3)
    lab[1, 2:4, 2:4] = True
    lab[2, 4:6, 4:6] = True  # touches slice 1 only diagonally: one 26-connected component
    assert ndimage.label(lab)[1] == 2 and ndimage.label(lab, structure=np.ones((3, 3, 3)))[1] == 1
    seg = _empty(3)
    seg[1, 2:4, 2:5] = True  # the slice-1 half plus 2 FP pixels, one component of 6
    result = _compute([("s", seg, lab)])
    row = _row(result, "s")
    # TP 4, FP 2, FN 4
    assert (row["dice"], row["sens"], row["prec"]) == pytest.approx((8 / 14, 0.5, 4 / 6))
    assert (row["n_lesions"], row["n_found"], row["n_fp_components"]) == (1, 1, 0)
    assert row["lesionwise_dice"] == pytest.approx(2 * 4 / (8 + 6))
    assert result.values["vol_dice"] == pytest.approx(8 / 14)
    assert result.values["vol_lesion_sens"] == 1.0


def test_two_lesions_one_missed() -> None:
    lab = _empty(4, 12)
    lab[0, 0:3, 0:3] = True  # lesion A: 9 voxels
    lab[2:4, 8:10, 8:10] = True  # lesion B: 8 voxels
    seg = lab.copy()
    seg[2:4] = False  # B missed ...
    seg[0, 3, 0] = True  # ... A found with one extra voxel (component of 10)
    seg[2:4, 10, 8:10] = True  # 4 voxels next to B: in B's dilation (matched, Dice_B = 0), no label voxel
    seg[3, 0:2, 10:12] = True  # far FP blob of 4
    result = _compute([("s", seg, lab)], detection_overlap=0.5)
    row = _row(result, "s")
    assert (row["n_lesions"], row["n_found"], row["n_fp_components"]) == (2, 1, 2)
    assert result.values["vol_lesion_sens"] == 0.5
    # Dice_A = 18 / 19, Dice_B = 0; one unmatched component (the far blob)
    assert row["lesionwise_dice"] == pytest.approx((18 / 19 + 0.0) / 3)
    assert result.values["vol_lesionwise_dice"] == pytest.approx(6 / 19)
    assert result.values["vol_fp_components"] == 2.0


def test_detection_overlap_share() -> None:
    lab = _empty(1, 12)
    lab[0, 0:10, 0:3] = True  # 30 voxels
    seg = _empty(1, 12)
    seg[0, 0:3, 0] = True  # 3 of 30 = exactly 0.1
    assert _row(_compute([("s", seg, lab)], detection_overlap=0.1, min_component_voxels=3), "s")["n_found"] == 1
    assert _row(_compute([("s", seg, lab)], detection_overlap=0.11, min_component_voxels=3), "s")["n_found"] == 0


def test_components_below_min_size_are_ignored() -> None:
    lab = _empty(2, 10)
    lab[0, 0:3, 0:3] = True  # 9 voxels: a lesion
    lab[1, 8, 8:10] = True  # 2 voxels: ignored as a lesion
    seg = lab.copy()
    seg[1, 7:9, 7] = True  # the small label component grows into a segmentation component of 4
    seg[1, 0, 9] = True  # 3-voxel FP component: ignored
    seg[0, 0:2, 8] = True
    result = _compute([("s", seg, lab)])
    row = _row(result, "s")
    assert (row["n_lesions"], row["n_found"], row["n_fp_components"]) == (1, 1, 0)
    assert row["lesionwise_dice"] == 1.0  # matched only to the ignored label component: not an FP (BraTS)
    assert row["dice"] == pytest.approx(2 * 11 / (16 + 11))  # voxel-wise Dice keeps the small components

    healthy = _empty(2)
    healthy[0, 0, 0:3] = True  # 3 voxels
    assert not _row(_compute([("h", healthy, _empty(2))]), "h")["flagged"]
    small = _compute([("h", healthy, _empty(2))], min_component_voxels=3)
    assert _row(small, "h")["flagged"] and _row(small, "h")["n_fp_components"] == 1


def _reference_components(seg: np.ndarray, lab: np.ndarray, min_voxels: int, overlap: float) -> tuple:
    """One label at a time, as the BraTS 2023 loop (with this module's deviations)."""
    full = np.ones((3, 3, 3), dtype=bool)
    seg_cc, n_seg = ndimage.label(seg, structure=full)
    lab_cc, n_lab = ndimage.label(lab, structure=full)
    kept_seg = [s for s in range(1, n_seg + 1) if (seg_cc == s).sum() >= min_voxels]
    kept_mask = np.isin(seg_cc, kept_seg)
    n_lesions = n_found = 0
    dices, matched = [], set()
    for comp in range(1, n_lab + 1):
        one = lab_cc == comp
        grown = ndimage.binary_dilation(one, structure=full)
        hits = {int(s) for s in np.unique(seg_cc[grown & kept_mask])}
        matched |= hits
        if one.sum() < min_voxels:
            continue
        n_lesions += 1
        n_found += int((one & kept_mask).sum() / one.sum() >= overlap)
        union = np.isin(seg_cc, list(hits))
        dices.append(2 * (one & union).sum() / (one.sum() + union.sum()))
    n_fp = sum(1 for s in kept_seg if not (lab & (seg_cc == s)).any())
    unmatched = len([s for s in kept_seg if s not in matched])
    lesionwise = sum(dices) / (n_lesions + unmatched) if n_lesions + unmatched else 1.0
    return n_lesions, n_found, n_fp, lesionwise, bool(kept_seg)


def test_component_counts_match_scipy_loop() -> None:
    rng = np.random.default_rng(0)
    cases = []
    for i in range(6):
        k = int(rng.integers(1, 5))
        lab = ndimage.binary_dilation(rng.random((k, 16, 16)) < 0.02, iterations=int(rng.integers(0, 3)))
        seg = ndimage.binary_dilation(rng.random((k, 16, 16)) < 0.03) | (lab & (rng.random((k, 16, 16)) < 0.7))
        cases.append((f"s{i}", seg, lab))
    result = _compute(cases, min_component_voxels=3, detection_overlap=0.3)
    for name, seg, lab in cases:
        row = _row(result, name)
        got = (row["n_lesions"], row["n_found"], row["n_fp_components"], row["lesionwise_dice"], row["flagged"])
        expected = _reference_components(seg, lab, 3, 0.3)
        assert got[:3] == expected[:3] and got[4] == expected[4]
        assert got[3] == pytest.approx(expected[3])
    assert sum(_reference_components(s, y, 3, 0.3)[0] for _, s, y in cases) > 3  # the case has lesions


# --------------------------------------------------------------------------------------------------
# per-subject 3-D overlap and volume bins
# --------------------------------------------------------------------------------------------------
def test_subject_dice_matches_monai_3d() -> None:
    rng = np.random.default_rng(1)
    sizes = [3, 1, 4, 2]
    seg = rng.random((sum(sizes), 8, 8)) < 0.3
    lab = rng.random((sum(sizes), 8, 8)) < 0.2
    lab[sum(sizes[:3]) :] = False  # last subject healthy
    brain = rng.random((sum(sizes), 8, 8)).astype(np.float32)
    brain[brain < 0.2] = 0.0
    brain[:, 0, 0] = 1.0
    names = [f"s{i}" for i in range(len(sizes))]
    subjects = [n for n, k in zip(names, sizes) for _ in range(k)]
    result = V.compute_volume_metrics(
        torch.from_numpy(seg),
        torch.zeros(seg.shape),
        torch.from_numpy(lab),
        torch.from_numpy(brain),
        subjects,
        n_boot=0,
    )
    start = 0
    for name, k in zip(names, sizes):
        p = torch.from_numpy(seg[start : start + k] & (brain[start : start + k] > 0)).float()
        y = torch.from_numpy(lab[start : start + k]).float()
        ref = compute_dice(p[None, None], y[None, None], include_background=True, ignore_empty=False)
        assert _row(result, name)["dice"] == pytest.approx(float(ref))
        start += k
    assert result.values["vol_dice"] == pytest.approx(result.per_subject["dice"][:3].mean())


def test_volume_bins_scaled_by_step_and_area() -> None:
    # 16x16 slices, step 2: one voxel = 2 * 128**2 / 16**2 = 128 reference voxels; bounds 31.25 and 125 voxels
    def case(name: str, n: int, hit: int) -> Case:
        lab = np.zeros(2 * 256, dtype=bool)
        lab[:n] = True
        seg = np.zeros_like(lab)
        seg[:hit] = True
        return name, seg.reshape(2, 16, 16), lab.reshape(2, 16, 16)

    cases = [case("a", 31, 31), case("b", 32, 16), case("c", 124, 62), case("h", 0, 0)]
    result = _compute(cases, slice_step=2)
    table = result.per_subject.set_index("subject")
    assert table["lesion_volume_ref"].tolist() == [31 * 128, 32 * 128, 124 * 128, 0]
    assert table["volume_bin"].tolist() == ["small", "medium", "medium", "none"]
    assert result.values["vol_dice_small"] == 1.0
    assert result.values["vol_dice_medium"] == pytest.approx(2 / 3)  # both half found: Dice 2/3
    assert math.isnan(result.values["vol_dice_large"])
    assert result.reasons["vol_dice_large"] == "no lesion subject in the large volume bin"
    large = _compute([case("d", 125, 125)], slice_step=2)
    assert large.per_subject["volume_bin"].tolist() == ["large"]
    assert V.VOLUME_BOUNDS == (4000.0, 16000.0)


# --------------------------------------------------------------------------------------------------
# slice scores
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("q", [0.0, 37.5, 99.0, 100.0])
def test_slice_scores_match_numpy_percentile(q: float) -> None:
    g = torch.Generator().manual_seed(2)
    maps = torch.round(torch.rand(7, 9, 9, generator=g) * 20) / 4  # ties
    region = torch.rand(7, 9, 9, generator=g) < 0.6
    region[3] = False
    region[3, 4, 4] = True  # a slice with one brain pixel
    got = V.slice_scores(maps, region, q)
    expected = [np.percentile(maps[i][region[i]].numpy().astype(np.float64), q) for i in range(7)]
    assert got.numpy() == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_slice_scores_nan_for_non_finite_or_empty_slices() -> None:
    maps = torch.zeros(5, 3, 3)
    region = torch.ones(5, 3, 3, dtype=torch.bool)
    maps[0, 1, 1], maps[1, 1, 1], maps[2, 1, 1] = math.nan, math.inf, -math.inf
    region[3] = False
    maps[4, 0, 0] = math.nan
    region[4, 0, 0] = False  # outside the region: ignored
    got = V.slice_scores(maps, region, 50.0)
    assert got[:4].isnan().all() and got[4] == 0.0


def test_slice_auroc_auprc_match_sklearn() -> None:
    g = torch.Generator().manual_seed(5)
    n = 24
    lab = torch.zeros(n, 8, 8, dtype=torch.bool)
    positive = torch.rand(n, generator=g) < 0.4
    lab[positive, 3, 3] = True
    maps = torch.round(torch.rand(n, 8, 8, generator=g) * 8) / 8 + positive[:, None, None] * 0.2
    brain = (torch.rand(n, 8, 8, generator=g) > 0.3).float()
    brain[:, 0, 0] = 1.0
    subjects = [f"s{i // 4}" for i in range(n)]
    result = V.compute_volume_metrics(lab, maps, lab, brain, subjects, n_boot=0, slice_score_percentile=90.0)
    scores = [np.percentile(maps[i][brain[i] > 0].numpy().astype(np.float64), 90.0) for i in range(n)]
    assert result.values["vol_slice_auroc"] == pytest.approx(roc_auc_score(positive.numpy(), scores))
    assert result.values["vol_slice_auprc"] == pytest.approx(average_precision_score(positive.numpy(), scores))

    everywhere = lab.clone()
    everywhere[:, 5, 5] = True
    full = V.compute_volume_metrics(everywhere, maps, everywhere, brain, subjects, n_boot=0)
    assert math.isnan(full.values["vol_slice_auroc"]) and math.isnan(full.values["vol_slice_auprc"])
    assert full.reasons["vol_slice_auprc"] == "every slab slice has a label voxel"


# --------------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------------
def test_ci_resamples_all_subjects_and_averages_over_lesion_subjects() -> None:
    cases = []
    for i, hit in enumerate([4, 2, 0, 3]):
        lab = _empty(1)
        lab[0, 0, 0:4] = True
        seg = _empty(1)
        seg[0, 0, 0:hit] = True
        cases.append((f"s{i}", seg, lab))
    cases.append(("h", _empty(1), _empty(1)))  # healthy: Dice 1, must not enter vol_dice
    result = _compute(cases, n_boot=200, seed=7)
    dice = np.array([1.0, 2 * 2 / 6, 0.0, 2 * 3 / 7, np.nan])
    counts = draw_subject_counts(5, 200, 7).astype(np.float64)
    lesion = ~np.isnan(dice)
    drawn = counts[:, lesion].sum(1)
    samples = (counts[:, lesion] @ dice[lesion])[drawn > 0] / drawn[drawn > 0]
    assert result.values["vol_dice"] == pytest.approx(dice[lesion].mean())
    assert result.ci["vol_dice"] == pytest.approx(tuple(np.percentile(samples, [2.5, 97.5])))


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------
def test_errors_name_the_problem() -> None:
    lab = _empty(2)
    ok = [("a", _empty(2), lab), ("b", _empty(2), lab)]
    brain = np.ones((4, 8, 8), dtype=np.float32)
    brain[2:4] = 0.0
    with pytest.raises(ValueError, match="subject 'b' has no brain pixel"):
        _compute(ok, brain=brain)
    brain[2] = 1.0
    with pytest.raises(ValueError, match=r"subject 'b': slab slice 1 \(slab position 3\) has no brain pixel"):
        _compute(ok, brain=brain)
    with pytest.raises(ValueError, match="not contiguous"):
        _compute([("a", _empty(1), _empty(1)), ("b", _empty(1), _empty(1)), ("a", _empty(1), _empty(1))])
    maps = np.zeros((4, 8, 8), dtype=np.float32)
    maps[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="subject 'b': NaN or inf"):
        _compute(ok, maps=maps)
    brain = np.ones((4, 8, 8), dtype=np.float32)
    brain[3, 1, 1] = 0.0
    assert _compute(ok, maps=maps, brain=brain).values["vol_n_subjects"] == 2.0  # NaN outside the brain: ignored
    x = torch.zeros(4, 8, 8)
    with pytest.raises(ValueError, match=r"labels shape \(4, 8, 7\) != anomaly_maps \(4, 8, 8\)"):
        V.compute_volume_metrics(x, x, torch.zeros(4, 8, 7), x + 1, ["a"] * 4)
    with pytest.raises(ValueError, match="4 slices but 3 subject ids"):
        V.compute_volume_metrics(x, x, x, x + 1, ["a"] * 3)
    with pytest.raises(ValueError, match="detection_overlap must be in"):
        V.compute_volume_metrics(x, x, x, x + 1, ["a"] * 4, detection_overlap=0.0)
