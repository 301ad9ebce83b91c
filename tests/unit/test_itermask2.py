"""IterMask² pieces against independent expectations: x_s vs a numpy reference, training-mask coverage
statistics, the first-step rule, the shrinking loop on stub networks (stopping rule, cap, NFE of converged
images), τ by hand, the layouts, and reproducible predictions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from methods import MethodContext, TrainBudget, create_method
from methods.base import UnknownParameterError
from methods.itermask2 import LAYOUTS, IterMask2
from methods.itermask2.figures import shrinking_figure
from methods.itermask2.frequency import high_pass, low_band, scaled_radius
from methods.itermask2.inference import RefinementConfig, first_step_mask, iterative_refinement, pooled_tau
from methods.itermask2.masks import (
    MaskConfig,
    covered_by_patches,
    draw_one_index,
    masked_fraction,
    random_training_masks,
    sample_corners,
)
from methods.nets.unet import UNetConfig
from tests.toy_data import toy_splits

CPU = torch.device("cpu")
SPLITS = toy_splits(size=32, n_train=8, n_val=4, n_test=6)
BUDGET = TrainBudget(steps=2, batch_size=4, lr=1e-3, val_every=2)
TINY_NET = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_downsample": []}


# ----------------------------------------------------------------------------------------------- x_s
def _reference_high_pass(x: np.ndarray, r: float) -> np.ndarray:
    """The spec formula written out independently with numpy, one image at a time."""
    h, w = x.shape
    spectrum = np.fft.fftshift(np.fft.fft2(x))
    amplitude, phase = np.abs(spectrum), np.angle(spectrum)
    for i in range(h):
        for j in range(w):
            if math.hypot(i - h // 2, j - w // 2) < r:
                amplitude[i, j] = 1.0
    return np.real(np.fft.ifft2(np.fft.ifftshift(amplitude * np.exp(1j * phase))))


@pytest.mark.parametrize(("size", "radius"), [(64, 7.5), (128, 15.0), (48, 10.0)])
def test_high_pass_matches_numpy_reference(size: int, radius: float) -> None:
    x = torch.randn(3, size, size, generator=torch.Generator().manual_seed(size)) * 2 - 1
    ours = high_pass(x, radius)
    assert ours.shape == x.shape and ours.dtype == torch.float32
    for i in range(3):
        reference = _reference_high_pass(x[i].double().numpy(), radius)
        assert np.abs(ours[i].double().numpy() - reference).max() < 1e-5


def test_high_pass_removes_the_low_band_and_keeps_the_rest() -> None:
    x = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1)) * 6 - 3
    band = low_band(64, 64, 7.5)
    assert int(band.sum()) == sum(1 for i in range(64) for j in range(64) if math.hypot(i - 32, j - 32) < 7.5)

    def amplitude(img: torch.Tensor) -> torch.Tensor:
        return torch.fft.fftshift(torch.fft.fft2(img.double()), dim=(-2, -1)).abs()

    removed = high_pass(x, 7.5, low_band_amplitude=0.0)
    assert amplitude(x)[:, band].min() > 0.1 and amplitude(removed)[:, band].max() < 1e-4  # float32 output
    torch.testing.assert_close(amplitude(removed)[:, ~band], amplitude(x)[:, ~band], rtol=1e-4, atol=1e-3)
    # official: amplitude 1 in the low band (the phase is kept, so the real part keeps it exactly)
    ones = torch.ones(2, int(band.sum()), dtype=torch.float64)
    torch.testing.assert_close(amplitude(high_pass(x, 7.5))[:, band], ones, rtol=1e-4, atol=1e-4)


def test_radius_scales_with_image_size() -> None:
    assert scaled_radius(15, 64) == 7.5 and scaled_radius(15, 128) == 15 and scaled_radius(15, 256) == 30
    assert scaled_radius(15, 64, reference_size=None) == 15
    with pytest.raises(ValueError, match="radius"):
        scaled_radius(0, 64)
    method = create_method("itermask2", MethodContext("flair", 64, CPU, 0))
    assert isinstance(method, IterMask2) and method.radius == 7.5


# ----------------------------------------------------------------------------------------------- masks
def _ellipse_brain(n: int, size: int = 240) -> torch.Tensor:
    """A mid-axial-slice-like brain: ellipse with semi-axes 85 x 68 px on a 240 px slice (31.5 % of the
    slice, 18148 px; BraTS slices 70-89 have brains of roughly 140 x 170 mm at 1 mm)."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = (size - 1) / 2
    brain = (((yy - c) / (85 * size / 240)) ** 2 + ((xx - c) / (68 * size / 240)) ** 2 <= 1).float()
    return brain.expand(n, size, size).contiguous()


def test_masks_lie_inside_the_brain_are_soft_at_small_sizes_and_seeded() -> None:
    brain = toy_splits(size=64).train.brain[:16]
    brain[:, 30:34, 30:34] = 0.4  # a soft patch of brain mask
    masks = random_training_masks(brain, torch.Generator().manual_seed(0))
    assert masks.shape == brain.shape
    assert (masks[brain == 0] == 0).all() and masks.min() >= 0 and (masks <= brain.clamp(0, 1) + 1e-7).all()
    assert ((masks > 0) & (masks < brain)).any(), "area-resizing from 240 px should leave soft edges"
    assert (masked_fraction(masks, brain) > 0).all()
    again = random_training_masks(brain, torch.Generator().manual_seed(0))
    other = random_training_masks(brain, torch.Generator().manual_seed(1))
    assert torch.equal(masks, again) and not torch.equal(masks, other)
    with pytest.raises(ValueError, match="at least one brain pixel"):
        random_training_masks(torch.zeros(1, 64, 64), torch.Generator())


@pytest.mark.parametrize("sampling", ["joint", "independent"])
def test_masked_fraction_distribution_matches_the_spec_at_240_px(sampling: str) -> None:
    """500 draws (300 wide, 200 narrow) on the ellipse brain. Spec: median ~23 % (wide), ~4 % (narrow).
    An independent numpy re-implementation of the official generator on this brain (400 draws) gave
    wide median 0.235 (IQR 0.175-0.300) / narrow 0.040 (IQR 0.033-0.051) with independent sampling and
    0.217 / 0.039 with joint sampling. Tolerance on the medians: ±0.035 (wide), ±0.01 (narrow)."""
    g = torch.Generator().manual_seed(0)
    wide = masked_fraction(
        random_training_masks(_ellipse_brain(300), g, MaskConfig(sampling, wide_probability=1.0)), _ellipse_brain(300)
    )
    narrow = masked_fraction(
        random_training_masks(_ellipse_brain(200), g, MaskConfig(sampling, wide_probability=0.0)), _ellipse_brain(200)
    )
    assert abs(float(wide.median()) - 0.23) < 0.035
    assert abs(float(narrow.median()) - 0.04) < 0.01
    q25, q75 = torch.quantile(wide, torch.tensor([0.25, 0.75])).tolist()
    assert 0.12 < q25 < 0.21 and 0.24 < q75 < 0.34  # the spread, not just the centre
    assert float(narrow.max()) < 0.15 and float(wide.max()) < 0.8


def test_joint_corners_stay_in_the_brain_and_independent_ones_need_not() -> None:
    side = 40
    brain = torch.zeros(side, side, dtype=torch.bool)
    for i in range(side):
        brain[i, max(0, i - 1) : i + 2] = True  # a thin diagonal band: row and column are strongly coupled
    weights = brain.flatten().float()[None].repeat(2, 1)
    joint = sample_corners(weights, 500, side, "joint", torch.Generator().manual_seed(0))
    independent = sample_corners(weights, 500, side, "independent", torch.Generator().manual_seed(0))
    assert brain.flatten()[joint].all()
    assert brain.flatten()[independent].float().mean() < 0.5


def test_patch_coverage_is_the_union_of_the_clipped_squares_at_every_corner() -> None:
    """Coverage from corner marks against painting each patch by hand (clipped at the image edge), with corners
    at the edges and one side's patches overlapping another's."""
    r, sides = 20, (2, 3, 5)
    corner_marks = torch.rand(3, 3, r, r, generator=torch.Generator().manual_seed(0)) < 0.03
    corner_marks[0, 2, r - 1, r - 1] = True  # a patch clipped to one pixel
    corner_marks[1, 0, 0, :] = True  # a full first row of corners
    expected = torch.zeros(3, r, r, dtype=torch.bool)
    for b, j, i, c in corner_marks.nonzero().tolist():
        expected[b, i : i + sides[j], c : c + sides[j]] = True
    assert torch.equal(covered_by_patches(corner_marks, sides), expected)


def test_draw_one_index_follows_the_weights_and_never_picks_a_zero_weight() -> None:
    """The Gaussian centre's inverse-CDF draw (``masks.draw_one_index``) has ``torch.multinomial(weights, 1)``'s
    distribution: frequencies within 5 binomial SDs of the normalised weights, zero-weight entries never drawn
    (also at the row's ends), one draw per row."""
    weights = torch.zeros(2, 12)
    weights[0, [0, 5, 11]] = torch.tensor([1.0, 2.0, 5.0])
    weights[1, 11] = 1.0  # all mass on the last entry
    g = torch.Generator().manual_seed(0)
    n = 20000
    draws = draw_one_index(weights.repeat(n, 1), g).view(n, 2)  # n independent draws per row
    frequencies = torch.bincount(draws[:, 0], minlength=12).double() / n
    expected = (weights[0] / weights[0].sum()).double()
    sd = (expected * (1 - expected) / n).sqrt()
    assert ((frequencies - expected).abs() <= 5 * sd + 1e-12).all()
    assert (draws[:, 1] == 11).all()


# ----------------------------------------------------------------------------------------------- inference
def test_first_step_masks_exactly_60_percent_of_the_brain_with_the_highest_error() -> None:
    g = torch.Generator().manual_seed(0)
    error = torch.rand(4, 20, 20, generator=g)
    error[1] = torch.round(error[1] * 4) / 4  # many ties
    region = torch.rand(4, 20, 20, generator=g) > 0.3
    mask = first_step_mask(error, region, 0.6)
    for i in range(4):
        n = int(region[i].sum())
        assert int(mask[i].sum()) == math.floor(0.6 * n + 0.5)
        assert not (mask[i] & ~region[i]).any()
        assert error[i][mask[i]].min() >= error[i][region[i] & ~mask[i]].max()


class _ScheduledModel:
    """Stub f2 for x = 0 and noise = 1, so the input *is* the mask. Image i (identified by x_s = i) keeps
    the first (row-major) ``size - removals[i][k]`` of its masked pixels above τ at its k-th call."""

    def __init__(self, removals: list[list[int]]) -> None:
        self.removals = removals
        self.calls: list[list[int]] = []

    def __call__(self, x_in: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        ids = [int(v) for v in x_s[:, 0, 0]]
        self.calls.append(ids)
        out = torch.zeros_like(x_in)
        for row, image in enumerate(ids):
            k = sum(image in c for c in self.calls) - 1
            mask = x_in[row].flatten() > 0.5
            keep = int(mask.sum()) - self.removals[image][min(k, len(self.removals[image]) - 1)]
            kept = torch.nonzero(mask).flatten()[:keep]
            flat = out[row].flatten()
            flat[kept] = 2.0  # squared error 4 > τ = 1
            out[row] = flat.view_as(out[row])
        return out


def test_shrinking_stops_below_1_percent_caps_and_never_reruns_converged_images() -> None:
    b, size = 3, 32
    x = torch.zeros(b, size, size)
    x_s = torch.arange(b).float()[:, None, None].expand(b, size, size)
    brain = torch.ones(b, size, size)
    first = torch.rand(b, size, size, generator=torch.Generator().manual_seed(0))  # first mask: 614 px
    model = _ScheduledModel(
        [
            [100, 0],  # 614 -> 514 (16 %) -> 514 (0 % < 1 %): stops after 2 masked steps
            [14, 6, 5],  # 614 -> 600 -> 594 (exactly 1 %: goes on) -> 589 (0.84 %): stops after 3
            [10],  # always >= 1.6 %: stopped by the cap
        ]
    )
    result = iterative_refinement(
        x,
        x_s,
        brain,
        first,
        model,
        tau=1.0,
        noise=lambda idx: torch.ones(len(idx), size, size),
        config=RefinementConfig(max_iterations=6),
        record_history=True,
    )
    assert result.nfe.tolist() == [3, 4, 6]
    assert result.capped.tolist() == [False, False, True]
    assert model.calls == [[0, 1, 2], [0, 1, 2], [1, 2], [2], [2]]  # converged images leave the batch
    # stopped images keep the mask their last reconstruction was made with
    assert result.final_mask.flatten(1).sum(1).tolist() == [514, 594, 574]
    assert int(result.history[0][0].sum()) == 614
    for before, after in zip(result.history, result.history[1:]):
        assert not (after & ~before).any(), "masks only shrink"
    # the reconstruction is the last call's output for that image: non-zero exactly on the pixels that call
    # kept above τ, a subset of the final mask (all of it for image 0, 589 of 594 for image 1)
    assert torch.equal(result.reconstruction[0] > 0, result.final_mask[0])
    kept = result.reconstruction[1] > 0
    assert int(kept.sum()) == 589 and not (kept & ~result.final_mask[1]).any()


def test_empty_first_mask_converges_at_once() -> None:
    brain = torch.zeros(1, 8, 8)
    brain[0, 0, 0] = 1.0
    result = iterative_refinement(
        torch.zeros(1, 8, 8),
        torch.zeros(1, 8, 8),
        brain,
        torch.zeros(1, 8, 8),
        lambda x_in, x_s: x_in,
        tau=0.1,
        noise=lambda idx: torch.ones(len(idx), 8, 8),
        config=RefinementConfig(keep_fraction=0.4),
    )
    assert result.nfe.tolist() == [2] and not result.final_mask.any()


def test_tau_is_the_pooled_nearest_rank_percentile() -> None:
    errors = torch.tensor([[[0.1, 7.0], [0.5, 0.2]], [[0.9, 0.3], [5.0, 6.0]]])
    masked = torch.tensor([[[1, 0], [1, 1]], [[1, 1], [0, 0]]]).float()  # values 0.1 0.5 0.2 0.9 0.3
    # nearest rank over the 5 pooled masked values [0.1 0.2 0.3 0.5 0.9]: ceil(q/100 * 5)-th
    assert pooled_tau(errors, masked, 80) == pytest.approx(0.5)
    assert pooled_tau(errors, masked, 60) == pytest.approx(0.3)
    assert pooled_tau(errors, masked, 100) == pytest.approx(0.9)
    assert pooled_tau(errors, masked, 0) == 0.0  # k = numel - 5: an unmasked zero
    # soft weights (official): v = e * w, k = numel - int(0.2 * sum w) = 8 - int(0.2 * 4.0) = 8
    soft = masked * 0.8
    assert pooled_tau(errors, soft, 80) == pytest.approx(0.9 * 0.8)
    with pytest.raises(ValueError, match="no masked pixel"):
        pooled_tau(errors, torch.zeros_like(errors), 80)


class _ConstantError(torch.nn.Module):
    """Stub network: reconstruction = input channel 0 + per-image offset (known squared errors)."""

    def __init__(self, offsets: torch.Tensor, x: torch.Tensor) -> None:
        super().__init__()
        self.offsets = offsets
        self.x = x
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (self.x + self.offsets[:, None, None])[:, None] + 0 * self.dummy


def test_calibrate_pools_masked_errors_over_the_whole_validation_split(monkeypatch: pytest.MonkeyPatch) -> None:
    val = toy_splits(size=16, n_val=5).val
    method = create_method(
        "itermask2", MethodContext("flair", 16, CPU, 0), tau_percentile=70, calibration_batch_size=2, net=TINY_NET
    )
    assert isinstance(method, IterMask2)
    x = val.channel("flair")
    offsets = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])
    fixed_masks = torch.zeros(5, 16, 16)
    for i in range(5):
        fixed_masks[i, :, : 2 * (i + 1)] = 1.0  # image i: 32 (i + 1) masked pixels

    def masks(brain: torch.Tensor, generator: torch.Generator, config: MaskConfig) -> torch.Tensor:
        start = calls.pop(0)
        return fixed_masks[start : start + len(brain)]

    calls = [0, 2, 4]
    monkeypatch.setattr("methods.itermask2.method.random_training_masks", masks)
    batch_offsets = iter([offsets[0:2], offsets[2:4], offsets[4:5]])
    batch_x = iter([x[0:2], x[2:4], x[4:5]])

    class PerBatch(torch.nn.Module):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return _ConstantError(next(batch_offsets), next(batch_x))(inputs)

    method.f2 = PerBatch()
    method.calibrate(val)
    # by hand: squared offsets 0.01 .. 0.25 on 32, 64, 96, 128, 160 masked pixels (480 pooled); cumulative
    # counts 32, 96, 192, 320, 480; the 70th percentile by nearest rank is the ceil(0.7 * 480) = 336-th
    # value, in the last block -> 0.5² (a per-batch or per-image percentile would give something else)
    assert method.tau == pytest.approx(0.5**2, rel=1e-5)


# ----------------------------------------------------------------------------------------------- method


def _create(layout: str = "default", **params: object) -> IterMask2:
    method = create_method(
        "itermask2",
        MethodContext("flair", 32, CPU, seed=0),
        **({"layout": layout, "net": TINY_NET, "max_iterations": 8} | params),
    )
    assert isinstance(method, IterMask2)
    return method


@pytest.fixture(scope="module")
def trained_states() -> dict[str, dict]:
    """Each layout fitted once (2 steps) for the whole module; tests rebuild methods from these states."""
    states = {}
    for layout in LAYOUTS:
        torch.manual_seed(0)
        method = _create(layout)
        log = method.fit(SPLITS.train, SPLITS.val, BUDGET)
        assert log.steps == 2 and "f1_val_loss" in log.history[-1]
        assert ("f2_val_loss" in log.history[-1]) == (layout != "-spat")
        states[layout] = method.state_dict()
    return states


@pytest.fixture
def trained(trained_states):
    """``trained(layout, **params)``: a fresh method with the module's fitted networks, calibrated."""

    def build(layout: str = "default", **params: object) -> IterMask2:
        method = _create(layout, **params)
        method.load_state_dict(trained_states[layout])
        method.calibrate(SPLITS.val)
        return method

    return build


def test_layouts_build_the_right_networks_and_costs(trained) -> None:
    default = trained()
    assert default.f2 is not None and default.f2.input_conv.in_channels == 2
    assert default.display_name == "IterMask²" and default.layout == "default"

    freq = trained("-freq")
    assert freq.f2 is not None and freq.f2.input_conv.in_channels == 1
    assert freq.display_name == "IterMask² -freq"
    out = freq.predict(SPLITS.test)
    assert (out.nfe >= 2).all() and out.final_mask is not None

    spat = trained("-spat")
    assert spat.f2 is None and spat.tau is None and len(spat.networks()) == 1
    out = spat.predict(SPLITS.test)
    assert out.nfe.tolist() == [1] * len(SPLITS.test) and out.final_mask is None
    x = SPLITS.test.channel("flair")
    with torch.no_grad():
        expected = (spat.f1(spat.high_pass(x)[:, None])[:, 0] - x).square() * SPLITS.test.brain
    torch.testing.assert_close(out.anomaly_map, expected)

    assert spat.display_name == "IterMask² -spat"
    with pytest.raises(ValueError, match="unknown layout '-both'"):
        _create("-both")
    # the layout is the only switch: the former variant/ablation pair is no parameter any more
    with pytest.raises(UnknownParameterError, match="ablation"):
        _create(ablation="-freq")
    configured = create_method("itermask2", MethodContext("flair", 32, CPU, 0), layout="-freq", net=TINY_NET)
    assert isinstance(configured, IterMask2) and configured.f2 is not None
    assert configured.f2.input_conv.in_channels == 1
    paper = create_method("itermask2", MethodContext("flair", 32, CPU, 0), net="paper")
    assert isinstance(paper, IterMask2) and paper.net_config == UNetConfig.preset("paper")


def test_predict_is_reproducible_batch_independent_and_counts_capped_images(trained) -> None:
    method = trained(max_iterations=3)
    whole = method.predict(SPLITS.test)
    halves = [method.predict(SPLITS.test.subset(slice(0, 2))), method.predict(SPLITS.test.subset(slice(2, 6)))]
    torch.testing.assert_close(torch.cat([h.anomaly_map for h in halves]), whole.anomaly_map)
    assert whole.final_mask is not None and whole.reconstruction is not None
    x = SPLITS.test.channel("flair")
    torch.testing.assert_close(whole.anomaly_map, (whole.reconstruction - x).square() * SPLITS.test.brain)
    assert (whole.nfe <= 3).all() and (whole.nfe >= 2).all()
    # counters cover every predict call since the last reset: the test split twice, same NFE each time
    assert method.inference_stats()["nfe_mean"] == pytest.approx(float(whole.nfe.float().mean()))

    # τ = -1 keeps every masked pixel and min_shrink = 0 never stops a non-empty mask: all images hit the cap
    method.reset_inference_stats()
    method.tau = -1.0
    method.refinement = RefinementConfig(min_shrink=0.0, max_iterations=5)
    capped = method.predict(SPLITS.test)
    assert capped.nfe.tolist() == [5] * len(SPLITS.test)
    assert method.inference_stats() == {"n_capped": len(SPLITS.test), "capped_fraction": 1.0, "nfe_mean": 5.0}


def test_state_round_trip_and_missing_calibration(trained) -> None:
    method = trained()
    clone = _create()
    with pytest.raises(RuntimeError, match="calibrate"):
        clone.predict(SPLITS.test)
    clone.load_state_dict(method.state_dict())
    assert clone.tau == method.tau
    torch.testing.assert_close(clone.predict(SPLITS.test).anomaly_map, method.predict(SPLITS.test).anomaly_map)


def test_a_state_saved_at_another_tau_percentile_loads_and_needs_recalibration(trained) -> None:
    """A τ sweep trains once: the networks load at any percentile, the foreign τ is dropped, and calibrate
    sets this percentile's τ (higher percentile → τ not lower, pooled over the same masked errors)."""
    method = trained()  # calibrated at 80
    other_q = _create(tau_percentile=90)
    other_q.load_state_dict(method.state_dict())
    assert other_q.tau is None
    with pytest.raises(RuntimeError, match="calibrate"):
        other_q.predict(SPLITS.test)
    other_q.calibrate(SPLITS.val)
    assert other_q.tau is not None and method.tau is not None and other_q.tau > method.tau
    for a, b in zip(method.networks(), other_q.networks(), strict=True):
        for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(p, q), name


def test_training_identity_ignores_inference_settings_only() -> None:
    base = _create().training_identity()
    for inference_only in (
        {"tau_percentile": 60},
        {"keep_fraction": 0.5},
        {"min_shrink": 0.05},
        {"max_iterations": 20},
        {"calibration_batch_size": 4},
        {"oracle": False},
    ):
        assert _create(**inference_only).training_identity() == base, inference_only
    assert _create("default", tau_percentile=60).training_identity() == base
    for trained_differently in (
        {"radius": 10.0},
        {"low_band_amplitude": 0.0},
        {"mask_sampling": "independent"},
        {"net": TINY_NET | {"base_channels": 4}},
    ):
        assert _create(**trained_differently).training_identity() != base, trained_differently
    assert _create("-freq").training_identity() != base and _create("-spat").training_identity() != base
    spat = _create("-spat").training_identity()
    assert _create("-spat", radius=20.0).training_identity() != spat
    assert _create("-spat", mask_sampling="independent").training_identity() == spat  # -spat trains no masks


def test_shrinking_figure_is_written_as_png_and_pdf(trained, tmp_path: Path) -> None:
    method = trained()
    paths = method.diagnostic_figures(SPLITS.test.subset([0, 1]), tmp_path / "figs")
    assert [p.name for p in paths] == ["itermask2_shrinking.png", "itermask2_shrinking.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"
    assert _create("-spat").diagnostic_figures(SPLITS.test, tmp_path / "none") == []
    with pytest.raises(ValueError, match="single-step"):
        shrinking_figure(_create("-spat").refinement_model(), SPLITS.test, tmp_path / "no.png")
