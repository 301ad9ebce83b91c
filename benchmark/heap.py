"""Freed memory kept in the process heap (glibc malloc), so that a training step does not page-fault its
activations in again every step.

glibc gives the free top of its heap back to the kernel once it exceeds the trim threshold, and serves blocks
above the mmap threshold with fresh mappings that it unmaps on free; both thresholds start small and adapt
(mmap: the largest mapped block freed so far, up to 32 MiB; trim: twice that). A training step allocates its
activations during the forward pass and frees them at the end of the backward pass, so the free top exceeds the
trim threshold every step: glibc returns the pages, and the next step takes a minor fault (and a kernel
zero-fill) for every 4 KiB page again. Measured on the default run's AE (batch 32, 1 thread): 15,000-24,000
faults and 133-147 ms a training step with glibc's defaults, under 700 faults and 111-114 ms with the thresholds
fixed as below.

The cost: the process keeps its peak heap (it does not shrink after a large step); blocks above 32 MiB are still
mapped and unmapped per allocation. Only the thresholds change, never a computed value. Elsewhere than glibc
(macOS, musl) :func:`keep_freed_memory` does nothing.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest allowed mmap threshold on 64-bit systems
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds (module docstring) for this process; setting them also stops their
    adaptation. Returns whether they were set (False where the C library is not glibc)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the symbols of the running process, its C library's included
    mmap_set = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    trim_set = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return mmap_set and trim_set
