"""The heap setting: with it, blocks freed at the end of a step are reused without page faults."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

import benchmark.heap

# Steps like a training step's: sixteen 4 MiB blocks written and all freed at the end; prints the minor page faults
# of ten steps after two warm-up steps. Runs in a fresh interpreter without torch (the setting is process-wide).
STEPS = """
import ctypes, importlib.util, resource, sys
if sys.argv[1] == "keep":
    spec = importlib.util.spec_from_file_location("heap", sys.argv[2])
    heap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(heap)
    assert heap.keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def step():
    blocks = [libc.malloc(4 << 20) for _ in range(16)]
    for block in blocks:
        ctypes.memset(block, 1, 4 << 20)
    for block in blocks:
        libc.free(block)
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

PAGES_PER_STEP = 16 * (4 << 20) // 4096


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", STEPS, mode, benchmark.heap.__file__], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting applies to glibc's malloc only")
def test_freed_blocks_are_reused_without_page_faults() -> None:
    default, kept = _faults("default"), _faults("keep")
    assert default > 5 * PAGES_PER_STEP  # glibc's defaults hand the pages back and fault them in again every step
    assert kept < PAGES_PER_STEP / 10  # ten steps take fewer faults than a tenth of one step's pages


def test_elsewhere_than_glibc_nothing_is_set(monkeypatch) -> None:
    monkeypatch.setattr(benchmark.heap.platform, "libc_ver", lambda: ("", ""))
    assert benchmark.heap.keep_freed_memory() is False
