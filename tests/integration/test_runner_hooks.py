"""The runner's generic method hooks end to end: inference stats in every row, the method's own (oracle)
segmentation as an extra ``human_ai`` row, diagnostic figures beside the results (copied into the report);
and IterMask²'s τ sweep training once (its second cell reloads the first cell's networks)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import methods.base as base
from benchmark.runner import run_experiment
from methods.base import AnomalyMethod, MethodOutput
from reports.report import write_report
from reports.sensitivity import sensitivity_table
from tests.tiny_config import compose_tiny

PROTOCOLS = ["oracle_global", "val_fpr"]
TINY_NET = "{base_channels: 4, channel_mult: [1, 2], num_res_blocks: 1, attention_downsample: [], dropout: 0.0}"


def _compose(tmp_path: Path, data_dir: Path, experiment: str, *extra: str):
    """``experiment`` on 6 synthetic subjects at 32 px, FLAIR only (data generated once per session)."""
    overrides = [
        f"experiment={experiment}",
        "experiment.modalities=[flair]",
        f"experiment.protocols=[{','.join(PROTOCOLS)}]",
        "eval_batch_size=4",
        *extra,
    ]
    return compose_tiny(tmp_path / "out", data_dir, *overrides)


def test_hooks_of_a_toy_method_reach_the_rows_arrays_and_report_folder(tmp_path, shared_data_dir, monkeypatch) -> None:
    """Known answers: the oracle segmentation = the labels (Dice 1 on lesion slices), the counter = the number
    of test predict calls (reset before the test split, read before the validation split)."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @base.register("hooked")
    class Hooked(AnomalyMethod):
        trains = False

        def fit(self, train, val, budget):
            return base.TrainLog(steps=0)

        def predict(self, batch):
            self.calls += 1
            x = batch.channel(self.context.modality)
            return MethodOutput(
                anomaly_map=x * (batch.brain > 0), reconstruction=None, nfe=torch.ones(len(batch), dtype=torch.long)
            )

        def reset_inference_stats(self):
            self.calls = 0

        def inference_stats(self):
            return {"predict_calls": float(self.calls)}

        def human_ai_segmentation(self, test):
            return test.labels.clone()

        def diagnostic_figures(self, slices, out_dir):
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / "lesions.txt"
            path.write_text(" ".join(str(int(v)) for v in slices.labels.flatten(1).any(1)))
            return [path]

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    entry = "{name: hooked, params: {}}"
    cfg = _compose(tmp_path, shared_data_dir, "default", f"+methods.hooked={entry}", "experiment.only_methods=[hooked]")
    store = run_experiment(cfg)
    rows = store.rows()
    assert rows["protocol"].tolist() == [*PROTOCOLS, "human_ai"]
    n_test = int(rows["n_test_slices"].iloc[0])
    assert (rows["predict_calls"] == math.ceil(n_test / 4)).all()  # test batches only, in every row

    human = rows[rows["protocol"] == "human_ai"].iloc[0]
    assert bool(human["is_oracle"]) and math.isnan(human["threshold"])
    for column in ("dice", "sens", "prec", "dice_pooled", "auroc", "auprc"):
        assert column in human and not math.isnan(human[column]), column
    assert human["dice_pooled"] == pytest.approx(1.0) and human["sens"] == pytest.approx(1.0)
    assert human["threshold_objective"] == human["dice"] and human["search_seconds"] >= 0
    assert human["auroc"] == rows[rows["protocol"] == "oracle_global"].iloc[0]["auroc"]  # same maps
    arrays = np.load(store.arrays_dir / f"{human['cell']}.npz")
    labels = np.load(next(store.arrays_dir.glob("testset__*.npz")))["labels"]
    np.testing.assert_array_equal(arrays["segmentation__human_ai"], labels)

    # figures: the first 4 lesion slices of the test split, beside the results; the report copies and links them
    assert human["figures"] == [f"figures/{human['cell']}/lesions.txt"]
    assert (Path(cfg.paths.results) / human["figures"][0]).read_text() == "1 1 1 1"
    text = write_report(store, Path(cfg.paths.report), cfg).read_text()
    assert f"- [{human['figures'][0]}]({human['figures'][0]})" in text
    assert (Path(cfg.paths.report) / human["figures"][0]).read_text() == "1 1 1 1"


@pytest.fixture(scope="module")
def tau_sweep(tmp_path_factory, shared_data_dir):
    """The τ sweep at two values (p60, p100), tiny nets, 3 training steps, a tiny oracle search."""
    tmp_path = tmp_path_factory.mktemp("tau_sweep")
    extra = ["experiment.sweep.values=[60,100]", "experiment.sweep.reference=60", "diagnostic_slices=2"]
    extra += [
        "methods.itermask2.train.steps=3",
        "methods.itermask2.train.batch_size=8",
        "methods.itermask2.train.val_every=3",
        f"methods.itermask2.params.net={TINY_NET}", "methods.itermask2.params.max_iterations=4",
        "methods.itermask2.params.calibration_batch_size=8",
        "methods.itermask2.params.oracle={enabled: true, start_fractions: [0.6], tau_step: 0.05, tau_max: 0.3, "
        "max_iterations: 3}",
    ]  # fmt: skip
    cfg = _compose(tmp_path, shared_data_dir, "sensitivity_tau", *extra)
    return cfg, run_experiment(cfg)


def test_itermask2_tau_sweep_trains_once_and_stores_oracle_rows_stats_and_figures(tau_sweep) -> None:
    cfg, store = tau_sweep
    rows = store.rows()
    p60, p100 = (rows[rows["param.tau_percentile"] == v] for v in (60, 100))
    assert not p60["checkpoint_reused"].any() and p100["checkpoint_reused"].all()  # same networks, one fit
    for cell in (p60, p100):
        assert cell["protocol"].tolist() == [*PROTOCOLS, "human_ai"]
        human = cell[cell["protocol"] == "human_ai"].iloc[0]
        assert bool(human["is_oracle"]) and 0.0 <= human["dice"] <= 1.0
        # counters of the test split only: their mean NFE is the runner's NFE per test slice
        assert (cell["nfe_mean"] == cell["nfe_per_slice"]).all()
        assert (cell["n_capped"] <= cell["n_test_slices"]).all()
        assert (cell["capped_fraction"] == cell["n_capped"] / cell["n_test_slices"]).all()
        assert (cell["nfe_per_slice"] <= 4).all()  # params.max_iterations reached the method
        figures = human["figures"]
        assert [Path(f).suffix for f in figures] == [".png", ".pdf"]
        assert all((Path(cfg.paths.results) / f).stat().st_size > 1000 for f in figures)
    table = sensitivity_table(rows, "param.tau_percentile")
    assert table["param.tau_percentile"].tolist() == [60.0, 100.0]
    assert table["dice"].tolist() == [
        p60[p60["protocol"] == "oracle_global"]["dice"].iloc[0],
        p100[p100["protocol"] == "oracle_global"]["dice"].iloc[0],
    ]
