"""One error policy for every ``@hydra.main`` command (``python -m benchmark``, ``uas-bench``,
``python -m benchmark.diagnose``): an expected failure is reported in one line, not as a Python traceback.

A bad configuration (:class:`~benchmark.config.ConfigError`: unknown method, modality not in the dataset,
device=cuda without CUDA, ...) or bad data (:class:`~datasets.errors.DatasetError`) is the user's to fix, not a
bug: the command logs it, prints ``error: <message>`` on stderr and exits with status 2. Ctrl-C prints one line
and exits with status 130 (what shells report for SIGINT); finished work (cells, checkpoints, synthetic subjects)
is kept and a rerun resumes. ``HYDRA_FULL_ERROR=1`` re-raises instead, with the full traceback, as Hydra does
for its own composition errors (an unknown config group option or key), which it already reports in a few lines
without a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("benchmark")

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def full_error() -> bool:
    """Whether the user asked for tracebacks (``HYDRA_FULL_ERROR=1``, Hydra's own switch)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def expected_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean bad input, not a bug (imported on demand: ``benchmark.config`` imports
    torch, and ``--help`` should stay fast)."""
    from benchmark.config import ConfigError
    from datasets.errors import DatasetError

    return ConfigError, DatasetError


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Run a command's body; turn an expected failure or Ctrl-C into one line on stderr and a non-zero exit."""
    try:
        yield
    except KeyboardInterrupt:
        if full_error():
            raise
        log.warning("interrupted")
        print("interrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as error:
        if full_error() or not isinstance(error, expected_errors()):
            raise
        log.error("%s", error)
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
