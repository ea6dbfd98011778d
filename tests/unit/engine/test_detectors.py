"""Speech detectors: agreement with funasr's own VAD adapters, and the --vad fsmn path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hark_serving.engine.audio import decode_audio
from hark_serving.engine.vad import FsmnDetector, Region, SileroDetector, WholeFileDetector
from tests.fixtures.fsmn_vad_model import build_fsmn_vad_dir


def funasr_vad(model: str, samples: Any, **kwargs: Any) -> list[Region]:
    from funasr import AutoModel

    vad = AutoModel(model=model, disable_update=True, disable_pbar=True, disable_log=True, **kwargs)
    return [Region(a, b) for a, b in vad.generate(input=samples)[0]["value"]]


def test_one_silero_detector_serves_threads_at_once(audio_dir: Path) -> None:
    """One ONNX session for every thread: each call keeps its own recurrent state."""
    from concurrent.futures import ThreadPoolExecutor

    files = ["speech_en_16k.wav", "speech_zh_16k.wav", "silence_10s.wav"] * 4
    waves = {}
    for name in set(files):
        with decode_audio(audio_dir / name) as decoded:
            waves[name] = decoded.channels[0].copy()
    alone = {name: SileroDetector().detect(wave) for name, wave in waves.items()}
    shared = SileroDetector()
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda name: shared.detect(waves[name]), files))
    assert together == [alone[name] for name in files]
    assert alone["speech_en_16k.wav"] and alone["silence_10s.wav"] == []


@pytest.fixture(scope="module")
def fsmn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fsmn_vad_dir(tmp_path_factory.mktemp("fsmn-vad"))


@pytest.mark.parametrize("name", ["speech_en_16k.wav", "speech_zh_16k.wav", "silence_10s.wav"])
# funasr's adapter loads the TorchScript model each time; the warning is the package's.
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_silero_regions_equal_funasrs_silero_adapter(name: str, audio_dir: Path) -> None:
    with decode_audio(audio_dir / name) as decoded:
        samples = decoded.channels[0]
        ours = SileroDetector().detect(samples)
        assert ours == funasr_vad("silero-vad", samples)
        if name.startswith("silence"):
            assert ours == []
        else:
            assert ours and all(0 <= r.start_ms < r.end_ms <= len(samples) / 16 for r in ours)


def test_fsmn_regions_equal_funasrs_fsmn_vad(fsmn_dir: Path, audio_dir: Path) -> None:
    with decode_audio(audio_dir / "speech_en_16k.wav") as decoded:
        samples = decoded.channels[0]
        ours = FsmnDetector(fsmn_dir).detect(samples)
        assert ours == funasr_vad(str(fsmn_dir), samples, max_single_segment_time=30000)
        assert ours and ours[-1].end_ms <= len(samples) / 16


def test_no_vad_is_one_region_of_the_whole_file() -> None:
    import numpy as np

    assert WholeFileDetector().detect(np.zeros(16000 * 3, np.float32)) == [Region(0, 3000)]
    assert WholeFileDetector().detect(np.zeros(0, np.float32)) == []


def test_the_cli_runs_with_the_fsmn_detector_from_a_local_directory(
    fsmn_dir: Path,
    tiny_model_dir: Path,
    audio_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from typer.testing import CliRunner

    from hark_serving.cli.main import app

    monkeypatch.setenv("HARK_VAD_MODEL", str(fsmn_dir))
    result = CliRunner().invoke(
        app,
        ["transcribe", str(audio_dir / "speech_ko_16k.wav"), "--out", str(tmp_path), "--vad", "fsmn",
         "--model", str(tiny_model_dir), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "speech_ko_16k.wav.json").read_text())
    assert doc["segments"], "the random FSMN marks the file as speech"
