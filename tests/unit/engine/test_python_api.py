"""`from hark import Transcriber`: the same transcripts as `hark transcribe`, typed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hark import HarkError, ModelError, Transcriber, Transcript, transcribe_file
from hark_serving.cli.main import app

VARYING = ("timing", "created_at")  # when and how fast, not what


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in VARYING}


@pytest.fixture(scope="module")
def transcriber(tiny_model_dir: Path) -> Transcriber:
    return Transcriber(model=tiny_model_dir, device="cpu", precision="float32", vad="silero")


@pytest.fixture
def inputs(tmp_path: Path, audio_dir: Path) -> list[Path]:
    names = ("one_sentence_16k.wav", "speech_en.mp3", "silence_10s.wav", "call_stereo_8k.wav")
    for name in names:
        shutil.copy(audio_dir / name, tmp_path / name)
    return [tmp_path / name for name in names]


def test_the_api_returns_what_the_cli_writes(
    transcriber: Transcriber, inputs: list[Path], tmp_path: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["transcribe", *map(str, inputs), "--out", str(out), "--timestamps", "word",
         "--model", str(tiny_model_dir), "--device", "cpu", "--precision", "float32", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    transcripts = list(transcriber.transcribe(inputs, timestamps="word"))
    assert all(isinstance(t, Transcript) for t in transcripts)
    # In the order given, although the engine finishes files out of order.
    assert [t.source.uri for t in transcripts] == [str(p.resolve()) for p in inputs]
    for path, transcript in zip(inputs, transcripts, strict=True):
        written = json.loads((out / f"{path.name}.json").read_text())
        assert comparable(transcript.to_json_dict()) == comparable(written), path.name
    spoken = transcripts[0]
    assert spoken.segments and spoken.segments[0].words is not None  # word times asked for
    assert transcripts[2].summary.flags == ["no_speech"]


def test_one_file_and_the_options_reach_the_model(
    transcriber: Transcriber, inputs: list[Path]
) -> None:
    one = transcriber.transcribe_file(inputs[0], language="en", itn=False)
    assert one.options.language == "en" and one.options.use_itn is False
    assert one.segments[0].words is None
    split = transcriber.transcribe_file(inputs[3], channels="split")
    assert {s.channel for s in split.segments} <= {0, 1} and split.options.channels == "split"


def test_a_folder_is_walked(transcriber: Transcriber, inputs: list[Path]) -> None:
    found = [t.source.uri for t in transcriber.transcribe(inputs[0].parent)]
    assert sorted(found) == sorted(str(p.resolve()) for p in inputs)


def test_a_bad_file_raises_its_error_after_the_good_ones(
    transcriber: Transcriber, inputs: list[Path], audio_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.mp3"
    shutil.copy(audio_dir / "broken_not_audio.mp3", bad)
    got: list[Transcript] = []
    with pytest.raises(HarkError) as caught:
        for transcript in transcriber.transcribe([inputs[0], bad, inputs[1]]):
            got.append(transcript)
    assert caught.value.code == "unsupported_format" and "bad.mp3" in str(caught.value)
    assert [t.source.uri for t in got] == [str(inputs[0].resolve())]


def test_transcribe_file_loads_and_transcribes_once(
    tiny_model_dir: Path, inputs: list[Path], transcriber: Transcriber
) -> None:
    quick = transcribe_file(
        inputs[0], model=tiny_model_dir, device="cpu", precision="float32", language="auto"
    )
    again = transcriber.transcribe_file(inputs[0])
    assert comparable(quick.to_json_dict()) == comparable(again.to_json_dict())


def test_a_model_that_cannot_load_raises_model_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "am.mvn").unlink()
    with pytest.raises(ModelError, match=r"missing am\.mvn"):
        Transcriber(model=broken, device="cpu")


def test_importing_hark_loads_no_torch() -> None:
    code = (
        "import sys, hark; print(sorted(m for m in ('torch', 'funasr', 'ray') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_start_imports_funasrs_model_code_and_not_the_whole_package(
    tiny_model_dir: Path, audio_dir: Path
) -> None:
    """`import funasr` runs every funasr module (about 5 s); a start needs a handful. Nor
    does it import torch._dynamo (1-1.7 s), which initialising weights on meta would."""
    code = """
import json, sys
from hark import Transcriber
t = Transcriber(model=sys.argv[1], device="cpu", precision="float32", vad="silero")
first = t.transcribe_file(sys.argv[2]).to_json_dict()
light = sorted(m for m in sys.modules if m.split(".")[0] == "funasr")
heavy = sorted(m for m in ("funasr.auto.auto_model", "sklearn", "transformers", "torch._dynamo")
               if m in sys.modules)
from funasr import AutoModel  # the rest of funasr is still there for whoever asks
again = t.transcribe_file(sys.argv[2]).to_json_dict()
print(json.dumps({"light": light, "heavy": heavy, "auto": AutoModel.__name__,
                  "same": [s["text"] for s in first["segments"]] == [s["text"] for s in again["segments"]],
                  "segments": len(first["segments"])}))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tiny_model_dir), str(audio_dir / "one_sentence_16k.wav")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == [], seen["heavy"]
    assert "funasr.models.sense_voice.model" in seen["light"] and len(seen["light"]) < 80
    assert seen["auto"] == "AutoModel" and seen["same"] and seen["segments"] >= 1
