"""Configurations are checked before any work and every configuration gets its own identity: flattened configs,
labels per configuration, unknown parameters, sweep expansion, nonsense configurations, one-line CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

import benchmark.runner as runner
from benchmark.config import ConfigError, dataset_config, method_specs, validate_config
from benchmark.runner import run_experiment
from benchmark.schema import flatten_config
from methods import MethodContext, create_method
from methods.base import UnknownParameterError
from reports.labels import configuration_labels
from tests.tiny_config import CONFIG_DIR, REPO, compose_tiny, tiny_ae


# ------------------------------------------------------------------------------------------------ units
def test_flatten_config_gives_one_scalar_column_per_leaf() -> None:
    flat = flatten_config(
        {"name": "x", "params": {"a": 1, "oracle": {"enabled": True, "fractions": [0.6, 0.4]}}, "train": {"steps": 5}}
    )
    assert flat == {"param.a": 1, "param.oracle.enabled": True, "param.oracle.fractions": "[0.6,0.4]", "train.steps": 5}


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
    with pytest.raises(
        ConfigError,
        match=r"methods\.ae\.params: unknown parameter\(s\) medain of method 'ae'; "
        r"accepted: .*median",
    ):
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
    bad = compose_tiny(
        tmp_path, shared_data_dir, "experiment.sweep={method: ae, parameter: params.medain, values: [3]}"
    )
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
    "results_lock=nfs": r"results_lock='nfs'; expected hard or soft",
    "device=gpu": r"device='gpu'; expected cpu, cuda, cuda:N or auto",
    "compute.precision=fp16": r"compute\.precision='fp16'; expected one of fp32, bf16",
    "+compute.amp=true": r"compute: unknown key\(s\) \['amp'\]",
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
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"HYDRA_FULL_ERROR": "0"},
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: seeds=[]; expected a non-empty list")
    assert not (tmp_path / "data").exists()  # nothing generated


def test_multirun_job_folder_names_stay_short_unique_and_flat() -> None:
    from benchmark.hydra_resolvers import MAX_DIRNAME, job_dirname

    assert job_dirname("a=1,b=2") == "a=1,b=2"
    assert job_dirname("root=/data/x") == "root=_data_x"
    long_a, long_b = "x=" + "1" * 300, "x=" + "1" * 299 + "2"
    assert len(job_dirname(long_a)) == MAX_DIRNAME and job_dirname(long_a) != job_dirname(long_b)
    assert job_dirname(long_a).startswith("x=111")


@pytest.mark.parametrize(("experiment", "title"), [
    ("default", "Comparison of every method on brats"),
    ("table3", "Table 3: ablation of IterMask² (frequency guidance, spatial refinement) on brats"),
])  # fmt: skip
def test_report_titles_name_the_dataset_they_ran_on(experiment: str, title: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}", "dataset=brats",
                                                       "dataset.root=/data/BraTS2021"])  # fmt: skip
    assert cfg.experiment.title == title


@pytest.mark.parametrize(
    ("dataset", "extra", "tau"),
    [
        ("atlas", [], 70),  # the paper's ATLAS setting, from configs/dataset/atlas.yaml
        ("isles", [], 80),
        ("brats", [], 80),
        ("atlas", ["methods.itermask2.params.tau_percentile=90"], 90),  # the user's override wins
    ],
)
def test_a_dataset_sets_method_defaults_like_the_papers_atlas_tau(dataset: str, extra: list[str], tau: int) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=table2", f"dataset={dataset}", "dataset.root=/data/x", *extra],
        )
    specs = {s.key: s for s in method_specs(cfg)}
    assert specs["itermask2"].params["tau_percentile"] == tau
    assert "tau_percentile" not in specs["dae_pos"].params  # other methods untouched


@pytest.mark.parametrize(
    ("overrides", "orientation", "label_map"),
    [
        ([], "reorient", None),  # the defaults declared in configs/dataset/brats.yaml
        (["dataset.orientation=error", "dataset.label_map={1: 1, 2: 0, 4: 1}"], "error", ((1, 1), (2, 0), (4, 1))),
        (["dataset.label_map={}"], "reorient", None),
    ],
)
def test_dataset_orientation_and_label_map_reach_the_dataset_config(overrides, orientation, label_map) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["dataset=brats", "dataset.root=/data/x", *overrides])
    config = dataset_config(cfg)
    assert (config.orientation, config.label_map) == (orientation, label_map)


def test_a_label_map_that_is_not_a_mapping_is_a_config_error() -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["dataset=isles", "dataset.root=/data/x", "dataset.label_map=4"])
    with pytest.raises(ConfigError, match=r"dataset\.label_map=4; expected a mapping \{raw label value: new value\}"):
        dataset_config(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_cuda_device_is_a_one_line_config_error(tmp_path, shared_data_dir, monkeypatch) -> None:
    monkeypatch.setattr(runner, "prepare_data", lambda cfg: pytest.fail("data prepared before the check"))
    with pytest.raises(ConfigError, match=r"device=cuda: torch .* sees no CUDA device .*use device=cpu"):
        run_experiment(tiny_ae(tmp_path, shared_data_dir, "device=cuda"))


def test_cli_prints_bad_data_as_one_line_without_traceback(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmark", "dataset=brats", f"dataset.root={tmp_path}/missing",
         f"paths.output={tmp_path}/out"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ | {"HYDRA_FULL_ERROR": "0"},
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: dataset root {tmp_path}/missing does not exist; expected the BraTS 2021 folder with subject "
        "folders <root>/BraTS2021_XXXXX/"
    )


def _composed(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize(("overrides", "modalities"), [
    ([], ["flair", "t1"]),  # the synthetic set has all four: the default stays FLAIR and T1
    (["dataset=atlas", "dataset.root=/data/x"], ["t1"]),  # ATLAS is T1 only
    (["experiment=table1", "dataset=atlas", "dataset.root=/data/x"], ["t1"]),
    (["experiment=table1", "dataset.modalities=[t2,flair]"], ["flair", "t2"]),  # the experiment's order
    (["dataset=atlas", "dataset.root=/data/x", "experiment.preferred_modalities=[t1,flair]"], ["t1"]),
])  # fmt: skip
def test_default_modalities_are_the_experiments_that_the_dataset_has(overrides, modalities, caplog) -> None:
    cfg = _composed(*overrides)
    with caplog.at_level("INFO", logger="benchmark.config"):
        validate_config(cfg)
    assert list(cfg.experiment.modalities) == modalities
    dropped = [m for m in cfg.experiment.preferred_modalities if m not in modalities]
    assert (f"has no {dropped}" in caplog.text) == bool(dropped)


def test_an_explicit_modality_the_dataset_lacks_is_a_one_line_error() -> None:
    cfg = _composed("dataset=atlas", "dataset.root=/data/x", "experiment.modalities=[flair]")
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert str(info.value) == (
        "experiment.modalities=['flair']: ['flair'] not in dataset 'atlas' (dataset.modalities=['t1']); "
        "expected a subset, e.g. experiment.modalities=[t1]"
    )
    with pytest.raises(
        ConfigError, match=r"^none of experiment\.preferred_modalities=\['flair'\] is in dataset 'atlas'"
    ):
        validate_config(_composed("experiment=table3", "dataset=atlas", "dataset.root=/data/x"))
