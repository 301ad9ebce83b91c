"""Timing harness (benchmark/timing.py, the timer of methods/measure.py), FLOP counting, the official-style
IterMask² loop, the methods' cost studies and the cost table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

import benchmark.timing as timing
from benchmark.config import ConfigError
from benchmark.timing import TimingOptions, peak_memory_mb, run_timing, time_inference
from methods import MethodContext, create_method, measure
from methods.itermask2.inference import RefinementConfig, iterative_refinement
from methods.measure import Timer, TimingStats, count_flops
from reports.cost import cost_table, record_sections, write_cost_report
from tests.tiny_config import compose_tiny, with_smoke_params
from tests.toy_data import toy_slices

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]),
]


def tiny_timing_config(tmp_path: Path, data_dir: Path, *extra: str):
    """``experiment=timing`` on 6 synthetic subjects at 32 px: every method of the experiment (whatever it
    lists), 2 training steps of batch 4, each method's ``smoke_params`` (cheap settings of the same code paths),
    no warm-up (the harness's arithmetic is under test here, not the figures)."""
    overrides = [
        "experiment=timing",
        "timing.repeats=2",
        "timing.warmup=0",
        "timing.batch_size=4",
        "timing.train_steps=2",
        "timing.train_step_repeats=1",
        "timing.train_step_extra=1",
        *extra,
    ]
    return with_smoke_params(compose_tiny(tmp_path / "out", data_dir, *overrides), batch_size=4)


# ---------------------------------------------------------------------------------------------- timer
def test_timing_stats_on_a_known_sequence() -> None:
    stats = TimingStats((4.0, 1.0, 10.0, 2.0, 3.0))
    assert stats.median == 3.0
    assert stats.q1 == 2.0 and stats.q3 == 4.0 and stats.iqr == 2.0  # linear-interpolated quartiles
    assert TimingStats((1.0, 2.0)).q1 == 1.25  # 1 + 0.25 * (2 - 1)
    assert stats.scaled(1000).median == 3000.0
    with pytest.raises(ValueError, match="at least one sample"):
        TimingStats(())


def test_cpu_timer_warms_up_then_times_each_repeat(monkeypatch) -> None:
    clock = iter([0.0, 0.5, 1.0, 3.0, 10.0, 10.25])  # start/end pairs: 0.5 s, 2 s, 0.25 s
    monkeypatch.setattr(measure.time, "perf_counter", lambda: next(clock))
    calls = []
    stats = Timer(torch.device("cpu")).repeat(lambda: calls.append(1), repeats=2, warmup=1)
    assert len(calls) == 3
    assert stats.samples == (2.0, 0.25)  # the warm-up call (0.5 s) is not a sample
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        Timer(torch.device("cpu")).repeat(lambda: None, repeats=0)
    assert timing.Timer is measure.Timer and timing.TimingStats is measure.TimingStats  # one timer, in methods


def test_timer_defaults_are_the_runs_repeats_and_warmup() -> None:
    calls = []
    stats = Timer(torch.device("cpu"), repeats=3, warmup=2).repeat(lambda: calls.append(1))
    assert len(stats.samples) == 3 and len(calls) == 5
    assert len(Timer(torch.device("cpu"), repeats=3, warmup=2).repeat(lambda: None, repeats=1, warmup=0).samples) == 1


@pytest.mark.parametrize("device", DEVICES)
def test_timer_measures_work_on_device(device: str) -> None:
    dev = torch.device(device)
    a = torch.randn(256, 256, device=dev)
    stats = Timer(dev).repeat(lambda: a @ a, repeats=3, warmup=1)
    assert len(stats.samples) == 3 and all(s > 0 for s in stats.samples)
    memory, kind = peak_memory_mb(dev)
    assert memory > 0 and kind == ("cuda_max_allocated" if device == "cuda" else "cpu_process_peak_rss")


@pytest.mark.parametrize("device", DEVICES)
def test_time_inference_row_on_device(device: str) -> None:
    dev = torch.device(device)
    method = create_method("ae", MethodContext("flair", 32, dev, 0), widths=[8, 8, 8, 8], latent_dim=8)
    batch = toy_slices(3, size=32, lesions=True).to(dev)
    options = TimingOptions(repeats=2, warmup=1)
    row = time_inference(method, batch, Timer(dev), options, precision="bf16")
    assert row["nfe_per_slice"] == 1.0 and row["ms_per_slice"] > 0
    assert row["slices_per_s"] == pytest.approx(1000 / row["ms_per_slice"])
    assert row["gflop_per_slice"] > 0
    # bf16 is measured against fp32 on the same inputs, on every device
    assert abs(row["amp_dice_delta"] - (row["dice_bf16"] - row["dice_fp32"])) < 1e-12
    assert 0 <= row["dice_fp32"] <= 1 and 0 <= row["dice_bf16"] <= 1
    assert "amp_dice_delta" not in time_inference(method, batch, Timer(dev), options)  # fp32: no comparison


# ---------------------------------------------------------------------------------------------- flops
def test_flop_counter_known_answers() -> None:
    linear = torch.nn.Linear(16, 8, bias=False)
    x = torch.zeros(5, 16)
    assert count_flops(lambda: linear(x)) == 2 * 5 * 16 * 8
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    image = torch.zeros(2, 3, 10, 10)
    assert count_flops(lambda: conv(image)) == 2 * 2 * 4 * 10 * 10 * 3 * 3 * 3
    assert count_flops(lambda: image.exp() + 1) == 0  # element-wise work is not counted


# ---------------------------------------------------------------------------------------------- official-style loop
def _shrinking_stub(calls: list[int]):
    """f2 stub whose error on a masked pixel is ``x_s * (masked share of the image)``: images with larger
    ``x_s`` shrink over more iterations. Per image only, so batch composition cannot change its output."""

    def model(x_in: torch.Tensor, x_s: torch.Tensor) -> torch.Tensor:
        calls.append(x_in.shape[0])
        masked = x_in != 0
        share = masked.flatten(1).float().mean(1)[:, None, None]
        return torch.where(masked, x_s * share, torch.zeros_like(x_s))

    return model


def test_official_style_loop_gives_identical_maps_with_more_evaluations() -> None:
    b, h = 3, 8
    x = torch.zeros(b, h, h)
    brain = torch.ones(b, h, h)
    ramp = torch.linspace(0.5, 4.0, h * h).view(h, h)
    x_s = torch.stack([ramp * s for s in (0.3, 0.6, 1.0)])  # NFE 4, 13 and 2
    first = torch.linspace(0, 1, h * h).view(1, h, h).expand(b, h, h)
    ones = lambda idx: torch.ones(len(idx), h, h)  # noqa: E731  noise = 1: masked pixels of x_in are 1
    config = RefinementConfig(keep_fraction=0.6, min_shrink=0.01, max_iterations=50)
    calls_active: list[int] = []
    calls_official: list[int] = []
    active = iterative_refinement(x, x_s, brain, first, _shrinking_stub(calls_active), 0.5, ones, config)
    official = iterative_refinement(
        x, x_s, brain, first, _shrinking_stub(calls_official), 0.5, ones, config, keep_converged=True
    )
    assert torch.equal(active.final_mask, official.final_mask)
    assert torch.equal(active.reconstruction, official.reconstruction)
    assert active.nfe.tolist() == [4, 13, 2]
    for i in range(b):  # each image alone converges the same way (no coupling through the batch)
        alone = iterative_refinement(x[i:i + 1], x_s[i:i + 1], brain[i:i + 1], first[i:i + 1],
                                     _shrinking_stub([]), 0.5, ones, config)  # fmt: skip
        assert int(alone.nfe) == int(active.nfe[i]) and torch.equal(alone.final_mask[0], active.final_mask[i])
    # official style: every image is evaluated until the slowest stops
    assert official.nfe.tolist() == [int(active.nfe.max())] * b
    assert calls_official == [b] * (int(active.nfe.max()) - 1)
    # evaluations actually spent = reported NFE minus the f1 step, in both loops
    assert sum(calls_active) == int(active.nfe.sum()) - b
    assert int(active.nfe.sum()) < int(official.nfe.sum())


# ---------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def timing_run(tmp_path_factory, shared_data_dir):
    tmp_path = tmp_path_factory.mktemp("timing")
    cfg = tiny_timing_config(tmp_path, shared_data_dir)
    store = run_timing(cfg)
    return tmp_path, cfg, store


def test_timing_command_writes_cost_rows_for_every_method(timing_run) -> None:
    _, cfg, store = timing_run
    rows = store.rows()
    cost = rows[rows["record"] == "method_cost"]
    assert set(cost["method_key"]) == set(cfg.methods) and len(cfg.methods) >= 2
    assert (cost["status"] == "ok").all() and (cost["experiment"] == "timing").all()
    assert (cost["ms_per_slice"] > 0).all() and (cost["train_step_ms"].notna()).all()
    assert (cost["batch_size"] == 4).all() and (cost["train_batch_size"] == 4).all()
    expected_nfe = {"ae": 1, "ddpm": 4, "dae_pos": 1, "dae_neg": 1, "dae_plain": 1, "cyclic_unet": 2}
    for key, nfe in expected_nfe.items():
        assert cost.loc[cost["method_key"] == key, "nfe_per_slice"].item() == pytest.approx(nfe), key
    itermask_nfe = cost.loc[cost["method_key"] == "itermask2", "nfe_per_slice"].item()
    assert 2 <= itermask_nfe <= 6  # f1 + at least one f2 step, at most the cap
    for key in cfg.methods:  # parameter counts equal the method's own count
        spec = cfg.methods[key]
        params = dict(spec.params)
        method = create_method(spec.name, MethodContext("flair", 32, torch.device("cpu"), 0, ("flair", "t1")), **params)
        assert cost.loc[cost["method_key"] == key, "params"].item() == method.parameter_count(), key


def test_timing_run_compares_itermask2_loops_and_counts_flops(timing_run) -> None:
    _, _, store = timing_run
    rows = store.rows()
    # only the method with a cost study wrote study rows, one store entry per (record, cell)
    study = rows[~rows["record"].isin(["method_cost", "throughput"])]
    assert set(study["method_key"]) == {"itermask2"} and study["title"].notna().all()
    assert set(study["record"]) == {"itermask2_loops", "itermask2_mask_share", "forward_flops"}
    (cell,) = set(study["cell"])
    keys = set(store.rows(["itermask2_loops__" + cell])["record"])
    assert keys == {"itermask2_loops"}
    loops = rows[rows["record"] == "itermask2_loops"].iloc[0]
    assert bool(loops["identical_outputs"])
    assert loops["nfe_official_style"] == loops["nfe_max"] >= loops["nfe_active_set"]
    share = rows[rows["record"] == "itermask2_mask_share"].iloc[0]
    assert share["mask_share"] == pytest.approx(share["mask_ms"] / share["train_step_ms"])
    flops = rows[rows["record"] == "forward_flops"]
    assert set(flops["image_size"]) == {64, 128}
    f1 = flops[flops["network"] == "itermask2_f1"]
    small, paper = (f1[f1["net"] == n].iloc[0] for n in ("small", "paper"))
    assert paper["gflop_per_forward"] > 4 * small["gflop_per_forward"] > 0  # 4x pixels and a larger net
    assert (rows[rows["record"] == "throughput"]["conv3x3_gflops_per_s"] > 0).all()


def test_cost_report_files(timing_run) -> None:
    tmp_path, _, store = timing_run
    rows = store.rows()
    table = cost_table(rows)
    assert ("", "ms/slice") in table.values.columns and ("", "NFE") in table.values.columns
    assert table.values.loc["AE", ("", "NFE")] == 1.0
    report = write_cost_report(rows, tmp_path / "report")
    text = report.read_text()
    assert "| Method | NFE" not in text and "| Method | Params (M) | NFE | ms/slice" in text
    assert "active-set loop vs official-style" in text and "Distance to the compute limit" in text
    for suffix in ("md", "tex", "csv"):
        assert (tmp_path / "report" / f"cost.{suffix}").exists()


def test_cost_report_renders_any_record_generically() -> None:
    rows = pd.DataFrame([
        {"record": "method_cost", "status": "ok", "method_label": "X"},
        {"record": "study_b", "title": "Second study", "value": 2.0, "experiment": "e", "commit": "c"},
        {"record": "study_a", "title": "First study", "value": 1.0},
        {"record": "study_b", "title": "Second study", "value": 3.0},
        {"record": "untitled", "value": 4.0},
    ])  # fmt: skip
    text = "\n".join(record_sections(rows))
    assert text.index("## Second study") < text.index("## First study") < text.index("## untitled")
    assert text.count("## ") == 3 and "method_cost" not in text and "| value |" in text
    second = text[text.index("## Second study") : text.index("## First study")]
    assert "| 2 |" in second and "| 3 |" in second and "commit" not in second and "title" not in second


def test_unknown_timing_option_is_a_clear_error(tmp_path, shared_data_dir) -> None:
    cfg = tiny_timing_config(tmp_path, shared_data_dir, "+timing.nope=1")
    with pytest.raises(KeyError, match="unknown keys \\['nope'\\]"):
        TimingOptions.from_config(cfg)


@pytest.mark.parametrize(
    ("old", "new"),
    [("amp=true", "compute.precision=bf16"), ("channels_last=true", "compute.channels_last=true"),
     ("compile=true", "compute.compile=true")],
)  # fmt: skip
def test_timing_options_moved_to_compute_name_the_new_key(tmp_path, shared_data_dir, old: str, new: str) -> None:
    cfg = tiny_timing_config(tmp_path, shared_data_dir, f"+timing.{old}")
    with pytest.raises(ConfigError, match=f"^timing.{old.partition('=')[0]} moved .*: use {new} "):
        TimingOptions.from_config(cfg)


def test_timing_row_records_the_compute_options_steps_per_second_and_bf16_delta(tmp_path, shared_data_dir) -> None:
    cfg = tiny_timing_config(
        tmp_path, shared_data_dir, "experiment.only_methods=[ae]", "timing.cost_studies=false", "timing.flops=false",
        "compute.precision=bf16", "compute.channels_last=true",
    )  # fmt: skip
    rows = run_timing(cfg).rows()
    (row,) = rows[rows["record"] == "method_cost"].to_dict("records")
    assert row["precision"] == "bf16" and row["option_precision"] == "bf16" and row["option_channels_last"] == "on"
    assert row["compute.channels_last"] is True and row["option_compile"] == "off"
    assert row["train_steps_per_s"] == pytest.approx(1000 / row["train_step_ms"])
    assert row["train_peak_memory_mb"] > 0 and row["peak_memory_mb"] > 0
    assert row["amp_dice_delta"] == pytest.approx(row["dice_bf16"] - row["dice_fp32"])
