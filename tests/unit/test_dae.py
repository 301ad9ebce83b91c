"""DAE: the coarse training noise (sign per ``noise_sign``, density over the brain, smoothness, roll), the
three Table-1 rows as configs of one class inheriting dae.yaml, and the wiring of the anomaly map (erosion,
median filter)."""

from __future__ import annotations

import pytest
import torch

from methods import MethodContext, TrainBudget, create_method
from methods.dae import NOISE_SIGNS, DenoisingAE, coarse_noise, scaled_radius
from methods.postprocess import erode
from tests.tiny_config import method_config
from tests.toy_data import toy_slices


def _disk_brain(n: int, size: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    return (((yy - c) ** 2 + (xx - c) ** 2) <= (0.4 * size) ** 2).float().expand(n, size, size).clone()


def _dae(noise_sign: str = "both", size: int = 32, **params) -> DenoisingAE:
    context = MethodContext("flair", size, torch.device("cpu"), seed=0, available_modalities=("flair", "t1"))
    return create_method("dae", context, noise_sign=noise_sign, widths=[4, 8], **params)  # type: ignore[return-value]


@pytest.mark.parametrize("sign", ["both", "positive", "negative"])
def test_noise_sign_and_dense_cover_of_the_brain_only(sign: str) -> None:
    brain = _disk_brain(16, 64)
    brain[:, 30:34, 30:34] = 0.3  # soft pixels below 0.5 count as outside
    noise = coarse_noise(brain, 1.3, 16, sign, torch.Generator().manual_seed(0))
    inside = brain > 0.5
    assert noise[~inside].eq(0).all(), "corruption leaked outside the brain"
    values = noise[inside]
    assert values.ne(0).all(), "corruption must cover every brain pixel"
    if sign == "positive":
        assert values.gt(0).all()
    elif sign == "negative":
        assert values.lt(0).all()
    else:
        assert values.gt(0).float().mean().item() == pytest.approx(0.5, abs=0.1)
    assert values.abs().mean() > 0.3  # on the σ = 1.3 scale, not a [0, 1]-scale 0.2


def test_noise_is_smooth_and_its_resolution_configurable() -> None:
    brain = torch.ones(16, 64, 64)

    def neighbour_correlation(resolution: int) -> float:
        f = coarse_noise(brain, 1.3, resolution, "both", torch.Generator().manual_seed(1))
        return torch.corrcoef(torch.stack([f[:, :, :-1].flatten(), f[:, :, 1:].flatten()]))[0, 1].item()

    assert neighbour_correlation(16) > 0.8  # drawn at 16 x 16, bilinearly upsampled
    assert abs(neighbour_correlation(64)) < 0.2  # drawn at full resolution: white


@pytest.mark.parametrize("dim", [1, 2])
def test_noise_is_rolled_by_a_random_offset_per_image(dim: int) -> None:
    """Bilinear upsampling is continuous except where the rolled field wraps around: that seam (the
    largest jump between neighbouring rows/columns) sits at the image border without a roll."""
    noise = coarse_noise(torch.ones(32, 64, 64), 1.3, 16, "both", torch.Generator().manual_seed(2))
    jumps = (noise.roll(-1, dims=dim) - noise).abs().mean(dim=3 - dim)  # [B, 64]: jump after row/col i
    seams = jumps.argmax(dim=1)
    assert len(set(seams.tolist())) > 12, f"seams at {seams.tolist()}: not randomly rolled"


def test_noise_is_seeded() -> None:
    brain = _disk_brain(4, 32)
    a = coarse_noise(brain, 1.3, 16, "both", torch.Generator().manual_seed(5))
    b = coarse_noise(brain, 1.3, 16, "both", torch.Generator().manual_seed(5))
    c = coarse_noise(brain, 1.3, 16, "both", torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("sign", list(NOISE_SIGNS))
def test_noise_sign_sets_the_corruption_sign(sign: str) -> None:
    dae = _dae(sign)
    slices = toy_slices(8, 32)
    x = slices.channel("flair")
    corrupted = dae.corrupt(x, slices.brain, torch.Generator().manual_seed(0))
    delta = (corrupted - x)[slices.brain > 0.5]
    assert (corrupted - x)[slices.brain <= 0.5].eq(0).all()
    assert {"positive": delta.gt(0), "negative": delta.lt(0), "both": delta.ne(0)}[sign].all()
    assert dae.display_name == "DAE" and dae.sign == sign


def test_three_configs_inherit_the_base_and_differ_only_in_noise_sign_and_label() -> None:
    base = method_config("dae")
    configs = [method_config(f"dae_{v}") for v in ("plain", "pos", "neg")]
    assert [c["name"] for c in configs] == ["dae"] * 3
    assert [c["params"]["noise_sign"] for c in configs] == ["both", "positive", "negative"]
    assert [c["label"] for c in configs] == ["DAE [-inf,+inf]", "DAE [0,+inf]", "DAE [-inf,0]"]
    assert [c["label"] for c in configs] == [f"DAE {NOISE_SIGNS[c['params']['noise_sign']]}" for c in configs]
    assert configs[0] == base
    shared = {k: v for k, v in base["params"].items() if k != "noise_sign"}
    for c in configs:
        assert {k: v for k, v in c["params"].items() if k != "noise_sign"} == shared and c["train"] == base["train"]
    assert base["params"]["noise_std"] == 1.3 and base["params"]["noise_res"] == 16
    with pytest.raises(ValueError, match="DAE noise_sign .* unknown"):
        _dae("[0,+inf]")


def test_erosion_radius_scales_with_image_size() -> None:
    assert [scaled_radius(2, s) for s in (128, 64, 32, 256)] == [2, 1, 1, 4]
    assert scaled_radius(4, 64) == 2 and scaled_radius(0, 64) == 0


class _Shift(torch.nn.Module):
    """Stub 'denoiser': returns its input minus ``offset`` plus an optional single-pixel spike."""

    def __init__(self, offset: float, spike: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.offset, self.spike = offset, spike
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x - self.offset
        if self.spike is not None:
            out = out.clone()
            out[..., self.spike[0], self.spike[1]] += 10.0
        return out


def test_map_is_residual_on_eroded_brain_after_median_filter() -> None:
    slices = toy_slices(2, 32)
    dae = _dae("positive", size=32, erosion_at_128=8, median=1)  # radius 2 at 32 px
    dae.net = _Shift(offset=1.0)
    out = dae.predict(slices)
    eroded = erode(slices.brain > 0.5, 2)
    assert eroded.sum() < (slices.brain > 0.5).sum()
    assert out.anomaly_map[~eroded].eq(0).all()  # nothing outside the eroded brain
    torch.testing.assert_close(out.anomaly_map, eroded.float())  # |x - (x - 1)| = 1 inside it
    assert torch.equal(out.nfe, torch.ones(2, dtype=torch.long))

    # an isolated one-pixel error inside the brain survives without the median filter, not with 5 x 5
    spike = (16, 16)
    for median, survives in ((1, True), (5, False)):
        dae = _dae("positive", size=32, median=median)
        dae.net = _Shift(offset=0.0, spike=spike)
        value = dae.predict(slices).anomaly_map[:, spike[0], spike[1]]
        assert torch.allclose(value, torch.full_like(value, 10.0)) if survives else value.eq(0).all()


def test_training_is_reproducible_from_the_seed() -> None:
    train, val = toy_slices(12, 32, seed=1), toy_slices(4, 32, seed=2)
    budget = TrainBudget(steps=4, batch_size=4, lr=1e-3, weight_decay=1e-5, val_every=2)
    logs = []
    for _ in range(2):
        torch.manual_seed(0)  # same initial weights; the noise comes from train_networks' generator
        logs.append(_dae("negative").fit(train, val, budget))
    assert logs[0].history == logs[1].history
    assert logs[0].steps == 4 and len(logs[0].history) == 2
