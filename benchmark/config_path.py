"""Where the Hydra configs live, for every command-line entry point (``@hydra.main``) to resolve them one way.

An installed wheel ships the repository's top-level ``configs/`` inside the package, as ``benchmark/configs``
(``pyproject.toml`` maps it there); a source checkout or an editable install has no such folder and reads the
checkout's ``configs/`` beside the packages. The packaged copy is looked for first, so that an unrelated
``site-packages/configs`` folder of another distribution is never taken for ours.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
#: Installed wheel first, then the source checkout.
CANDIDATES = (_PACKAGE / "configs", _PACKAGE.parent / "configs")


def find_config_dir(candidates: tuple[Path, ...] = CANDIDATES) -> Path:
    """The first of ``candidates`` that holds ``config.yaml``; a clear error naming them all when none does."""
    for candidate in candidates:
        if (candidate / "config.yaml").is_file():
            return candidate
    tried = ", ".join(str(c / "config.yaml") for c in candidates)
    raise FileNotFoundError(
        f"brain-uas-bench: no Hydra configuration found (looked for {tried}); "
        "reinstall the package (pip install brain-uas-bench / pip install -e .) or run from a full checkout"
    )


#: Absolute path of the configuration folder, as ``@hydra.main(config_path=...)`` takes it.
CONFIG_DIR = str(find_config_dir())
