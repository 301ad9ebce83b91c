"""The name clash with Hugging Face `datasets` fails at once with an explanation."""

import subprocess
import sys
from pathlib import Path

from tests.tiny_config import REPO


def test_foreign_datasets_package_is_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "datasets"
    fake.mkdir()
    (fake / "__init__.py").write_text("# stands in for Hugging Face datasets\n")
    result = subprocess.run(
        [sys.executable, "-c", "import benchmark"],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DatasetsPackageClash" in result.stderr
    assert str(fake) in result.stderr and "Hugging Face" in result.stderr


def test_our_datasets_package_passes() -> None:
    import datasets
    from methods._guard import check_datasets_package

    check_datasets_package()
    assert Path(datasets.__file__).parent == REPO / "datasets"
