"""Facts about this machine's CPU, read without torch: its usable cores and int8 instructions."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def default_threads() -> int:
    """The CPUs this process may run on (its affinity), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cpu_computes_int8(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """Whether this CPU has the vector int8 instructions both runtimes' int8 kernels need.

    x86: AVX2 (without it, int8 falls back to scalar code and is slower than
    float32). ARM: always (NEON). Read from /proc/cpuinfo, so no torch import.
    """
    arch = (machine or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return True
    if arch not in ("x86_64", "amd64"):
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return "avx2" in flags.split()
