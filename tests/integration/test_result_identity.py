"""Every table entry is exactly one configuration, end to end: two budgets in one folder, the per-image table,
data edited in place, a Hydra multirun over a parameter, retrain=true."""

from __future__ import annotations

import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from benchmark.runner import run_experiment, run_experiment_cells
from reports.report import write_report
from tests.tiny_config import REPO, TINY_METHODS, tiny_ae


# ------------------------------------------------------------------------------------------------ end to end
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
    table = pd.read_csv(
        write_report(store, tmp_path / "r", cells=after).parent / "table__synthetic-brats__oracle_global.csv",
        index_col="method",
    )
    assert list(table.index) == ["AE"]  # only the current data's row
    assert table.loc["AE", "flair DSC"] == pytest.approx(new.loc["oracle_global", "dice"], abs=5e-5)

    caplog.set_level("INFO", logger="benchmark")
    store, again = run_experiment_cells(tiny_ae(tmp_path, shared_data_dir, *overrides, "retrain=true"))
    assert again == after
    assert any("retrain=true: re-running finished cell" in r.message for r in caplog.records)
    assert not store.rows().set_index("cell").loc[after[0]].iloc[0]["checkpoint_reused"]


def test_multirun_over_a_method_parameter_gives_one_labelled_row_per_value(tmp_path, shared_data_dir) -> None:
    out = tmp_path / "out"
    tiny = [f"methods.itermask2.{o}" for o in TINY_METHODS["itermask2"]]
    command = [
        sys.executable,
        "-m",
        "benchmark",
        "-m",
        f"paths.output={out}",
        f"paths.data={shared_data_dir}",
        f"paths.cache={shared_data_dir / 'slice_cache'}",
        "progress=false",
        "bootstrap_samples=20",
        "dataset.synthetic.n_subjects=6",
        "dataset.image_size=32",
        "dataset.split_fractions=[0.5,0.17,0.33]",
        "experiment.only_methods=[itermask2]",
        "experiment.modalities=[flair]",
        "experiment.protocols=[oracle_global]",
        "diagnostic_slices=0",
        "methods.itermask2.train.steps=2",
        "methods.itermask2.train.val_every=2",
        *tiny,
        "methods.itermask2.params.tau_percentile=60,90",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "reports", str(out / "default")], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert report.returncode == 0, report.stderr[-3000:]
    table = pd.read_csv(out / "default" / "report" / "table__synthetic-brats__oracle_global.csv", index_col="method")
    assert sorted(table.index) == ["IterMask² (param.tau_percentile=60)", "IterMask² (param.tau_percentile=90)"]
    rows = pd.concat(pd.read_json(p) for p in (out / "default" / "results" / "rows").glob("*.json"))
    by_tau = rows.set_index("param.tau_percentile")["dice"]
    for tau in (60, 90):
        assert table.loc[f"IterMask² (param.tau_percentile={tau})", "flair DSC"] == pytest.approx(
            by_tau.loc[tau], abs=5e-5
        )
