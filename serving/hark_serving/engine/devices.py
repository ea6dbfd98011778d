"""Is there an NVIDIA GPU that torch cannot use? One plain decision, probed at the edge.

A CPU-only torch build (the small download), or a driver older than the CUDA
that torch was built for, runs everything on the CPU without a word: many
times slower than the GPU the machine has. Hark says so once, with the fix.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# What the NVIDIA kernel driver and its tools leave on a machine with a GPU.
NVIDIA_MARKERS: tuple[str, ...] = ("/proc/driver/nvidia/version", "/dev/nvidia0")
CUDA_WHEELS = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class TorchCuda:
    """What torch reports about CUDA (plain values, so the decision is testable)."""

    version: str  # torch.__version__
    cuda_build: str | None  # torch.version.cuda: None for a CPU-only build
    available: bool  # torch.cuda.is_available()


def nvidia_present(
    markers: Sequence[str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> bool:
    """An NVIDIA driver is installed: its device files, or `nvidia-smi` on PATH."""
    found = any(Path(m).exists() for m in (NVIDIA_MARKERS if markers is None else markers))
    return found or which("nvidia-smi") is not None


def cuda_unusable(gpu_present: bool, torch_cuda: TorchCuda) -> str | None:
    """The warning to log when this machine has an NVIDIA GPU that torch cannot use."""
    if not gpu_present or torch_cuda.available:
        return None
    release = torch_cuda.version.split("+", 1)[0]
    if torch_cuda.cuda_build is None:
        return (
            f"an NVIDIA GPU is present but torch {torch_cuda.version} is a CPU-only build, so "
            f"Hark runs on the CPU; install a CUDA build: pip install torch=={release} "
            f"torchaudio=={release} --index-url {CUDA_WHEELS}/cu128 (pick the CUDA your "
            "driver supports, see `nvidia-smi`)"
        )
    return (
        f"an NVIDIA GPU is present but torch {torch_cuda.version} (CUDA {torch_cuda.cuda_build}) "
        "cannot use it, so Hark runs on the CPU; the driver is probably older than CUDA "
        f"{torch_cuda.cuda_build}: update the NVIDIA driver, or install a torch built for the "
        "CUDA version `nvidia-smi` shows"
    )


def torch_cuda() -> TorchCuda:
    """torch's own report (imports torch)."""
    import torch

    return TorchCuda(torch.__version__, torch.version.cuda, torch.cuda.is_available())
