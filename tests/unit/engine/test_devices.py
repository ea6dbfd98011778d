"""The warning for an NVIDIA GPU that torch cannot use."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hark_serving.engine.devices import TorchCuda, cuda_unusable, nvidia_present


def test_a_driver_is_found_by_its_files_or_nvidia_smi(tmp_path: Path) -> None:
    marker = tmp_path / "nvidia0"
    assert not nvidia_present([str(marker)], which=lambda _: None)
    marker.touch()
    assert nvidia_present([str(marker)], which=lambda _: None)
    assert nvidia_present([str(tmp_path / "absent")], which=lambda name: f"/usr/bin/{name}")


def test_a_cpu_only_torch_next_to_a_gpu_is_named_with_the_cuda_install() -> None:
    warning = cuda_unusable(True, TorchCuda("2.11.0+cpu", None, False))
    assert warning is not None
    assert "CPU-only build" in warning
    assert "pip install torch==2.11.0 torchaudio==2.11.0 --index-url" in warning


def test_a_cuda_torch_that_cannot_reach_the_gpu_points_at_the_driver() -> None:
    warning = cuda_unusable(True, TorchCuda("2.11.0+cu128", "12.8", False))
    assert warning is not None and "update the NVIDIA driver" in warning and "12.8" in warning


@pytest.mark.parametrize(
    "gpu, cuda",
    [
        (False, TorchCuda("2.11.0+cpu", None, False)),  # no GPU: nothing to say
        (True, TorchCuda("2.11.0+cu128", "12.8", True)),  # the GPU works
    ],
)
def test_no_warning_when_nothing_is_lost(gpu: bool, cuda: TorchCuda) -> None:
    assert cuda_unusable(gpu, cuda) is None


def test_the_engine_logs_it_once_when_choosing_the_device(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from hark_serving.engine import devices, sensevoice

    # A driver file that exists on any machine, so the probe finds "a GPU".
    monkeypatch.setattr(devices, "NVIDIA_MARKERS", (__file__,))
    caplog.set_level(logging.WARNING, logger="hark_serving.engine.sensevoice")
    usable = torch.cuda.is_available()
    assert sensevoice.resolve_device("auto") == ("cuda" if usable else "cpu")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == (0 if usable else 1)
    assert all("an NVIDIA GPU is present but torch" in w for w in warnings)
    caplog.clear()
    assert sensevoice.resolve_device("cpu") == "cpu"  # asked for on purpose: no warning
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
