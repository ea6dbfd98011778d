"""A loaded tiny model and the funasr reference, once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hark_serving.engine.embedded import Engine, EngineSettings
from hark_serving.engine.sensevoice import SenseVoice
from hark_serving.engine.vad import SileroDetector


@pytest.fixture(scope="session")
def recognizer(tiny_model_dir: Path) -> SenseVoice:
    """The exact float32 model: what is compared with funasr's own output."""
    return SenseVoice(tiny_model_dir, device="cpu", precision="float32")


@pytest.fixture(scope="session")
def funasr_reference(tiny_model_dir: Path) -> Any:
    """The published way to run the model: what Hark's output must equal."""
    from funasr import AutoModel

    return AutoModel(
        model=str(tiny_model_dir),
        frontend_conf={"dither": 0.0},
        device="cpu",
        disable_update=True,
        disable_pbar=True,
        disable_log=True,
    )


@pytest.fixture
def engine(recognizer: SenseVoice) -> Engine:
    return Engine(recognizer, SileroDetector(), EngineSettings())


@pytest.fixture(scope="module")
def engine_module(recognizer: SenseVoice) -> Engine:
    """One engine for a module's tests that share a transcript."""
    return Engine(recognizer, SileroDetector(), EngineSettings())
