"""Every table entry is exactly one configuration: flattened configs, labels per configuration, sweeps,
unknown parameters, configs validated before any work, the per-image table, and data in the identity."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from omegaconf import open_dict

import benchmark.runner as runner
from benchmark.config import ConfigError, method_specs, validate_config
from benchmark.runner import run_experiment, run_experiment_cells
from benchmark.schema import flatten_config
from methods import MethodContext, create_method
from methods.base import UnknownParameterError
from reports.labels import configuration_labels
from reports.report import write_report
from tests.test_experiments import TINY_METHODS
from tests.tiny_config import compose_tiny

REPO = Path(__file__).resolve().parent.parent
TINY_AE = (
    "experiment.only_methods=[ae]",
    "experiment.modalities=[flair]",
    "experiment.protocols=[oracle_global,val_fpr]",
    "methods.ae.train.batch_size=8",
    "methods.ae.train.val_every=2",
    *(f"methods.ae.{o}" for o in TINY_METHODS["ae"]),
)


def tiny_ae(out: Path, data_dir: Path, *extra: str):
    return compose_tiny(out, data_dir, *TINY_AE, *extra)


# ------------------------------------------------------------------------------------------------ units
def test_flatten_config_gives_one_scalar_column_per_leaf() -> None:
    flat = flatten_config(
        {"name": "x", "params": {"a": 1, "oracle": {"enabled": True, "fractions": [0.6, 0.4]}}, "train": {"steps": 5}}
    )
    assert flat == {"param.a": 1, "param.oracle.enabled": True, "param.oracle.fractions": "[0.6,0.4]",
                    "train.steps": 5}


def test_configuration_labels_name_what_differs_and_keep_single_configs() -> None:
    rows = pd.DataFrame(
        {
            "dataset": ["d"] * 5,
            "method_label": ["AE", "AE", "AE", "DAE", "DAE"],
            "config_hash": ["h1", "h1", "h2", "h3", "h3"],  # AE: two configs (2 seeds of h1); DAE: one
            "param.median": [5, 5, 5, 3, 3],
            "train.steps": [300, 300, 3000, 200, 200],
        }
    )
    labels = configuration_labels(rows).tolist()
    assert labels == ["AE (train.steps=300)", "AE (train.steps=300)", "AE (train.steps=3000)", "DAE", "DAE"]


def test_misspelt_method_parameter_fails_naming_it_and_the_accepted_names(tmp_path, shared_data_dir) -> None:
    context = MethodContext(modality="flair", image_size=32, device=__import__("torch").device("cpu"), seed=0)
    with pytest.raises(UnknownParameterError, match="medain") as info:
        create_method("ae", context, medain=3)
    assert "median" in str(info.value)
    cfg = tiny_ae(tmp_path, shared_data_dir, "+methods.ae.params.medain=3")
    with pytest.raises(ConfigError, match=r"methods\.ae\.params: unknown parameter\(s\) medain of method 'ae'; "
                                          r"accepted: .*median"):
        validate_config(cfg)


def test_method_entries_take_label_not_variant_and_must_be_distinct_configurations(tmp_path, shared_data_dir) -> None:
    leftover = tiny_ae(tmp_path, shared_data_dir, "+methods.ae.variant=default")
    with pytest.raises(ConfigError, match=r"methods\.ae: unknown key\(s\) variant; accepted: name, label, params"):
        method_specs(leftover)
    relabelled = tiny_ae(tmp_path, shared_data_dir)
    with open_dict(relabelled):  # the same configuration under a second key, with only another label
        relabelled.methods.ae2 = relabelled.methods.ae.copy()
        relabelled.methods.ae2.label = "AE twice"
    with pytest.raises(ConfigError, match=r"methods\.ae2 has the same name, params and train as methods\.ae"):
        method_specs(relabelled)
    specs = method_specs(tiny_ae(tmp_path, shared_data_dir, "methods.ae.label=My AE"))
    assert [s.row_label for s in specs] == ["My AE"] and "label" not in specs[0].as_dict()


def test_sweep_expands_one_entry_into_labelled_cells(tmp_path, shared_data_dir) -> None:
    cfg = compose_tiny(tmp_path, shared_data_dir, "experiment=sensitivity_tau")
    specs = method_specs(cfg)
    assert [s.key for s in specs] == [f"itermask2[params.tau_percentile={v}]" for v in (60, 70, 80, 90, 100)]
    assert [s.params["tau_percentile"] for s in specs] == [60, 70, 80, 90, 100]
    assert specs[0].row_label == "IterMask² (param.tau_percentile=60)"
    budget = compose_tiny(
        tmp_path, shared_data_dir, "experiment.sweep={method: ae, parameter: train.steps, values: [3, 7]}"
    )
    assert [s.budget.steps for s in method_specs(budget) if s.name == "ae"] == [3, 7]
    bad = compose_tiny(tmp_path, shared_data_dir, "experiment.sweep={method: ae, parameter: params.medain, values: [3]}")
    with pytest.raises(ConfigError, match="medain"):
        method_specs(bad)


NONSENSE = {
    "methods.ae.train.steps=0": r"methods\.ae\.train\.steps=0; expected an integer >= 1",
    "methods.ae.train.steps=-5": r"methods\.ae\.train\.steps=-5; expected an integer >= 1",
    "seeds=[]": r"seeds=\[\]; expected a non-empty list of integers",
    "methods.ae.name=aee": r"methods\.ae\.name: unknown method 'aee'",
    "experiment.modalities=[dwi]": r"\['dwi'\] not in dataset",
    "experiment.protocols=[oracle_globl]": r"unknown \['oracle_globl'\]",
    "eval_batch_size=0": r"eval_batch_size=0; expected an integer >= 1",
    "methods.ae.train.batch_size=0": r"methods\.ae\.train\.batch_size=0; expected an integer >= 1",
    "experiment.only_methods=[dae]": r"only_methods names \['dae'\]",
}


@pytest.mark.parametrize("override", list(NONSENSE))
def test_nonsense_configuration_fails_before_data_loading(override, tmp_path, shared_data_dir, monkeypatch) -> None:
    def no_data(cfg):
        raise AssertionError("data were prepared before the configuration was checked")

    monkeypatch.setattr(runner, "prepare_data", no_data)
    cfg = tiny_ae(tmp_path, shared_data_dir, override)
    with pytest.raises(ConfigError, match=NONSENSE[override]) as info:
        run_experiment(cfg)
    assert "\n" not in str(info.value)


def test_cli_prints_one_line_error_without_traceback(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "seeds=[]", f"paths.output={tmp_path}", f"paths.data={tmp_path}/data"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ | {"HYDRA_FULL_ERROR": "0"},
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: seeds=[]; expected a non-empty list")
    assert not (tmp_path / "data").exists()  # nothing generated


# ------------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_two_budgets_in_one_folder_are_two_rows_never_their_mean(tmp_path, shared_data_dir) -> None:
    first = tiny_ae(tmp_path, shared_data_dir, "methods.ae.train.steps=3")
    run_experiment(first)
    second = tiny_ae(tmp_path, shared_data_dir, "methods.ae.train.steps=5")
    store, cells = run_experiment_cells(second)
    rows = store.rows()
    ok = rows[rows["protocol"] == "oracle_global"].set_index("train.steps")["dice"]
    assert sorted(ok.index) == [3, 5]

    own = write_report(store, tmp_path / "own", second, cells=cells)
    own_table = pd.read_csv(own.parent / "table__synthetic-brats__oracle_global.csv", index_col="method")
    assert list(own_table.index) == ["AE"]
    assert own_table.loc["AE", "flair DSC"] == pytest.approx(ok.loc[5], abs=5e-5)
    assert "1 other cell(s)" in own.read_text()

    every = write_report(store, tmp_path / "all")  # python -m reports <dir>: every configuration
    table = pd.read_csv(every.parent / "table__synthetic-brats__oracle_global.csv", index_col="method")
    assert sorted(table.index) == ["AE (train.steps=3)", "AE (train.steps=5)"]
    assert table.loc["AE (train.steps=3)", "flair DSC"] == pytest.approx(ok.loc[3], abs=5e-5)
    assert table.loc["AE (train.steps=5)", "flair DSC"] == pytest.approx(ok.loc[5], abs=5e-5)


@pytest.mark.slow
def test_per_image_table_round_trips_to_the_table_values(tmp_path, shared_data_dir) -> None:
    cfg = tiny_ae(tmp_path, shared_data_dir, "methods.ae.train.steps=3", "experiment.modalities=[flair,t1]")
    store, cells = run_experiment_cells(cfg)
    report = write_report(store, tmp_path / "report", cfg, cells=cells)
    per_image = pd.read_parquet(report.parent / "per_image.parquet")
    assert pd.read_csv(report.parent / "per_image.csv").shape == per_image.shape
    rows = store.rows()
    assert set(per_image["cell"]) == set(rows["cell"])
    assert per_image.groupby(["cell", "protocol"]).size().nunique() == 1  # every test slice once per protocol
    means = per_image.groupby(["cell", "protocol"])[["dice", "sens", "prec"]].mean()
    for _, row in rows.iterrows():
        for metric in ("dice", "sens", "prec"):
            assert means.loc[(row["cell"], row["protocol"]), metric] == pytest.approx(row[metric], abs=1e-12)
    table = pd.read_csv(report.parent / "table__synthetic-brats__oracle_global.csv", index_col="method")
    flair = per_image[(per_image["modality"] == "flair") & (per_image["protocol"] == "oracle_global")]
    assert table.loc["AE", "flair DSC"] == pytest.approx(flair["dice"].mean(), abs=5e-5)
    assert set(per_image["size_bin"]) <= {"small", "medium", "large"}
    assert (per_image["lesion_pixels"] > 0).all()


@pytest.mark.slow
def test_data_edited_in_place_gives_new_cells_and_new_training(tmp_path, shared_data_dir, caplog) -> None:
    data = tmp_path / "data"
    first = tiny_ae(tmp_path / "warm", shared_data_dir, "methods.ae.train.steps=2")
    run_experiment(first)  # makes sure the session's synthetic set exists
    shutil.copytree(shared_data_dir / "synthetic_brats", data / "synthetic_brats")
    overrides = ("methods.ae.train.steps=3", f"paths.data={data}", f"paths.cache={data / 'cache'}")
    cfg = tiny_ae(tmp_path, shared_data_dir, *overrides)
    store, before = run_experiment_cells(cfg)
    old = store.rows().set_index("protocol")

    flair = next((data / "synthetic_brats").glob("*/*_flair.nii.gz"))
    image = nib.load(flair)
    volume = np.asarray(image.dataobj, dtype=np.float32)
    volume[volume > 0] *= 1.5  # a fix applied to one subject's file in place
    nib.save(nib.Nifti1Image(volume, image.affine, image.header), flair)

    store, after = run_experiment_cells(tiny_ae(tmp_path, shared_data_dir, *overrides))
    assert set(after).isdisjoint(before)  # new cells, the old rows are not reused ...
    new = store.rows()
    new = new[new["cell"].isin(after)].set_index("protocol")
    assert new.loc["oracle_global", "data_hash"] != old.loc["oracle_global", "data_hash"]
    assert not new.loc["oracle_global", "checkpoint_reused"]  # ... nor the checkpoint trained on the old data
    table = pd.read_csv(write_report(store, tmp_path / "r", cells=after).parent
                        / "table__synthetic-brats__oracle_global.csv", index_col="method")
    assert list(table.index) == ["AE"]  # only the current data's row
    assert table.loc["AE", "flair DSC"] == pytest.approx(new.loc["oracle_global", "dice"], abs=5e-5)

    caplog.set_level("INFO", logger="benchmark")
    store, again = run_experiment_cells(tiny_ae(tmp_path, shared_data_dir, *overrides, "retrain=true"))
    assert again == after
    assert any("retrain=true: re-running finished cell" in r.message for r in caplog.records)
    assert not store.rows().set_index("cell").loc[after[0]].iloc[0]["checkpoint_reused"]


@pytest.mark.slow
def test_multirun_over_a_method_parameter_gives_one_labelled_row_per_value(tmp_path, shared_data_dir) -> None:
    out = tmp_path / "out"
    tiny = [f"methods.itermask2.{o}" for o in TINY_METHODS["itermask2"]]
    command = [
        sys.executable, "-m", "benchmark", "-m", f"paths.output={out}", f"paths.data={shared_data_dir}",
        f"paths.cache={shared_data_dir / 'slice_cache'}", "progress=false", "bootstrap_samples=20",
        "dataset.synthetic.n_subjects=6", "dataset.image_size=32", "dataset.split_fractions=[0.5,0.17,0.33]",
        "experiment.only_methods=[itermask2]", "experiment.modalities=[flair]",
        "experiment.protocols=[oracle_global]", "diagnostic_slices=0", "methods.itermask2.train.steps=2",
        "methods.itermask2.train.val_every=2", *tiny, "methods.itermask2.params.tau_percentile=60,90",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "reports", str(out / "default")], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    table = pd.read_csv(out / "default" / "report" / "table__synthetic-brats__oracle_global.csv", index_col="method")
    assert sorted(table.index) == ["IterMask² (param.tau_percentile=60)", "IterMask² (param.tau_percentile=90)"]
    rows = pd.concat(pd.read_json(p) for p in (out / "default" / "results" / "rows").glob("*.json"))
    by_tau = rows.set_index("param.tau_percentile")["dice"]
    for tau in (60, 90):
        assert table.loc[f"IterMask² (param.tau_percentile={tau})", "flair DSC"] == pytest.approx(by_tau.loc[tau],
                                                                                                abs=5e-5)


def test_multirun_job_folder_names_stay_short_unique_and_flat() -> None:
    from benchmark.__main__ import MAX_DIRNAME, job_dirname

    assert job_dirname("a=1,b=2") == "a=1,b=2"
    assert job_dirname("root=/data/x") == "root=_data_x"
    long_a, long_b = "x=" + "1" * 300, "x=" + "1" * 299 + "2"
    assert len(job_dirname(long_a)) == MAX_DIRNAME and job_dirname(long_a) != job_dirname(long_b)
    assert job_dirname(long_a).startswith("x=111")
