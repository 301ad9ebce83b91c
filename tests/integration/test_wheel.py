"""The wheel is a working install: built from a copy of the checkout offline (the venv's setuptools, no build
isolation), installed without dependencies into a fresh venv outside the repository, it holds every module and
config file of the checkout and runs the tiny experiment with ``uas-bench`` from a temporary folder.

The fresh venv reaches the dependencies through a ``.pth`` line naming this interpreter's site-packages. Such a
line only adds the folder to ``sys.path``: the ``.pth`` files inside it, among them the editable install's
finder of this checkout, are not run, and the new venv's own site-packages (the wheel) comes first; the test
checks that ``benchmark`` is imported from there and that Hydra read the packaged configs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

from tests.conftest import TINY_SYNTHETIC_SUBJECTS
from tests.tiny_config import REPO, TINY_METHODS

PACKAGES = ("benchmark", "methods", "datasets", "reports")
#: What the build reads from the checkout (a copy keeps build/ and *.egg-info out of the working tree).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "configs", *PACKAGES)
#: The AE on FLAIR for 2 steps, one protocol: the smallest run that trains, predicts, evaluates and reports.
TINY_RUN = (
    "bootstrap_samples=50",
    f"dataset.synthetic.n_subjects={TINY_SYNTHETIC_SUBJECTS}",
    "dataset.image_size=32",
    "dataset.split_fractions=[0.5,0.17,0.33]",
    "progress=false",
    "++diagnostic_slices=0",
    "experiment.only_methods=[ae]",
    "experiment.modalities=[flair]",
    "experiment.protocols=[oracle_global]",
    "methods.ae.train.steps=2",
    "methods.ae.train.val_every=2",
    *(f"methods.ae.{o}" for o in TINY_METHODS["ae"]),
)


def run(command: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``command`` without the checkout on ``PYTHONPATH``; its output in the assertion message if it fails."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the checkout, built offline with this venv's setuptools."""
    installed = metadata.version("setuptools")
    assert int(installed.split(".")[0]) >= 77, f"setuptools {installed} here; building needs >= 77 (the test extra)"
    src = tmp_path / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    dist = tmp_path / "dist"
    pip_wheel = ["pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(src)]
    run([sys.executable, "-m", *pip_wheel], cwd=tmp_path)
    (wheel,) = dist.glob("brain_uas_bench-*.whl")
    return wheel


def fresh_venv(root: Path) -> Path:
    """A venv without pip whose ``.pth`` reaches this interpreter's dependencies; its python."""
    run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root.parent)
    python = root / "bin" / "python"
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root)
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site.stdout.strip()) / "_uas_bench_test_deps.pth").write_text("".join(f"{p}\n" for p in deps))
    return python


def test_wheel_holds_every_module_and_config_and_runs_the_tiny_experiment(tmp_path, shared_data_dir) -> None:
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    configs = {f"benchmark/{p.relative_to(REPO).as_posix()}" for p in (REPO / "configs").rglob("*.yaml")}
    assert modules - names == set(), "modules of the checkout missing from the wheel"
    assert configs - names == set(), "configs of the checkout missing from the wheel"
    assert "benchmark/configs/config.yaml" in configs

    python = fresh_venv(tmp_path / "venv")
    base_pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    run([*base_pip, str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = "import benchmark, benchmark.config_path as c; print(benchmark.__file__); print(c.CONFIG_DIR)"
    module_file, config_dir = run([str(python), "-c", probe], cwd=elsewhere).stdout.split()
    site = tmp_path / "venv" / "lib"
    assert Path(module_file).is_relative_to(site), f"benchmark imported from {module_file}, not the wheel"
    assert Path(config_dir).is_relative_to(site) and Path(config_dir).name == "configs"

    out = tmp_path / "out"
    data = [f"paths.data={shared_data_dir}", f"paths.cache={shared_data_dir / 'slice_cache'}"]
    run([str(python.parent / "uas-bench"), f"paths.output={out}", *data, *TINY_RUN], cwd=elsewhere, timeout=300)
    report = out / "default" / "report" / "report.md"
    assert report.is_file() and "| AE" in report.read_text()
    (row_file,) = (out / "default" / "results" / "rows").glob("*.json")
    (row,) = json.loads(row_file.read_text())
    assert (row["method_label"], row["protocol"], row["train_steps"]) == ("AE", "oracle_global", 2)
    assert 0.0 <= row["dice"] <= 1.0
    (hydra_yaml,) = (out / "default" / "hydra").glob("*/.hydra/hydra.yaml")
    assert f"path: {config_dir}\n" in hydra_yaml.read_text()  # Hydra's primary config source: the packaged copy
