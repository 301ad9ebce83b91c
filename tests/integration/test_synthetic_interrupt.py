"""Interrupting the synthetic generator's worker pool (a subprocess running ``ensure_synthetic_dataset`` with two
spawned workers): Ctrl-C stops it at once and keeps the finished subjects; a SIGKILLed parent takes its workers
with it. Linux only: worker processes are found through ``/proc``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from datasets.synthetic import IN_PROGRESS, MARKER, RECORDS
from tests.tiny_config import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds worker processes in /proc")

N_SUBJECTS = 3  # two workers: when the first subject is finished, one more runs and one waits
GENERATE = f"""
import sys
from datasets.synthetic import SyntheticConfig, ensure_synthetic_dataset
try:
    ensure_synthetic_dataset(sys.argv[1], SyntheticConfig(n_subjects={N_SUBJECTS}, seed=1), workers=2, progress=False)
except KeyboardInterrupt:
    sys.exit(130)
"""
T = TypeVar("T")


def _start(root: Path) -> subprocess.Popen[bytes]:
    """The generator in its own session (process group), as a command started from a terminal is."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", GENERATE, str(root)], cwd=REPO, env=env, start_new_session=True)


def _wait_for(condition: Callable[[], T], seconds: float, what: str) -> T:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds} s")
        time.sleep(0.1)
    return value


def _stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: state, ppid, ... (empty once the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _workers(parent: int) -> list[int]:
    """The pool's worker processes of ``parent`` (multiprocessing spawn children; not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(parent)]:
            try:
                if b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    return _stat(pid)[:1] not in ([], ["Z"])  # a zombie has exited


def _stop(proc: subprocess.Popen[bytes], workers: list[int]) -> None:
    """Leave nothing running when a test fails."""
    for pid in [proc.pid, *workers]:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_ctrl_c_stops_the_workers_at_once_and_keeps_finished_subjects(tmp_path) -> None:
    root = tmp_path / "set"
    proc, workers = _start(root), []
    try:
        _wait_for(lambda: list((root / RECORDS).glob("*.json")), 120, "finished subject")
        workers = _workers(proc.pid)
        assert len(workers) == 2
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
        assert proc.wait(timeout=5) == 130  # measured: 0.2 s (it took ~73 s when the pool finished its queue)
        _wait_for(lambda: not any(map(_alive, workers)), 5, "exit of the workers")
    finally:
        _stop(proc, workers)
    records = sorted(p.name for p in (root / RECORDS).glob("*.json"))
    assert 1 <= len(records) < N_SUBJECTS  # the finished subjects are kept, the pending one never ran
    assert (root / IN_PROGRESS).exists() and not (root / MARKER).exists()  # resumable, not complete


def test_the_workers_of_a_killed_parent_exit(tmp_path) -> None:
    root = tmp_path / "set"
    proc, workers = _start(root), []
    try:
        _wait_for(lambda: list(root.glob("BraTS2021_*")), 120, "subject folder")  # the workers are writing
        workers = _workers(proc.pid)
        assert len(workers) == 2
        proc.kill()
        proc.wait(timeout=10)
        _wait_for(lambda: not any(map(_alive, workers)), 5, "exit of the orphaned workers")
    finally:
        _stop(proc, workers)


WATCHED = """
import os, subprocess, sys
child = (  # _watch_parent never returns: it ends the process when the parent is gone
    "import time; from datasets.synthetic import _watch_parent; print('ready', flush=True); "
    "_watch_parent(%d); time.sleep(60)"
)
watcher = subprocess.Popen([sys.executable, "-c", child % os.getpid()])
print(watcher.pid, flush=True)
watcher.wait()
"""


def test_the_portable_fallback_ends_a_worker_whose_parent_is_gone() -> None:
    """The watchdog used where Linux's parent-death signal is not available, run on its own."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", WATCHED], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    watcher = int(parent.stdout.readline())
    try:
        assert parent.stdout.readline().strip() == "ready"  # the watcher runs _watch_parent now
        time.sleep(1.0)  # two polls: it keeps running while its parent lives
        assert _alive(watcher)
        parent.kill()
        parent.wait(timeout=10)
        _wait_for(lambda: not _alive(watcher), 5, "exit of the watched process")
    finally:
        _stop(parent, [watcher])
