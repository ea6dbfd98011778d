"""precision=int8: torch's dynamic quantization of the linear layers, cached, checked at load."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
from typer.testing import CliRunner

from hark import Transcriber
from hark_serving.cli import exits
from hark_serving.cli.main import app
from hark_serving.engine.audio import decode_audio
from hark_serving.engine.int8 import INT8_TOLERANCE, cache_file, to_int8, weights_digest
from hark_serving.engine.model_source import file_sha256
from hark_serving.engine.recognition import DecodeRequest
from hark_serving.engine.sensevoice import SenseVoice, resolve_precision
from hark_serving.errors import ModelError
from hark_serving.transcript.schema import validate_result

EMOTIONS = {"HAPPY", "SAD", "ANGRY", "NEUTRAL", "FEARFUL", "DISGUSTED", "SURPRISED"}


def int8_files(cache: Path) -> list[Path]:
    return sorted((cache / "int8").glob("*.pt"))


def int8(model_dir: Path, cache: Path) -> SenseVoice:
    return SenseVoice(model_dir, device="cpu", precision="int8", cache=cache)


@pytest.fixture
def model_dir(tmp_path: Path, tiny_model_dir: Path) -> Path:
    """A copy of the tiny model whose weights a test may change."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))


def reweigh(model_dir: Path, seed: int) -> None:
    """Other weights of the same shapes in model.pt, keeping its size and modification time."""
    weights = model_dir / "model.pt"
    before = weights.stat()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if value.is_floating_point() and value.numel() > 1:
            noise = torch.randn(value.shape, generator=generator)
            state[key] = noise * value.std().clamp(min=1e-3)
    tmp = weights.with_name("model.pt.tmp")  # as the fixture writes it: the same archive name
    torch.save(state, tmp)
    os.replace(tmp, weights)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = weights.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_int8_on_cuda_is_refused_naming_the_flags_that_work(device: str) -> None:
    with pytest.raises(ModelError, match="precision int8 runs on the CPU only") as caught:
        resolve_precision("int8", device)
    assert "--device cpu" in str(caught.value) and "--precision auto" in str(caught.value)


def test_int8_resolves_to_itself_on_the_cpu() -> None:
    assert resolve_precision("int8", "cpu") == "int8"


def test_hark_transcribe_int8_writes_schema_valid_transcripts_with_tags_and_word_times(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARK_MODEL_CACHE", str(tmp_path / "cache"))
    names = ["one_sentence_16k.wav", "speech_en.mp3", "call_stereo_8k.wav", "silence_10s.wav"]
    out = tmp_path / "out"
    args = ["transcribe", *(str(audio_dir / n) for n in names), "--out", str(out)]
    args += ["--model", str(tiny_model_dir), "--device", "cpu", "--precision", "int8"]
    args += ["--runtime", "torch"]  # torch's int8; ONNX Runtime's: test_onnx_runtime.py
    result = CliRunner().invoke(app, [*args, "--timestamps", "word", "--quiet"])
    assert result.exit_code == 0, result.output

    docs = {n: json.loads((out / f"{n}.json").read_text()) for n in names}
    for name, doc in docs.items():
        validate_result(doc)
        assert doc["model"]["dtype"] == "int8" and doc["model"]["device"] == "cpu", name
    assert docs["silence_10s.wav"]["summary"]["flags"] == ["no_speech"]
    for name in names[:3]:
        doc = docs[name]
        segments, summary = doc["segments"], doc["summary"]
        assert segments and summary["speech_seconds"] > 0, name
        # The model's tags are parsed out of the text and summed up per file.
        tagged = [s for s in segments if s["emotion"] in EMOTIONS]
        assert tagged and "<|" not in "".join(s["text"] for s in segments), name
        assert set(summary["emotions"]) == {s["emotion"] for s in tagged}, name
        words = [w for s in segments for w in s["words"]]
        assert words, name
        assert all(0 <= w["start"] <= w["end"] <= doc["source"]["duration"] for w in words)
    # One int8 file was built for the model and left in the cache.
    assert len(int8_files(tmp_path / "cache")) == 1


@pytest.fixture(scope="module")
def speech_samples(audio_dir: Path) -> np.ndarray:
    with decode_audio(audio_dir / "speech_en_16k.wav") as decoded:
        return np.ascontiguousarray(decoded.channels[0])


def test_int8_runs_quantized_linear_layers_on_float32_activations(
    model_dir: Path, tmp_path: Path, recognizer: SenseVoice, speech_samples: np.ndarray
) -> None:
    model = int8(model_dir, tmp_path / "cache")
    assert model.info.dtype == "int8"
    layers = [m for m in model.model.modules() if isinstance(m, DynamicLinear)]
    assert layers and not [m for m in model.model.modules() if type(m) is torch.nn.Linear]
    seen: list[torch.dtype] = []
    hooks = [m.register_forward_hook(lambda _m, i, o: seen.extend((i[0].dtype, o.dtype)))
             for m in layers]  # fmt: skip
    try:
        [got] = model.recognize([speech_samples], [DecodeRequest(words=True)])
    finally:
        for hook in hooks:
            hook.remove()
    assert seen and set(seen) == {torch.float32}
    # Checked against float32 before first use, and close to it.
    assert model.int8 is not None and 0 < model.int8.difference <= INT8_TOLERANCE
    [exact] = recognizer.recognize([speech_samples], [DecodeRequest()])
    assert SequenceMatcher(None, exact.raw, got.raw).ratio() > 0.8


def test_a_second_load_reads_the_cached_int8_weights_without_touching_them(
    model_dir: Path, tmp_path: Path, speech_samples: np.ndarray
) -> None:
    cache = tmp_path / "cache"
    first = int8(model_dir, cache)
    assert first.int8 is not None and first.int8.built and first.int8.saved
    [path] = int8_files(cache)
    assert first.int8.path == path
    before = path.stat()

    second = int8(model_dir, cache)
    assert second.int8 is not None and not second.int8.built and not second.int8.saved
    # The check the first load passed is recorded for this file: not run again.
    assert first.int8.checked and not second.int8.checked
    assert int8_files(cache) == [path]
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    # The cached weights are the built ones: the same transcript, token for token.
    request = [DecodeRequest(words=True)]
    assert second.recognize([speech_samples], request) == first.recognize([speech_samples], request)
    assert second.int8.difference == first.int8.difference


def test_changed_weights_of_the_same_size_and_time_get_int8_weights_of_their_own(
    model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    int8(model_dir, cache)
    [old] = int8_files(cache)
    old_mtime = old.stat().st_mtime_ns

    reweigh(model_dir, seed=1)
    rebuilt = int8(model_dir, cache)
    assert rebuilt.int8 is not None and rebuilt.int8.built
    assert rebuilt.int8.path != old and int8_files(cache) == sorted([old, rebuilt.int8.path])
    assert old.stat().st_mtime_ns == old_mtime


def scramble(path: Path) -> None:
    """Negate every quantized weight in a cached int8 file, keeping its layout readable."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in state.items():
        if key.endswith("_packed_params._packed_params"):
            weight, bias = value
            negated = torch.quantize_per_tensor(
                -weight.dequantize(), weight.q_scale(), weight.q_zero_point(), torch.qint8
            )
            state[key] = (negated, bias)
    torch.save(state, path)


def measured(message: str) -> float:
    found = re.search(r"differ by (\d+\.\d+)", message)
    assert found, message
    return float(found[1])


def test_cached_int8_weights_that_disagree_with_float32_are_refused(
    model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    int8(model_dir, cache)
    [path] = int8_files(cache)
    scramble(path)
    scrambled = path.read_bytes()

    with pytest.raises(ModelError) as caught:
        int8(model_dir, cache)
    message = str(caught.value)
    assert f"above the tolerance {INT8_TOLERANCE}" in message
    assert measured(message) > INT8_TOLERANCE
    assert str(path) in message and "delete it to quantize again" in message
    assert "--precision float32" in message and "bfloat16" in message
    assert path.read_bytes() == scrambled  # refused, never silently replaced


def test_a_check_recorded_above_a_lower_tolerance_is_run_again(
    model_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = int8(model_dir, cache).int8
    assert first is not None and first.checked
    lower = first.difference / 2
    exact = SenseVoice(model_dir, device="cpu", precision="float32")
    with pytest.raises(ModelError, match=f"above the tolerance {lower}"):
        to_int8(exact.model, model_dir / "model.pt", cache, exact.probe_logits, tolerance=lower)


def test_int8_weights_of_other_weights_are_refused(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    int8(model_dir, cache)
    [theirs] = int8_files(cache)
    reweigh(model_dir, seed=2)
    mine = int8(model_dir, cache).int8
    assert mine is not None
    shutil.copyfile(theirs, mine.path)  # the cache entry of these weights holds the others'

    with pytest.raises(ModelError, match="int8 weights disagree with float32") as caught:
        int8(model_dir, cache)
    assert measured(str(caught.value)) > INT8_TOLERANCE


def test_an_unreadable_cache_file_is_named_with_the_fix(model_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    int8(model_dir, cache)
    [path] = int8_files(cache)
    path.write_bytes(path.read_bytes()[:1000])

    with pytest.raises(ModelError, match="cannot read the cached int8 weights") as caught:
        int8(model_dir, cache)
    assert str(path) in str(caught.value) and "delete the file" in str(caught.value)


def test_a_cache_that_cannot_be_written_costs_a_rebuild_not_the_start(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, speech_samples: np.ndarray
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="hark_serving.engine.int8"):
        model = int8(model_dir, blocker / "cache")
    assert model.int8 is not None and model.int8.built and not model.int8.saved
    assert "is not writable" in caplog.text and "HARK_MODEL_CACHE" in caplog.text
    [got] = model.recognize([speech_samples], [DecodeRequest()])
    assert got.raw


def test_hark_model_quantize_builds_once_then_finds_the_weights(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    cache = tmp_path / "cache"
    args = ["model", "quantize", "--model", str(tiny_model_dir), "--model-cache", str(cache)]
    runs = [CliRunner().invoke(app, [*args, "--json"]) for _ in range(2)]
    assert [r.exit_code for r in runs] == [0, 0], runs[0].output
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["built"] is True and second["built"] is False
    assert first["path"] == second["path"] and [Path(first["path"])] == int8_files(cache)
    assert 0 < first["difference"] == second["difference"] <= first["tolerance"] == INT8_TOLERANCE

    scramble(Path(first["path"]))
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == exits.MODEL
    assert "int8 weights disagree with float32" in refused.stderr


def test_hark_model_quantize_names_a_missing_model(tmp_path: Path) -> None:
    args = [
        "model",
        "quantize",
        "--model",
        str(tmp_path / "absent"),
        "--model-cache",
        str(tmp_path / "c"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == exits.MODEL
    assert "no such model directory" in result.stderr


def test_the_python_api_takes_int8(tmp_path: Path, tiny_model_dir: Path, audio_dir: Path) -> None:
    transcriber = Transcriber(
        model=tiny_model_dir, device="cpu", precision="int8", model_cache=tmp_path / "cache"
    )
    transcript = transcriber.transcribe_file(audio_dir / "one_sentence_16k.wav")
    validate_result(transcript.to_json_dict())
    assert transcript.model.dtype == "int8" and transcript.segments


def test_a_cache_file_that_cannot_be_written_is_reported_and_the_start_goes_on(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    target = cache_file(cache, file_sha256(model_dir / "model.pt"))
    (target / "in-the-way").mkdir(parents=True)  # a directory where the file goes

    with caplog.at_level(logging.WARNING, logger="hark_serving.engine.int8"):
        model = int8(model_dir, cache)
    assert model.int8 is not None and model.int8.built and not model.int8.saved
    assert f"could not cache the int8 weights in {target}" in caplog.text
    assert [p.name for p in (cache / "int8").iterdir() if p.name.startswith(".int8-")] == []


def test_a_hub_copy_keys_its_int8_weights_by_the_digest_it_was_verified_against(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from hark_serving.config import load_settings
    from hark_serving.engine.factory import build_recognizer

    # ModelScope's cache layout; the hub itself is not reachable from here.
    snapshot = tmp_path / "hub" / "ms" / "models" / "iic--SenseVoiceSmall" / "snapshots" / "master"
    shutil.copytree(tiny_model_dir, snapshot)
    settings = load_settings(
        model="iic/SenseVoiceSmall",
        model_cache=tmp_path,
        device="cpu",
        precision="int8",
        runtime="torch",
    )
    first = build_recognizer(settings).int8  # the first start records the download's digests
    recorded = json.loads((snapshot / ".hark-manifest.json").read_text())["model.pt"]
    assert first is not None and first.built
    assert first.path == cache_file(tmp_path, recorded) == int8_files(tmp_path)[0]

    second = build_recognizer(settings).int8  # verified against them, then read from the cache
    assert second is not None and not second.built and second.path == first.path


def test_the_weights_digest_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    cache, weights = tmp_path / "cache", tmp_path / "model.pt"
    weights.write_bytes(b"a" * 4096)
    digest = weights_digest(weights, cache)
    assert digest == file_sha256(weights)
    [memo] = (cache / "int8" / "digests").glob("*.json")
    assert json.loads(memo.read_text())["sha256"] == digest

    # While the file's stamp holds, the remembered digest is the answer: no hashing.
    record = json.loads(memo.read_text())
    memo.write_text(json.dumps({**record, "sha256": "remembered"}))
    assert weights_digest(weights, cache) == "remembered"

    # Rewritten in place, same size, its mtime put back: the ctime moved, so hashed again.
    before = weights.stat()
    with weights.open("r+b") as f:
        f.write(b"b")
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_ino == before.st_ino and weights.stat().st_size == before.st_size
    assert weights_digest(weights, cache) == file_sha256(weights) != digest


def test_a_read_only_cache_still_gives_the_digest(tmp_path: Path) -> None:
    cache, weights = tmp_path / "cache", tmp_path / "model.pt"
    weights.write_bytes(b"weights")
    cache.write_text("not a directory")  # unwritable as a cache, even for root
    assert weights_digest(weights, cache) == file_sha256(weights)
    assert weights_digest(weights, cache) == file_sha256(weights)


def test_the_quantized_layers_load_in_parallel_to_exactly_the_plain_load(
    tiny_model_dir: Path,
) -> None:
    from hark_serving.engine.int8 import int8_layout, load_packing_in_parallel, quantize
    from hark_serving.engine.loading import load

    source = load(tiny_model_dir, "cpu", 1).model
    quantize(source)
    saved = source.state_dict()

    def fresh() -> torch.nn.Module:
        model = load(tiny_model_dir, "cpu", 1).model
        int8_layout(model)
        return model  # type: ignore[no-any-return]

    plain, parallel = fresh(), fresh()
    plain.load_state_dict(saved, strict=True)
    taken = saved.copy()  # it takes keys out of its argument
    taken._metadata = saved._metadata  # type: ignore[attr-defined]  # as torch.load gives it
    load_packing_in_parallel(parallel, taken)
    got, expected = parallel.state_dict(), plain.state_dict()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, tuple):  # a layer's (weight, bias), unpacked again
            assert all(torch.equal(a, b) for a, b in zip(got[key], value, strict=True)), key
        elif isinstance(value, torch.Tensor):
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("damage", ["a layer's weights missing", "a key the model lacks"])
def test_a_state_that_does_not_fit_still_fails_the_parallel_load(
    tiny_model_dir: Path, damage: str
) -> None:
    from hark_serving.engine.int8 import int8_layout, load_packing_in_parallel, quantize
    from hark_serving.engine.loading import load

    source = load(tiny_model_dir, "cpu", 1).model
    quantize(source)
    state = source.state_dict()
    if damage == "a key the model lacks":
        state["encoder.extra.weight"] = torch.zeros(1)
    else:
        del state[next(k for k in state if k.endswith("._packed_params._packed_params"))]
    model = load(tiny_model_dir, "cpu", 1).model
    int8_layout(model)
    with pytest.raises((RuntimeError, KeyError)):
        load_packing_in_parallel(model, state)
