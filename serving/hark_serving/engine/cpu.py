"""This machine's CPU, read without torch: its usable cores and int8 instructions; and
numpy's BLAS kept to one thread beside the model."""

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


def single_threaded_blas() -> None:
    """Keep numpy's BLAS (OpenBLAS in the wheels) to one thread, for the whole process.

    The ONNX Runtime path runs the numpy frontend on the model's own threads, one
    core each; its mel product is small. With a thread per core, OpenBLAS wakes
    its workers for that product, and they spin after it, taking cores from the
    model: a `hark transcribe` of the 645 s benchmark used 56.3-57.8 s of CPU so,
    47.2-49.6 s with one BLAS thread (as `OPENBLAS_NUM_THREADS=1` gives).
    torch's own thread pools are not numpy's BLAS and are left as they are.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
