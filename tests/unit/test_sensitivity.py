"""Sensitivity sweeps: the table and figure on hand-made rows (values by hand), and the two sweep experiment
configs compose with the expected parameter values and share / do not share trained networks as intended."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from benchmark.config import method_specs
from methods import MethodContext, create_method
from reports.sensitivity import sensitivity_figure, sensitivity_plot, sensitivity_table
from tests.tiny_config import CONFIG_DIR


def _row(
    modality: str,
    q: float,
    seed: int,
    dice: float,
    protocol: str = "oracle_global",
    status: str = "ok",
    degenerate: bool = False,
) -> dict:
    return {
        "degenerate": degenerate,
        "dataset": "synthetic-brats",
        "modality": modality,
        "protocol": protocol,
        "seed": seed,
        "dice": dice,
        "param.tau_percentile": q,
        "status": status,
        "cell": f"{modality}_{q}_{seed}",
    }


@pytest.fixture
def rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _row("flair", 60, 0, 0.50),
            _row("flair", 60, 1, 0.70, degenerate=True),  # mean 0.60 over two seeds, one of them degenerate
            _row("flair", 80, 0, 0.75),
            _row("t1", 80, 0, 0.40),
            _row("t1", 60, 0, 0.30),  # out of order on purpose
            _row("flair", 80, 0, 0.99, protocol="val_fpr"),  # another protocol: ignored
            _row("t1", 100, 0, float("nan"), status="failed"),  # did not run: ignored
        ]
    )


def test_sensitivity_table_averages_seeds_per_value_at_the_protocol(rows: pd.DataFrame) -> None:
    table = sensitivity_table(rows, "param.tau_percentile")
    assert list(table.columns) == [
        "dataset", "modality", "param.tau_percentile", "dice", "dice_std", "n_seeds", "n_degenerate"
    ]  # fmt: skip
    assert table[["modality", "param.tau_percentile"]].values.tolist() == [
        ["flair", 60.0],
        ["flair", 80.0],
        ["t1", 60.0],
        ["t1", 80.0],
    ]
    np.testing.assert_allclose(table["dice"], [0.60, 0.75, 0.30, 0.40])
    np.testing.assert_allclose(table["dice_std"].iloc[0], np.std([0.5, 0.7], ddof=1))
    assert table["n_seeds"].tolist() == [2, 1, 1, 1]
    assert table["n_degenerate"].tolist() == [1, 0, 0, 0]
    other = sensitivity_table(rows, "param.tau_percentile", protocol="val_fpr")
    assert other["dice"].tolist() == [0.99]


def test_a_row_without_the_swept_parameter_is_an_error(rows: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="param.radius"):
        sensitivity_table(rows, "param.radius")


def test_sensitivity_figure_draws_one_line_per_modality_with_the_table_values(rows: pd.DataFrame, tmp_path) -> None:
    table = sensitivity_table(rows, "param.tau_percentile")
    fig = sensitivity_plot(table, "param.tau_percentile", "τ percentile")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "τ percentile" and ax.get_ylabel() == "DSC"
    drawn = {
        tuple(np.round(line.get_ydata(), 6)): (tuple(line.get_xdata()), line.get_color())
        for line in ax.get_lines()
        if len(line.get_xdata())
    }
    assert set(drawn) == {(0.6, 0.75), (0.3, 0.4)}  # one line per modality, seed-averaged, in x order
    assert all(x == (60.0, 80.0) for x, _ in drawn.values())
    legend = {
        text.get_text(): handle.get_color()
        for text, handle in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)
    }
    assert legend == {"flair": drawn[(0.6, 0.75)][1], "t1": drawn[(0.3, 0.4)][1]}

    paths = sensitivity_figure(rows, "param.tau_percentile", "τ percentile", tmp_path / "fig")
    assert [p.name for p in paths] == ["sensitivity__param.tau_percentile.png", "sensitivity__param.tau_percentile.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:5] == b"%PDF-"
    assert sensitivity_figure(rows, "param.tau_percentile", "τ", tmp_path / "none", protocol="val_labelled") == []


def _compose(experiment: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=[f"experiment={experiment}", "paths.output=/tmp/unused"])


@pytest.mark.parametrize(
    ("experiment", "parameter", "values", "layout"),
    [
        ("sensitivity_tau", "tau_percentile", [60, 70, 80, 90, 100], "default"),
        ("sensitivity_radius", "radius", [10.0, 15.0, 20.0, 25.0], "-spat"),
    ],
)
def test_sweep_experiments_compose_with_the_expected_values(experiment, parameter, values, layout) -> None:
    cfg = _compose(experiment)
    assert cfg.experiment.name == experiment and cfg.experiment.sweep.parameter == f"params.{parameter}"
    assert list(cfg.experiment.modalities) == ["flair", "t1"]
    specs = method_specs(cfg)
    assert [s.params[parameter] for s in specs] == values
    assert all(s.name == "itermask2" and s.params["layout"] == layout for s in specs)
    assert len({s.row_label for s in specs}) == len(values)  # distinct row labels
    if parameter == "radius":
        assert all(s.params["radius_reference_size"] == 128 for s in specs)
    # the τ sweep trains once per modality; each radius trains its own f1
    context = MethodContext("flair", 64, torch.device("cpu"), 0)
    identities = {
        repr(
            create_method(
                s.name,
                context,
                **(
                    s.params
                    | {
                        "net": {
                            "base_channels": 4,
                            "channel_mult": [1],
                            "num_res_blocks": 1,
                            "attention_downsample": [],
                        }
                    }
                ),
            ).training_identity()
        )
        for s in specs
    }
    assert len(identities) == (1 if parameter == "tau_percentile" else len(values))
