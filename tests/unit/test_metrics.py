"""Tests of benchmark.metrics and benchmark.bootstrap: hand-computed values, empty-mask conventions and
reference implementations (scikit-learn, MONAI, torchmetrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score
from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

from benchmark import bootstrap as B
from benchmark import metrics as M


def _t(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)[None]


# 4x4 case counted by hand: TP at (0,0),(0,1); FP at (3,3); FN at (1,0),(1,1),(2,2)
PRED = _t([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
LABEL = _t([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])


def _random_case(seed: int, n: int = 6, size: int = 16, p_pred: float = 0.3, p_lab: float = 0.2):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(n, size, size, generator=g) < p_pred
    label = torch.rand(n, size, size, generator=g) < p_lab
    brain = torch.rand(n, size, size, generator=g)
    brain[brain < 0.2] = 0.0  # soft mask with some background
    return pred, label, brain


# --------------------------------------------------------------------------------------------------
# overlap metrics
# --------------------------------------------------------------------------------------------------
def test_hand_counted_4x4():
    tp, fp, fn = M.confusion_counts(PRED, LABEL)
    assert (tp.item(), fp.item(), fn.item()) == (2, 1, 3)
    assert M.dice_per_image(PRED, LABEL).item() == pytest.approx(2 * 2 / (2 * 2 + 1 + 3))  # 0.5
    assert M.sensitivity_per_image(PRED, LABEL).item() == pytest.approx(2 / 5)
    assert M.precision_per_image(PRED, LABEL).item() == pytest.approx(2 / 3)


def test_accepts_channel_dim_and_float_masks():
    d1 = M.dice_per_image(PRED, LABEL)
    d2 = M.dice_per_image(PRED[:, None].float(), LABEL[:, None].float())
    assert torch.equal(d1, d2)
    with pytest.raises(ValueError, match="expected"):
        M.dice_per_image(PRED[0], LABEL[0])


def test_brain_region_restricts_predictions_not_labels():
    brain = torch.ones(1, 4, 4)
    brain[0, 3, 3] = 0.0  # the FP pixel lies outside the brain -> removed
    brain[0, 0, 1] = 0.2  # soft edge still counts as brain -> TP kept
    brain[0, 2, 2] = 0.0  # a lesion pixel outside the brain stays a false negative
    tp, fp, fn = M.confusion_counts(PRED, LABEL, brain)
    assert (tp.item(), fp.item(), fn.item()) == (2, 0, 3)
    assert M.dice_per_image(PRED, LABEL, brain).item() == pytest.approx(4 / 7)
    assert M.precision_per_image(PRED, LABEL, brain).item() == pytest.approx(1.0)


def test_empty_mask_conventions():
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    some = _t([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    # both empty: perfect agreement
    for fn_ in (M.dice_per_image, M.sensitivity_per_image, M.precision_per_image):
        assert fn_(empty, empty).item() == 1.0
    # empty prediction, lesion present: precision 0 (official code), Dice 0, sensitivity 0
    assert M.dice_per_image(empty, some).item() == 0.0
    assert M.sensitivity_per_image(empty, some).item() == 0.0
    assert M.precision_per_image(empty, some).item() == 0.0
    # prediction on a lesion-free slice: Dice 0, sensitivity 0, precision 0
    assert M.dice_per_image(some, empty).item() == 0.0
    assert M.sensitivity_per_image(some, empty).item() == 0.0
    assert M.precision_per_image(some, empty).item() == 0.0
    # prediction entirely outside the brain is an empty prediction
    assert M.dice_per_image(some, empty, torch.zeros(1, 4, 4)).item() == 1.0


def test_per_image_mean_vs_pooled_hand_values():
    pred = torch.cat([PRED, torch.ones(1, 4, 4, dtype=torch.bool)])
    label = torch.cat([LABEL, torch.ones(1, 4, 4, dtype=torch.bool)])
    # image 2: TP 16, FP 0, FN 0 -> all 1
    r = M.compute_metrics(pred, None, label, torch.ones(2, 4, 4), n_boot=0)
    assert r.values["dice"] == pytest.approx((0.5 + 1.0) / 2)
    assert r.values["sens"] == pytest.approx((0.4 + 1.0) / 2)
    assert r.values["prec"] == pytest.approx((2 / 3 + 1.0) / 2)
    # pooled: TP 18, FP 1, FN 3
    assert r.values["dice_pooled"] == pytest.approx(36 / (36 + 1 + 3))
    assert r.values["sens_pooled"] == pytest.approx(18 / 21)
    assert r.values["prec_pooled"] == pytest.approx(18 / 19)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_against_sklearn(seed):
    pred, label, brain = _random_case(seed)
    p = (pred & (brain > 0)).flatten().numpy()
    y = label.flatten().numpy()
    pooled = M.pooled_scores(pred, label, brain)
    assert pooled["dice_pooled"] == pytest.approx(f1_score(y, p))
    assert pooled["sens_pooled"] == pytest.approx(recall_score(y, p))
    assert pooled["prec_pooled"] == pytest.approx(precision_score(y, p))
    # per image as well
    d = M.dice_per_image(pred, label, brain).numpy()
    for i in range(pred.shape[0]):
        pi = (pred[i] & (brain[i] > 0)).flatten().numpy()
        assert d[i] == pytest.approx(f1_score(label[i].flatten().numpy(), pi))


def test_per_image_dice_against_monai_including_empty():
    pred, label, _ = _random_case(3, n=5)
    pred[1] = False
    label[1] = False  # both empty
    pred[2] = False  # empty prediction only
    label[3] = False  # empty label only
    ours = M.dice_per_image(pred, label)
    ref = compute_dice(pred[:, None].float(), label[:, None].float(), include_background=True, ignore_empty=False)
    assert torch.allclose(ours, ref[:, 0].double())


# --------------------------------------------------------------------------------------------------
# size strata
# --------------------------------------------------------------------------------------------------
def _labels_with_sizes(sizes: list[int], hw: int) -> torch.Tensor:
    y = torch.zeros(len(sizes), hw, hw, dtype=torch.bool)
    for i, s in enumerate(sizes):
        y[i].view(-1)[:s] = True
    return y


def test_size_bins_at_128_and_scaled_to_64():
    assert M.lesion_size_bins(_labels_with_sizes([1, 199, 200, 799, 800, 5000], 128)).tolist() == [0, 0, 1, 1, 2, 2]
    assert M.scaled_size_bounds((64, 64)) == (50.0, 200.0)
    assert M.lesion_size_bins(_labels_with_sizes([49, 50, 199, 200], 64)).tolist() == [0, 1, 1, 2]


def test_size_stratified_dice_known_answer_and_empty_bin():
    labels = _labels_with_sizes([10, 20, 900], 128)
    out = M.size_stratified_dice(torch.tensor([0.2, 0.4, 0.9]), labels)
    assert out["dice_small"] == pytest.approx(0.3) and out["n_small"] == 2
    assert math.isnan(out["dice_medium"]) and out["n_medium"] == 0
    assert out["dice_large"] == pytest.approx(0.9) and out["n_large"] == 1


# --------------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------------
def _ssim_case(seed: int = 0, n: int = 3, size: int = 32, noise: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, size, size), -3.0)
    brain = torch.zeros(n, size, size)
    brain[:, 4:-4, 4:-4] = 1.0
    brain[:, 3, 4:-4] = 0.5  # soft edge
    x = torch.where(brain > 0, torch.rand(n, size, size, generator=g) * 4 - 1, x)
    labels = torch.zeros(n, size, size, dtype=torch.bool)
    labels[:, 6:22, 6:22] = True  # a large lesion: half of the brain
    recon = x + noise * torch.randn(n, size, size, generator=g) * (brain > 0)
    return x, recon, labels, brain


def test_ssim_identical_images_is_one():
    x, _, labels, brain = _ssim_case()
    assert torch.allclose(M.ssim_paper(x, x, labels, brain), torch.ones(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(M.ssim_normal(x, x, labels, brain), torch.ones(3, dtype=torch.float64), atol=1e-5)


def test_ssim_paper_matches_official_torchmetrics_call():
    x, r, labels, brain = _ssim_case()
    keep = brain * (~labels).float()
    rb = r * brain
    ref = tm_ssim(
        (r * keep)[:, None], (x * keep)[:, None], sigma=1.5, kernel_size=11,
        data_range=float(rb.max() - rb.min()), k1=0.01, k2=0.03,
    )  # fmt: skip
    ours = M.ssim_paper(x, r, labels, brain)
    assert ours.mean().item() == pytest.approx(ref.item(), abs=1e-6)
    # chunking does not change anything
    assert torch.allclose(M.ssim_paper(x, r, labels, brain, chunk=1), ours)


def test_ssim_normal_matches_manual_map_average():
    x, r, labels, brain = _ssim_case()
    normal = (brain > 0) & ~labels
    data_range = float(x[brain > 0].max() - x[brain > 0].min())
    r_only_normal = torch.where(normal, r, x)
    _, full = tm_ssim(r_only_normal[:, None], x[:, None], sigma=1.5, kernel_size=11, data_range=data_range,
                      reduction="none", return_full_image=True)  # fmt: skip
    expected = [full[i, 0][normal[i]].double().mean().item() for i in range(3)]
    ours = M.ssim_normal(x, r, labels, brain)
    assert ours.tolist() == pytest.approx(expected, abs=1e-6)


def test_ssim_paper_inflated_by_zeroed_region():
    # Half of the brain is lesion, plus background: in ssim_paper all those pixels are zero in both
    # images, so SSIM there is ~1 and pulls the image mean up; ssim_normal averages only normal
    # pixels, where the reconstruction noise lowers SSIM.
    x, r, labels, brain = _ssim_case(noise=1.5)
    paper = M.ssim_paper(x, r, labels, brain).mean().item()
    normal = M.ssim_normal(x, r, labels, brain).mean().item()
    assert paper > normal + 0.05


def test_ssim_normal_ignores_reconstruction_outside_normal_brain():
    x, r, labels, brain = _ssim_case()
    garbage = r.clone()
    garbage[labels] = 100.0
    garbage[brain == 0] = -50.0
    assert torch.allclose(M.ssim_normal(x, r, labels, brain), M.ssim_normal(x, garbage, labels, brain))


# --------------------------------------------------------------------------------------------------
# AUROC / AUPRC
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_roc_pr_against_sklearn_with_ties(seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 6, (400,), generator=g).float()  # heavy ties
    targets = torch.rand(400, generator=g) < (0.1 + 0.1 * scores / 6)
    auroc, ap = M.roc_pr_from_scores(scores, targets)
    assert auroc == pytest.approx(roc_auc_score(targets.numpy(), scores.numpy()), abs=1e-12)
    assert ap == pytest.approx(average_precision_score(targets.numpy(), scores.numpy()), abs=1e-12)


def test_pixel_auc_uses_brain_pixels_only():
    g = torch.Generator().manual_seed(5)
    maps = torch.rand(4, 16, 16, generator=g)
    labels = torch.rand(4, 16, 16, generator=g) < 0.2
    brain = (torch.rand(4, 16, 16, generator=g) > 0.3).float() * 0.7
    region = brain > 0
    auroc, ap = M.pixel_auc(maps, labels, brain)
    assert auroc == pytest.approx(roc_auc_score(labels[region].numpy(), maps[region].numpy()))
    assert ap == pytest.approx(average_precision_score(labels[region].numpy(), maps[region].numpy()))
    wild = torch.where(region, maps, torch.where(labels, -5.0, 5.0))  # adversarial values off-brain
    assert M.pixel_auc(wild, labels, brain) == pytest.approx((auroc, ap))


def test_pixel_auc_undefined_cases_are_nan():
    maps = torch.rand(2, 4, 4)
    brain = torch.ones(2, 4, 4)
    no_pos = torch.zeros(2, 4, 4, dtype=torch.bool)
    assert all(math.isnan(v) for v in M.pixel_auc(maps, no_pos, brain))
    auroc, ap = M.pixel_auc(maps, ~no_pos, brain)
    assert math.isnan(auroc) and ap == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# compute_metrics
# --------------------------------------------------------------------------------------------------
def test_compute_metrics_fields_and_consistency():
    x, r, labels, brain = _ssim_case(n=6)
    g = torch.Generator().manual_seed(0)
    maps = (r - x) ** 2 + 0.5 * labels + 0.1 * torch.rand(6, 32, 32, generator=g)
    pred = maps > 0.4
    subjects = ["a", "a", "b", "c", "c", "d"]
    res = M.compute_metrics(pred, maps, labels, brain, inputs=x, reconstruction=r, subjects=subjects, n_boot=200)
    for key in M.HEADLINE_KEYS + ("n_small", "n_medium", "n_large", "n_images", "n_subjects"):
        assert key in res.values
    assert res.values["n_images"] == 6 and res.values["n_subjects"] == 4
    assert res.values["dice"] == pytest.approx(M.dice_per_image(pred, labels, brain).mean().item())
    assert res.values["auroc"] == pytest.approx(M.pixel_auroc(maps, labels, brain))
    assert res.values["ssim_normal"] == pytest.approx(M.ssim_normal(x, r, labels, brain).mean().item())
    # 256 lesion px at 32x32 -> 4000 at 128x128 -> large
    assert res.values["n_large"] == 6 and math.isnan(res.values["dice_small"])
    for key in ("dice", "sens", "prec", "dice_pooled", "ssim_paper", "ssim_normal", "auroc", "auprc", "dice_large"):
        mean, low, high = res.ci[key]
        assert mean == pytest.approx(res.values[key])
        assert low <= mean + 1e-12 and mean - 1e-12 <= high, key
    assert "dice_small" not in res.ci
    flat = res.flat()
    assert flat["dice_lo"] == res.ci["dice"][1] and flat["auroc_hi"] == res.ci["auroc"][2]
    assert set(res.per_image) >= {"dice", "sens", "prec", "tp", "fp", "fn", "lesion_px", "size_bin", "ssim_paper"}
    assert all(v.shape == (6,) for v in res.per_image.values())


def test_compute_metrics_without_maps_or_reconstruction():
    res = M.compute_metrics(PRED, None, LABEL, torch.ones(1, 4, 4), n_boot=0)
    for key in ("ssim_paper", "ssim_normal", "auroc", "auprc"):
        assert math.isnan(res.values[key])
    assert res.ci == {}
    with pytest.raises(ValueError, match="both"):
        M.compute_metrics(PRED, None, LABEL, torch.ones(1, 4, 4), inputs=torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="subject"):
        M.compute_metrics(PRED, None, LABEL, torch.ones(1, 4, 4), subjects=["a", "b"])


# --------------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------------
def test_bootstrap_mean_ci_contains_mean_and_is_seeded():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 60)
    subjects = [f"s{i // 2}" for i in range(60)]
    mean, low, high = B.bootstrap_mean_ci(scores, subjects, n_boot=500, seed=1)
    assert mean == pytest.approx(scores.mean())
    assert low < mean < high
    assert B.bootstrap_mean_ci(scores, subjects, n_boot=500, seed=1) == (mean, low, high)
    assert B.bootstrap_mean_ci(scores, subjects, n_boot=500, seed=2) != (mean, low, high)


def test_bootstrap_width_shrinks_with_more_subjects():
    rng = np.random.default_rng(1)
    small = rng.normal(0.5, 0.2, 10)
    large = rng.normal(0.5, 0.2, 1000)
    _, lo_s, hi_s = B.bootstrap_mean_ci(small, [str(i) for i in range(10)], n_boot=500)
    _, lo_l, hi_l = B.bootstrap_mean_ci(large, [str(i) for i in range(1000)], n_boot=500)
    assert (hi_l - lo_l) < 0.5 * (hi_s - lo_s)


def test_bootstrap_resamples_whole_subjects():
    # subject A: three slices scoring 1, subject B: one slice scoring 0
    subjects = ["A", "B", "A", "A"]
    seen = []

    def statistic(weights: np.ndarray) -> float:
        seen.append(weights.copy())
        return float(np.average([1, 0, 1, 1], weights=weights)) if weights.sum() else math.nan

    B.bootstrap_statistic_ci(statistic, subjects, n_boot=200, seed=0)
    for w in seen:
        assert w[0] == w[2] == w[3]  # all slices of A share A's draw count
        assert {w[0], w[1]} <= {0.0, 1.0, 2.0} and w[0] + w[1] == 2  # K = 2 subjects per draw
    # the vectorised mean CI gives the same resample means: only {0, 0.75, 1} are possible
    counts = B.draw_subject_counts(2, 200, 0)
    means = (counts[:, 0] * 3.0) / (counts[:, 0] * 3 + counts[:, 1])
    assert set(np.round(means, 12)) <= {0.0, 0.75, 1.0}
    point, low, high = B.bootstrap_mean_ci([1, 0, 1, 1], subjects, n_boot=200, seed=0)
    assert point == pytest.approx(0.75)
    assert (low, high) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))


def test_bootstrap_matches_naive_loop():
    rng = np.random.default_rng(3)
    scores = rng.uniform(0, 1, 25)
    subjects = [f"s{int(v)}" for v in rng.integers(0, 8, 25)]
    index, k = B.subject_index(subjects)
    draws = np.random.default_rng(7).integers(0, k, size=(300, k))
    naive = [np.concatenate([scores[index == s] for s in row]).mean() for row in draws]
    _, low, high = B.bootstrap_mean_ci(scores, subjects, n_boot=300, seed=7)
    assert (low, high) == pytest.approx(tuple(np.percentile(naive, [2.5, 97.5])))


def test_bootstrap_ratio_and_nan_handling():
    num = np.array([2.0, 0.0, 4.0])
    den = np.array([4.0, 2.0, 4.0])
    point, low, high = B.bootstrap_ratio_ci(num, den, ["a", "b", "c"], n_boot=300)
    assert point == pytest.approx(0.6) and low <= point <= high
    p2, l2, h2 = B.bootstrap_mean_ci([0.5, math.nan, 0.7], ["a", "b", "c"], n_boot=300)
    assert p2 == pytest.approx(0.6) and 0.5 <= l2 <= h2 <= 0.7
    with pytest.raises(ValueError, match="subject"):
        B.bootstrap_mean_ci([1.0, 2.0], ["a"])


def test_pixel_auc_ci_matches_weighted_sklearn():
    g = torch.Generator().manual_seed(1)
    labels = torch.rand(8, 12, 12, generator=g) < 0.2
    maps = torch.randint(0, 30, (8, 12, 12), generator=g).float() + 8 * labels
    brain = (torch.rand(8, 12, 12, generator=g) < 0.8).float()
    subjects = [f"s{i % 5}" for i in range(8)]
    ci = M.pixel_auc_ci(maps, labels, brain, subjects, n_boot=100, seed=3)
    region = brain > 0
    s, y = maps[region].numpy(), labels[region].numpy()
    image = torch.arange(8)[:, None, None].expand(8, 12, 12)[region].numpy()
    ref_roc = B.bootstrap_statistic_ci(lambda w: roc_auc_score(y, s, sample_weight=w[image]), subjects, 100, 3)
    ref_ap = B.bootstrap_statistic_ci(lambda w: average_precision_score(y, s, sample_weight=w[image]), subjects, 100, 3)
    assert ci["auroc"] == pytest.approx(ref_roc, abs=1e-10)
    assert ci["auprc"] == pytest.approx(ref_ap, abs=1e-10)
    # quantile-binned path (more distinct values than bins) stays close
    binned = M.pixel_auc_ci(maps + 0.01 * torch.rand(8, 12, 12, generator=g), labels, brain, subjects,
                            n_boot=100, seed=3, max_bins=16)  # fmt: skip
    assert binned["auroc"][1] == pytest.approx(ref_roc[1], abs=0.05)


def test_auc_from_histograms_equals_cumulative_form():
    """The closed-form bootstrap AUC equals the trapezoid / step form to 1e-12, NaN where undefined."""
    g = torch.Generator().manual_seed(8)
    pos = torch.randint(0, 4, (5, 30), generator=g).double() * (torch.rand(5, 30, generator=g) < 0.5)
    neg = torch.randint(0, 6, (5, 30), generator=g).double()
    pos[1] = 0.0  # no positive: both NaN
    neg[2] = 0.0  # no negative: AUROC NaN, AP 1
    got = M._auc_from_histograms(pos, neg)
    want = M._auc_from_cumulative(torch.cumsum(pos, 1), torch.cumsum(neg, 1))
    for a, b in zip(got, want):
        assert torch.equal(a.isnan(), b.isnan()) and torch.allclose(a, b, atol=1e-12, rtol=0, equal_nan=True)
    assert got[1][2] == 1.0 and bool(got[0][1].isnan() and got[1][1].isnan() and got[0][2].isnan())


@pytest.mark.parametrize("max_bins", [4, 16, 10_000])
def test_pixel_auc_ci_binned_path_equals_weighted_sklearn_on_quantile_bins(max_bins):
    """Point estimate exact; resamples exactly weighted sklearn on the scores replaced by their quantile bin
    (edges: the sorted scores at ``linspace(0, n - 1, max_bins + 1)[1:-1]``), one subject without a positive."""
    g = torch.Generator().manual_seed(4)
    labels = torch.rand(9, 10, 10, generator=g) < 0.15
    labels[[2, 7]] = False  # subject s2 has no lesion pixel
    maps = torch.rand(9, 10, 10, generator=g, dtype=torch.float64) + 0.7 * labels
    maps[0, :5] = 0.25  # ties
    brain = (torch.rand(9, 10, 10, generator=g) < 0.85).float()
    subjects = [f"s{i % 5}" for i in range(9)]
    ci = M.pixel_auc_ci(maps, labels, brain, subjects, n_boot=60, seed=5, max_bins=max_bins)
    region = brain > 0
    s, y = maps[region].numpy(), labels[region].numpy()
    image = torch.arange(9)[:, None, None].expand(9, 10, 10)[region].numpy()
    positions = np.linspace(0, s.size - 1, max_bins + 1).astype(np.int64)[1:-1]
    binned = np.searchsorted(np.unique(np.sort(s)[positions]), s, side="right") if np.unique(s).size > max_bins else s
    for key, score in (("auroc", roc_auc_score), ("auprc", average_precision_score)):
        _, low, high = B.bootstrap_statistic_ci(
            lambda w, score=score: score(y, binned, sample_weight=w[image]), subjects, 60, 5
        )
        assert ci[key][0] == pytest.approx(score(y, s), abs=1e-12)
        assert ci[key][1:] == pytest.approx((low, high), abs=1e-12)


# --------------------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compute_metrics_on_cuda_matches_cpu():
    x, r, labels, brain = _ssim_case(n=4)
    maps = (r - x) ** 2 + 0.5 * labels
    pred = maps > 0.4
    cpu = M.compute_metrics(pred, maps, labels, brain, inputs=x, reconstruction=r, n_boot=100)
    dev = [t.cuda() for t in (pred, maps, labels, brain, x, r)]
    gpu = M.compute_metrics(dev[0], dev[1], dev[2], dev[3], inputs=dev[4], reconstruction=dev[5], n_boot=100)
    for key, value in cpu.values.items():
        if math.isnan(value):
            assert math.isnan(gpu.values[key])
        else:
            assert gpu.values[key] == pytest.approx(value, abs=1e-5), key
    for key, value in cpu.ci.items():
        assert gpu.ci[key] == pytest.approx(value, abs=1e-5), key
