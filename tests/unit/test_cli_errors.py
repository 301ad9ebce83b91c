"""Expected failures of the command-line entry points read as one line (what, where, what was expected) with a
non-zero exit and no Python traceback; ``HYDRA_FULL_ERROR=1`` keeps the traceback (benchmark/cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmark.cli import EXIT_INTERRUPTED, EXIT_USER_ERROR, one_line_errors
from benchmark.config import ConfigError
from datasets.errors import DatasetError
from tests.tiny_config import REPO


# ------------------------------------------------------------------------------------------------ in process
@pytest.mark.parametrize("error", [ConfigError("seeds=[]; expected a list"), DatasetError("root /x does not exist")])
def test_an_expected_failure_becomes_one_stderr_line_and_status_2(error, capsys, monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info, one_line_errors():
        raise error
    assert info.value.code == EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == f"error: {error}\n"


def test_ctrl_c_becomes_one_line_and_status_130(capsys, monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as info, one_line_errors():
        raise KeyboardInterrupt
    assert info.value.code == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err.startswith("interrupted: finished work is kept")


def test_bugs_and_full_error_requests_keep_the_exception(monkeypatch) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(ZeroDivisionError), one_line_errors():  # not an expected failure: a bug, with traceback
        _ = 1 / 0
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(ConfigError), one_line_errors():
        raise ConfigError("x")
    with pytest.raises(KeyboardInterrupt), one_line_errors():
        raise KeyboardInterrupt


# ------------------------------------------------------------------------------------------------ subprocesses
def _cli(tmp_path: Path, *args: str, module: str = "benchmark") -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` with outputs and data in ``tmp_path``; asserts no traceback and that no data
    were generated (every case fails before any work)."""
    paths = [f"paths.output={tmp_path}/out", f"paths.data={tmp_path}/data"]
    done = subprocess.run(
        [sys.executable, "-m", module, *paths, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"HYDRA_FULL_ERROR": "0"},
    )
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "data").exists()
    return done


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    return done.stderr.strip().splitlines()[-1]


def test_cli_unknown_method(tmp_path) -> None:
    line = _last_line(_cli(tmp_path, "methods.ae.name=aee"))
    assert line.startswith("error: methods.ae.name: unknown method 'aee'; registered methods: ")
    assert "ae, " in line


def test_cli_modality_not_in_the_dataset(tmp_path) -> None:
    done = _cli(tmp_path, "dataset=atlas", f"dataset.root={tmp_path}", "experiment.modalities=[flair]")
    assert _last_line(done) == (
        "error: experiment.modalities=['flair']: ['flair'] not in dataset 'atlas' (dataset.modalities=['t1']); "
        "expected a subset, e.g. experiment.modalities=[t1]"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_cuda_without_a_cuda_device(tmp_path) -> None:
    line = _last_line(_cli(tmp_path, "device=cuda"))
    assert line.startswith(f"error: device=cuda: torch {torch.__version__} sees no CUDA device")
    assert "use device=cpu or device=auto" in line


def test_diagnose_cli_bad_dataset_root(tmp_path) -> None:
    done = _cli(tmp_path, "dataset=isles", f"dataset.root={tmp_path}/missing", module="benchmark.diagnose")
    assert _last_line(done).startswith(f"error: dataset root {tmp_path}/missing does not exist; expected ")


def test_cli_unknown_dataset_option_is_hydras_short_message(tmp_path) -> None:
    done = _cli(tmp_path, "dataset=bratz")
    assert done.returncode != 0
    assert "Could not find 'dataset/bratz'" in done.stderr
    assert "Available options in 'dataset':" in done.stderr and "\tbrats\n" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."
    )
