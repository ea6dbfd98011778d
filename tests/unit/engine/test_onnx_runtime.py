"""The CPU int8 path in ONNX Runtime: exported once, checked, cached, started without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hark_serving.cli.main import app
from hark_serving.config import load_settings
from hark_serving.engine import onnx_export
from hark_serving.engine.audio import decode_audio
from hark_serving.engine.factory import build_recognizer
from hark_serving.engine.onnx_export import ONNX_TOLERANCE, build
from hark_serving.engine.onnx_folder import export_dir, read_manifest
from hark_serving.engine.onnx_model import OnnxSenseVoice, optimized_files
from hark_serving.engine.recognition import DecodeRequest
from hark_serving.engine.sensevoice import SenseVoice
from hark_serving.errors import ConfigError, ModelError
from hark_serving.transcript.schema import validate_result
from tests.unit.engine.test_int8 import EMOTIONS, reweigh


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def exported(tiny_model_dir: Path, cache: Path) -> onnx_export.Exported:
    return build(tiny_model_dir, cache, threads=2)


@pytest.fixture
def model_dir(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A copy of the tiny model whose weights a test may change."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def exports(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "onnx").glob("sensevoice-*") if p.is_dir())


def test_the_export_is_checked_against_float32_and_cached_once(
    exported: onnx_export.Exported, tiny_model_dir: Path, cache: Path
) -> None:
    assert exported.built and 0 < exported.difference <= ONNX_TOLERANCE
    manifest = read_manifest(exported.path)
    assert manifest is not None and manifest["check"]["difference"] == exported.difference
    # The folder holds everything a start needs: no file of the model folder is read.
    for name in ("model.int8.onnx", "tokens.model", "am.mvn", "export.json"):
        assert (exported.path / name).is_file(), name
    assert exports(cache) == [exported.path]
    stamp = (exported.path / "model.int8.onnx").stat().st_mtime_ns
    again = build(tiny_model_dir, cache, threads=2)  # a second start finds it
    assert not again.built and again.path == exported.path
    assert (exported.path / "model.int8.onnx").stat().st_mtime_ns == stamp


def test_an_export_logs_its_outcome_without_the_quantizers_line_per_tensor(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with caplog.at_level(logging.INFO):
        made = build(tiny_model_dir, tmp_path / "cache", threads=2)
    assert made.built
    assert any("for ONNX Runtime; CTC logits within" in r.getMessage() for r in caplog.records)
    quantizer = [r for r in caplog.records if "onnxruntime" in r.pathname]
    assert quantizer == [], [r.getMessage() for r in quantizer[:3]]
    # Only for the export: the root logger is left as it was.
    assert not any(type(f).__name__ == "_QuantizerChatter" for f in logging.getLogger().filters)


def test_changed_weights_get_an_export_of_their_own(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = build(model_dir, cache, threads=2)
    reweigh(model_dir, seed=7)  # same size and mtime: only the digest tells
    second = build(model_dir, cache, threads=2)
    assert second.built and second.path != first.path
    assert exports(cache) == sorted([first.path, second.path])


def test_an_export_that_disagrees_with_float32_is_refused_and_not_cached(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as caught:
        build(tiny_model_dir, cache, threads=2, tolerance=0.0)
    message = str(caught.value)
    assert "int8 ONNX export disagrees with float32" in message
    assert "ONNX_TOLERANCE" in message and "HARK_RUNTIME=torch" in message
    assert exports(cache) == []  # nothing half-made is left where a start would look
    assert not [p for p in (cache / "onnx").iterdir() if p.name.startswith(".export-")]


def test_an_interrupted_export_is_made_again(tiny_model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = build(tiny_model_dir, cache, threads=2)
    (first.path / "export.json").unlink()  # what an export killed before its last write leaves
    again = build(tiny_model_dir, cache, threads=2)
    assert again.built and again.path == first.path and read_manifest(again.path)


def test_onnx_runtime_transcribes_close_to_float32_with_word_times(
    exported: onnx_export.Exported, recognizer: SenseVoice, audio_dir: Path
) -> None:
    model = OnnxSenseVoice(exported.path, source="tiny", threads=2)
    assert (model.info.dtype, model.info.device, model.info.runtime) == (
        "int8",
        "cpu",
        "onnxruntime",
    )
    waves = []
    for name in ("speech_en_16k.wav", "speech_zh_16k.wav", "one_sentence_16k.wav"):
        with decode_audio(audio_dir / name) as decoded:
            waves.append(np.ascontiguousarray(decoded.channels[0][: 16000 * 12]))
    requests = [
        DecodeRequest(words=True),
        DecodeRequest(language="zh"),
        DecodeRequest(use_itn=False),
    ]
    ours = model.recognize(waves, requests)
    exact = recognizer.recognize(waves, requests)
    for got, want in zip(ours, exact, strict=True):
        # Random weights: the text is noise, but int8 noise close to float32's.
        assert got.raw and SequenceMatcher(None, got.raw, want.raw).ratio() > 0.8, (got, want)
    assert ours[0].words and all(0 <= w.start <= w.end <= 12.0 for w in ours[0].words)
    assert ours[1].words is None
    # Alone, a call runs its rows one by one on the session's threads: a row in a
    # batch gives exactly what it gives alone.
    assert [model.recognize([w], [r])[0] for w, r in zip(waves, requests, strict=True)] == ours


def test_in_padded_batches_a_row_gives_nearly_what_it_gives_alone(
    exported: onnx_export.Exported, audio_dir: Path
) -> None:
    model = OnnxSenseVoice(exported.path, source="tiny", threads=2)
    model.allow_concurrent_calls(2)  # a Serve replica: each call runs its batch padded
    waves = []
    for name in ("speech_en_16k.wav", "one_sentence_16k.wav"):
        with decode_audio(audio_dir / name) as decoded:
            waves.append(np.ascontiguousarray(decoded.channels[0][: 16000 * 12]))
    batch = model.recognize(waves, [DecodeRequest()] * 2)
    [alone] = model.recognize([waves[1]], [DecodeRequest()])
    # The graph masks the padding, but each int8 layer scales its input by the
    # batch's largest value.
    assert SequenceMatcher(None, alone.raw, batch[1].raw).ratio() > 0.9, (alone, batch[1])


def test_the_export_holds_the_optimised_graph_and_a_start_loads_it_as_it_is(
    exported: onnx_export.Exported,
) -> None:
    import onnx
    import onnxruntime as ort

    graph, weights = optimized_files(exported.path, ort.__version__)
    assert graph.is_file() and weights.is_file()
    # Every weight matrix lives in the weights file, which ONNX Runtime maps.
    tensors = onnx.load(str(graph), load_external_data=False).graph.initializer
    large = [t for t in tensors if len(t.dims) == 2 and min(t.dims) >= 32]
    assert large and all(t.data_location == onnx.TensorProto.EXTERNAL for t in large)
    stamps = [graph.stat().st_mtime_ns, weights.stat().st_mtime_ns]
    model = OnnxSenseVoice(exported.path, source="tiny", threads=1)
    assert model.recognize([np.zeros(16000, np.float32)], [DecodeRequest()])
    assert [graph.stat().st_mtime_ns, weights.stat().st_mtime_ns] == stamps
    assert not [p for p in exported.path.iterdir() if p.name.startswith(".ort-")]


@pytest.mark.parametrize("damage", ["graph", "weights cut short", "weights missing", "absent"])
def test_a_damaged_or_missing_optimised_graph_is_made_again(
    exported: onnx_export.Exported, tmp_path: Path, audio_dir: Path, damage: str
) -> None:
    import onnxruntime as ort

    folder = Path(shutil.copytree(exported.path, tmp_path / "export"))
    graph, weights = optimized_files(folder, ort.__version__)
    with decode_audio(audio_dir / "one_sentence_16k.wav") as decoded:
        wave = np.ascontiguousarray(decoded.channels[0])
    expected = OnnxSenseVoice(folder, source="tiny", threads=1).recognize([wave], [DecodeRequest()])
    size = weights.stat().st_size
    if damage == "graph":
        graph.write_bytes(b"not a graph")
    elif damage == "weights cut short":
        with weights.open("r+b") as f:
            f.truncate(size // 2)
    elif damage == "weights missing":
        weights.unlink()
    else:
        graph.unlink()
        weights.unlink()
    model = OnnxSenseVoice(folder, source="tiny", threads=1)
    assert model.recognize([wave], [DecodeRequest()]) == expected
    # Saved again in place, whole, and loaded as it is by the next start.
    assert graph.stat().st_size > 1000 and weights.stat().st_size == size
    stamp = graph.stat().st_mtime_ns
    OnnxSenseVoice(folder, source="tiny", threads=1)
    assert graph.stat().st_mtime_ns == stamp
    assert not [p for p in folder.iterdir() if p.name.startswith(".ort-")]


def test_an_optimised_graph_saved_by_an_earlier_release_is_replaced(
    exported: onnx_export.Exported, tmp_path: Path
) -> None:
    import onnxruntime as ort

    folder = Path(shutil.copytree(exported.path, tmp_path / "export"))
    graph, weights = optimized_files(folder, ort.__version__)
    graph.unlink()
    weights.unlink()
    # Earlier releases kept the weights inside one optimised graph file.
    legacy = folder / f"model.int8.ort-{ort.__version__}.onnx"
    shutil.copyfile(folder / "model.int8.onnx", legacy)
    OnnxSenseVoice(folder, source="tiny", threads=1)
    assert graph.is_file() and weights.is_file() and not legacy.exists()


def test_a_folder_that_is_not_an_export_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"not a complete ONNX export.*hark model export"):
        OnnxSenseVoice(tmp_path, source="x")


def test_hark_transcribe_in_onnx_runtime_writes_schema_valid_transcripts_with_tags_and_words(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path, cache: Path,
    exported: onnx_export.Exported, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("HARK_MODEL_CACHE", str(cache))
    names = ["one_sentence_16k.wav", "speech_en.mp3", "call_stereo_8k.wav", "silence_10s.wav"]
    out = tmp_path / "out"
    args = ["transcribe", *(str(audio_dir / n) for n in names), "--out", str(out)]
    args += ["--model", str(tiny_model_dir), "--device", "cpu", "--runtime", "onnx"]
    result = CliRunner().invoke(app, [*args, "--timestamps", "word", "--quiet"])
    assert result.exit_code == 0, result.output
    docs = {n: json.loads((out / f"{n}.json").read_text()) for n in names}
    for name, doc in docs.items():
        validate_result(doc)
        assert doc["model"]["runtime"] == "onnxruntime" and doc["model"]["dtype"] == "int8", name
    assert docs["silence_10s.wav"]["summary"]["flags"] == ["no_speech"]
    for name in names[:3]:
        segments, summary = docs[name]["segments"], docs[name]["summary"]
        assert segments and summary["speech_seconds"] > 0, name
        tagged = [s for s in segments if s["emotion"] in EMOTIONS]
        assert tagged and "<|" not in "".join(s["text"] for s in segments), name
        assert set(summary["emotions"]) == {s["emotion"] for s in tagged}, name
        words = [w for s in segments for w in s["words"]]
        duration = docs[name]["source"]["duration"]
        assert words and all(0 <= w["start"] <= w["end"] <= duration for w in words), name
    assert exports(cache) == [exported.path]  # the export made before, not another


START = textwrap.dedent(
    """
    import atexit, json, sys
    atexit.register(lambda: print(json.dumps(sorted(m for m in sys.modules
        if m.split(".")[0] in ("torch", "funasr", "torchaudio", "silero_vad"))), file=sys.stderr))
    from hark_serving.cli.main import app
    app(sys.argv[1:])
    """
)


def test_a_start_with_the_export_cached_imports_neither_torch_nor_funasr(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path, cache: Path,
    exported: onnx_export.Exported,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    wav = audio_dir / "one_sentence_16k.wav"
    proc = subprocess.run(
        [sys.executable, "-c", START, "transcribe", str(wav), "--out", str(out), "--json"],
        env={
            **os.environ,
            "HARK_MODEL": str(tiny_model_dir),
            "HARK_MODEL_CACHE": str(cache),
            "HARK_DEVICE": "cpu",
            "HARK_TIMESTAMPS": "word",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    imported = json.loads(proc.stderr.strip().splitlines()[-1])
    assert imported == [], imported
    doc = json.loads((out / "one_sentence_16k.wav.json").read_text())
    assert doc["model"]["runtime"] == "onnxruntime" and doc["segments"]
    timings = json.loads(proc.stdout)["timings"]
    assert 0 < timings["load_seconds"] <= timings["start_seconds"]


BLAS_THREADS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from threadpoolctl import threadpool_info
    from hark_serving.engine.onnx_model import OnnxSenseVoice

    def blas():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas()
    OnnxSenseVoice(Path(sys.argv[1]), source="tiny", threads=2)
    print(json.dumps([before, blas()]))
    """
)


def test_the_onnx_path_keeps_numpys_blas_to_one_thread(exported: onnx_export.Exported) -> None:
    # OpenBLAS takes its thread count from the environment (a Ray actor sets
    # OMP_NUM_THREADS to its CPUs); its idle workers spin on the model's cores.
    proc = subprocess.run(
        [sys.executable, "-c", BLAS_THREADS, str(exported.path)],
        env={**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    before, after = json.loads(proc.stdout)
    assert before == [2], before  # numpy's BLAS as the process starts, on 2 cores
    assert after == [1], after


def test_runtime_auto_falls_back_to_torch_when_the_export_is_refused(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(onnx_export, "ONNX_TOLERANCE", 0.0)
    settings = load_settings(model=str(tiny_model_dir), model_cache=tmp_path, device="cpu")
    model = build_recognizer(settings)
    assert model.info.runtime == "torch" and model.info.dtype == "int8"
    assert "int8 ONNX export disagrees with float32" in caplog.text
    assert "runs the model in torch instead" in caplog.text
    # Asked for by name, the export's refusal is the answer.
    named = load_settings(
        model=str(tiny_model_dir), model_cache=tmp_path, device="cpu", runtime="onnx"
    )
    with pytest.raises(ModelError, match="int8 ONNX export disagrees"):
        build_recognizer(named)


@pytest.mark.parametrize(
    "overrides",
    [{"precision": "float32"}, {"precision": "bfloat16"}, {"device": "cuda", "precision": "auto"}],
)
def test_runtime_onnx_with_settings_it_cannot_run_is_refused_naming_them(
    overrides: dict[str, str],
) -> None:
    with pytest.raises(ConfigError, match="runtime onnx runs int8 on the CPU only") as caught:
        load_settings(runtime="onnx", **overrides)
    assert "HARK_RUNTIME" in str(caught.value)


def test_hark_model_export_builds_the_export_a_start_then_reads(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    args = ["model", "export", "--model", str(tiny_model_dir), "--model-cache", str(cache)]
    first = CliRunner().invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    made = json.loads(first.stdout.splitlines()[0])
    assert made["built"] and Path(made["path"]) == exports(cache)[0]
    assert 0 < made["difference"] <= made["tolerance"]
    again = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout.splitlines()[0])
    assert not again["built"] and again["path"] == made["path"]
    settings = load_settings(model=str(tiny_model_dir), model_cache=cache, device="cpu")
    model = build_recognizer(settings)
    assert isinstance(model, OnnxSenseVoice) and model.folder == Path(made["path"])
    assert export_dir(cache, made["path"].split("sensevoice-")[1].split("-v")[0]) == model.folder


def test_two_lanes_split_the_threads_and_run_at_once_with_the_same_results(
    exported: onnx_export.Exported, audio_dir: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = OnnxSenseVoice(exported.path, source="tiny", threads=2)
    waves = []
    for name in ("speech_en_16k.wav", "speech_zh_16k.wav"):
        with decode_audio(audio_dir / name) as decoded:
            waves.append(np.ascontiguousarray(decoded.channels[0][: 16000 * 8]))
    alone = [model.recognize([w], [DecodeRequest(words=True)])[0] for w in waves]
    assert (model._session_threads, model._row_lanes) == (1, 2)  # rows two at a time
    model.allow_concurrent_calls(2)
    assert (model._session_threads, model._row_lanes) == (1, 1)  # one thread per lane
    with ThreadPoolExecutor(2) as pool:
        together = list(
            pool.map(lambda w: model.recognize([w], [DecodeRequest(words=True)])[0], waves * 3)
        )
    assert together == alone * 3
