"""Encoder precision: what each setting resolves to, and bfloat16 really running on CPU."""

from __future__ import annotations

import json
import logging
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hark_serving.cli.main import app
from hark_serving.engine import sensevoice
from hark_serving.engine.audio import decode_audio
from hark_serving.engine.recognition import DecodeRequest
from hark_serving.engine.sensevoice import SenseVoice, resolve_precision
from hark_serving.errors import ModelError
from hark_serving.transcript.schema import validate_result


@pytest.mark.parametrize(
    "precision, device, expected",
    [
        ("auto", "cuda", "float16"),
        ("auto", "cuda:1", "float16"),
        ("float32", "cuda", "float32"),
        ("bfloat16", "cuda", "bfloat16"),
        ("float32", "cpu", "float32"),
    ],
)
def test_each_setting_resolves_to_the_dtype_the_encoder_runs_in(
    precision: str, device: str, expected: str
) -> None:
    assert resolve_precision(precision, device) == expected


@pytest.mark.parametrize("fast, expected", [(True, "int8"), (False, "float32")])
def test_auto_on_a_cpu_is_int8_where_torch_computes_it_fast_else_float32(
    monkeypatch: pytest.MonkeyPatch, fast: bool, expected: str
) -> None:
    monkeypatch.setattr(sensevoice, "fast_int8", lambda: fast)
    assert resolve_precision("auto", "cpu") == expected


def test_this_x86_cpu_has_fast_int8() -> None:
    # CI's machine: x86-64 with AVX2, where FBGEMM runs int8 and auto means int8.
    assert torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    assert sensevoice.fast_int8() and resolve_precision("auto", "cpu") == "int8"


def test_auto_falls_back_to_float32_when_the_int8_check_refuses(
    tmp_path: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    speech_samples: np.ndarray,
) -> None:
    from hark_serving.engine import int8

    strict = int8.to_int8
    monkeypatch.setattr(int8, "to_int8", lambda *a, **k: strict(*a, **k, tolerance=0.0))
    monkeypatch.setattr(sensevoice, "fast_int8", lambda: True)
    with caplog.at_level(logging.WARNING, logger="hark_serving.engine.sensevoice"):
        model = SenseVoice(tiny_model_dir, device="cpu", cache=tmp_path / "cache")
    assert model.precision == model.info.dtype == "float32" and model.int8 is None
    assert "int8 weights disagree with float32" in caplog.text
    assert "precision auto loads the model in float32 instead" in caplog.text
    exact = SenseVoice(tiny_model_dir, device="cpu", precision="float32")
    request = [DecodeRequest(words=True)]
    assert model.recognize([speech_samples], request) == exact.recognize([speech_samples], request)
    # Asked for by name, int8 is refused instead.
    with pytest.raises(ModelError, match="int8 weights disagree with float32"):
        SenseVoice(tiny_model_dir, device="cpu", precision="int8", cache=tmp_path / "cache")


def test_float16_on_a_cpu_is_refused_with_the_settings_that_work() -> None:
    with pytest.raises(ModelError, match="float16 runs on CUDA only; on CPU use bfloat16"):
        resolve_precision("float16", "cpu")


def test_an_unknown_precision_is_named() -> None:
    with pytest.raises(ModelError, match="unknown precision 'int4'"):
        resolve_precision("int4", "cpu")


def test_bfloat16_on_a_cpu_without_it_in_hardware_warns_that_it_is_slower(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sensevoice, "native_bfloat16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="hark_serving.engine.sensevoice"):
        assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert "HARK_PRECISION=float32" in caplog.text


@pytest.fixture(scope="module")
def speech_samples(audio_dir: Path) -> np.ndarray:
    with decode_audio(audio_dir / "speech_en_16k.wav") as decoded:
        return np.ascontiguousarray(decoded.channels[0])


@pytest.fixture(scope="module")
def bf16_recognizer(tiny_model_dir: Path) -> SenseVoice:
    return SenseVoice(tiny_model_dir, device="cpu", precision="bfloat16")


def test_bfloat16_runs_the_encoder_in_bfloat16_and_still_transcribes(
    bf16_recognizer: SenseVoice, recognizer: SenseVoice, speech_samples: np.ndarray
) -> None:
    duration = len(speech_samples) / 16000
    seen: list[torch.dtype] = []
    layer = next(
        m for m in bf16_recognizer.model.encoder.modules() if isinstance(m, torch.nn.Linear)
    )
    hook = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    try:
        [got] = bf16_recognizer.recognize([speech_samples], [DecodeRequest(words=True)])
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert bf16_recognizer.info.dtype == "bfloat16"
    assert got.words and all(0 <= w.start <= w.end <= duration for w in got.words)
    # The weights stay float32: the same object serves float32 after a restart with no reload.
    assert {p.dtype for p in bf16_recognizer.model.parameters()} == {torch.float32}
    # Close to float32, not equal: reduced precision is allowed to move a few frames.
    [exact] = recognizer.recognize([speech_samples], [DecodeRequest()])
    assert recognizer.info.dtype == "float32"
    assert SequenceMatcher(None, exact.raw, got.raw).ratio() > 0.8


def test_hark_transcribe_records_the_precision_in_the_result(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    wav = audio_dir / "one_sentence_16k.wav"
    args = ["transcribe", str(wav), "--out", str(out), "--model", str(tiny_model_dir)]
    args += ["--device", "cpu", "--precision", "bfloat16", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "one_sentence_16k.wav.json").read_text())
    validate_result(doc)
    assert doc["model"]["dtype"] == "bfloat16" and doc["model"]["device"] == "cpu"


def test_hark_transcribe_by_default_on_this_cpu_runs_int8_in_onnx_runtime_and_records_it(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARK_MODEL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    wav = audio_dir / "one_sentence_16k.wav"
    args = ["transcribe", str(wav), "--out", str(out), "--model", str(tiny_model_dir)]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "one_sentence_16k.wav.json").read_text())
    validate_result(doc)
    assert doc["model"]["dtype"] == "int8" and doc["model"]["device"] == "cpu"
    assert doc["model"]["runtime"] == "onnxruntime"
    assert doc["segments"] and doc["text"]
    # The export, cached where it was told; torch's int8 weights were not made.
    assert list((tmp_path / "cache" / "onnx").glob("sensevoice-*/model.int8.onnx"))
    assert not list((tmp_path / "cache" / "int8").glob("*.pt"))


def test_a_model_thread_gets_the_configured_compute_threads_once(
    recognizer: SenseVoice, speech_samples: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenMP keeps the count per calling thread: a Serve model thread started from Ray's
    OMP_NUM_THREADS ran int8 at half speed until it set its own (benchmarks/cpu_peers.py)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    calls: list[tuple[int, int]] = []
    real = torch.set_num_threads
    monkeypatch.setattr(
        torch, "set_num_threads", lambda n: (calls.append((threading.get_ident(), n)), real(n))
    )
    request = [DecodeRequest()]
    with ThreadPoolExecutor(1) as pool:
        model_thread = pool.submit(threading.get_ident).result()
        for _ in range(2):
            pool.submit(recognizer.recognize, [speech_samples], request).result()
    recognizer.recognize([speech_samples], request)  # the thread that built it: set already
    assert calls == [(model_thread, recognizer.threads)]
