"""Sweeps on a cluster, rehearsed on one machine: a two-job Hydra multirun through the real submitit launcher
(``hydra/launcher=submitit_local``: submitit's local executor, one process per job, as SLURM array tasks are)
into one output folder. Each cell must land in the shared results store exactly once and readable, and the
report built afterwards must show both (README "Parallel / cluster runs")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmark.runner import prepare_data
from benchmark.schema import stored_test_slab_of
from benchmark.store import ResultsStore
from reports.report import write_report
from tests.tiny_config import REPO, TINY_METHODS, compose_tiny, tiny_overrides

#: One cell per job: method key -> its row label in the rows and the report.
CELLS = {"ae": "AE", "dae_pos": "DAE [0,+inf]"}
PROTOCOLS = ("oracle_global", "val_fpr")
DONE_LINE = re.compile(r"\] - done \S+\s+flair\s+(.+?)\s+seed 0 \|")  # benchmark/runner.py's per-cell log line


def _budgets() -> list[str]:
    """Two training steps and the tiny networks of :data:`TINY_METHODS` for every swept method."""
    return [
        override
        for key in CELLS
        for override in (
            f"methods.{key}.train.steps=2",
            f"methods.{key}.train.val_every=2",
            *(f"methods.{key}.{o}" for o in TINY_METHODS[key]),
        )
    ]


def _snapshot(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time (ns): what a job that regenerates or re-caches the
    data would change."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _run(command: list[str], timeout: float) -> None:
    """``command`` with this interpreter's repository on the path and one torch thread per job (two jobs on two
    cores); fails with the end of its output."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = os.environ | {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def test_submitit_local_multirun_lands_each_cell_once_and_the_report_shows_both(tmp_path, shared_data_dir) -> None:
    out = tmp_path / "out"
    prepare_data(compose_tiny(out, shared_data_dir))  # data and slice cache built once, before the sweep
    data_before = _snapshot(shared_data_dir)
    sweep = ",".join(f"[{key}]" for key in CELLS)
    _run(
        [
            sys.executable,
            "-m",
            "benchmark",
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=3",  # a hung job is killed by submitit, not left polling
            *tiny_overrides(out, shared_data_dir),
            "report=false",
            "experiment.modalities=[flair]",
            f"experiment.protocols=[{','.join(PROTOCOLS)}]",
            "diagnostic_slices=0",
            *_budgets(),
            f"experiment.only_methods={sweep}",
        ],
        timeout=240,
    )
    assert _snapshot(shared_data_dir) == data_before  # the jobs read the pre-built data; neither rebuilt it

    (sweep_dir,) = (out / "multirun").iterdir()  # one sweep folder for both jobs
    assert len(list(sweep_dir.glob(".submitit/*/*_result.pkl"))) == 2  # both jobs ran through submitit
    job_logs = sorted(sweep_dir.glob("*/*.log"))  # Hydra's log of each job, in the job's own folder
    assert len(job_logs) == 2
    done = [DONE_LINE.findall(log.read_text()) for log in job_logs]
    assert sorted(label for labels in done for label in labels) == sorted(CELLS.values())  # each cell run once
    assert all(len(labels) == 1 for labels in done)  # ... by a job of its own

    store = ResultsStore(out / "default" / "results")
    records = [yaml.safe_load((job / "config.yaml").read_text()) for job in store.jobs()]
    assert sorted(r["experiment"]["only_methods"] for r in records) == [[key] for key in sorted(CELLS)]
    assert len({job.name.split("__")[2] for job in store.jobs()}) == 2  # two processes (pid in the name)

    rows = store.rows()
    assert len(store.cells()) == len(CELLS)
    assert sorted(rows.drop_duplicates("cell")["method_key"]) == sorted(CELLS)
    for cell, own in rows.groupby("cell"):
        assert sorted(own["protocol"]) == sorted(PROTOCOLS)  # one row per protocol
        assert (own["status"] == "ok").all()
        n_test = int(own["n_test_slices"].iloc[0])
        maps = store.arrays(str(cell))["anomaly_maps"]
        assert maps.shape == (n_test, 32, 32) and np.isfinite(maps).all()
        per_image = store.per_image([str(cell)])
        assert per_image.groupby("protocol").size().to_dict() == dict.fromkeys(PROTOCOLS, n_test)
        dice = per_image.groupby("protocol")["dice"].mean()
        for _, row in own.iterrows():
            assert dice[row["protocol"]] == pytest.approx(row["dice"], abs=1e-12)  # rows and records of one write
        slab_subjects = sorted(set(store.arrays(stored_test_slab_of(own.iloc[0]))["subjects"].tolist()))
        per_subject = store.per_subject([str(cell)])
        for protocol in PROTOCOLS:
            assert sorted(per_subject.loc[per_subject["protocol"] == protocol, "subject"]) == slab_subjects

    report = write_report(store, out / "default" / "report")  # what `python -m reports <run folder>` writes
    table = pd.read_csv(report.parent / "table__synthetic-brats__oracle_global.csv", index_col="method")
    assert sorted(table.index) == sorted(CELLS.values())
    headline = rows[rows["protocol"] == "oracle_global"].set_index("method_label")["dice"]
    for label in CELLS.values():
        assert table.loc[label, "flair DSC"] == pytest.approx(headline[label], abs=5e-5)
