"""`hark transcribe`: outputs, skipping current work, errors by name, exit codes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hark_serving.cli.main import app
from hark_serving.transcript.schema import validate_result


@pytest.fixture
def inputs(tmp_path: Path, audio_dir: Path) -> Path:
    root = tmp_path / "in"
    (root / "calls" / "2026").mkdir(parents=True)
    shutil.copy(audio_dir / "one_sentence_16k.wav", root / "a.wav")
    shutil.copy(audio_dir / "speech_en.mp3", root / "calls" / "2026" / "b.mp3")
    shutil.copy(audio_dir / "silence_10s.wav", root / "calls" / "quiet.wav")
    (root / "notes.txt").write_text("not audio, and not picked up by the default globs")
    return root


def run(args: list[str], model: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["transcribe", *args, "--model", str(model), "--quiet"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output + (result.stderr or "")


def test_it_transcribes_a_tree_keeping_relative_paths_in_every_format(
    inputs: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    code, text = run(
        [str(inputs), "--out", str(out), "--formats", "json,srt,vtt,txt"], tiny_model_dir
    )
    assert code == 0, text
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert produced == sorted(
        f"{rel}.{fmt}"
        for rel in ("a.wav", "calls/2026/b.mp3", "calls/quiet.wav")
        for fmt in ("json", "srt", "vtt", "txt")
    )
    doc = json.loads((out / "calls/2026/b.mp3.json").read_text())
    validate_result(doc)
    assert doc["source"]["uri"] == str((inputs / "calls/2026/b.mp3").resolve())
    assert (out / "a.wav.vtt").read_text().startswith("WEBVTT\n")
    quiet = json.loads((out / "calls/quiet.wav.json").read_text())
    assert quiet["segments"] == [] and quiet["summary"]["flags"] == ["no_speech"]
    assert "3 transcribed" in text


def test_current_outputs_are_skipped_and_changed_inputs_redone(
    inputs: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    assert run([str(inputs), "--out", str(out)], tiny_model_dir)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.json")}

    code, text = run([str(inputs), "--out", str(out)], tiny_model_dir)
    assert code == 0 and "0 to transcribe, 3 already current" in text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.json")} == before

    os.utime(inputs / "a.wav", ns=(1, 1))  # a changed input has a new fingerprint
    code, text = run([str(inputs), "--out", str(out)], tiny_model_dir)
    assert "1 to transcribe, 2 already current" in text

    code, text = run([str(inputs), "--out", str(out), "--overwrite"], tiny_model_dir)
    assert "3 to transcribe" in text


def test_missing_formats_are_rendered_from_the_current_json_without_the_model(
    inputs: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    run([str(inputs / "a.wav"), "--out", str(out)], tiny_model_dir)
    json_before = (out / "a.wav.json").read_bytes()
    code, text = run(
        [str(inputs / "a.wav"), "--out", str(out), "--formats", "srt", "--model", "/nonexistent"],
        tiny_model_dir,
    )
    assert code == 0 and "1 re-rendered" in text
    assert (out / "a.wav.srt").exists()
    assert (out / "a.wav.json").read_bytes() == json_before


def test_a_broken_file_is_named_recorded_and_the_run_continues(
    inputs: Path, tmp_path: Path, tiny_model_dir: Path, audio_dir: Path
) -> None:
    shutil.copy(audio_dir / "broken_truncated.mp3", inputs / "cut.mp3")
    shutil.copy(audio_dir / "broken_not_audio.mp3", inputs / "calls" / "fake.mp3")
    out = tmp_path / "out"
    code, text = run([str(inputs), "--out", str(out)], tiny_model_dir)
    assert code == 1
    assert "cut.mp3: truncated_audio" in text and "fake.mp3: unsupported_format" in text
    err = json.loads((out / "cut.mp3.error.json").read_text())
    assert err["code"] == "truncated_audio" and err["attempts"] == 1
    assert (out / "a.wav.json").exists() and (out / "calls/2026/b.mp3.json").exists()

    # Fixed upstream: the next run transcribes it and drops the stale error.
    shutil.copy(audio_dir / "speech_en.mp3", inputs / "cut.mp3")
    code, _ = run([str(inputs / "cut.mp3"), "--out", str(out)], tiny_model_dir)
    assert code == 0
    assert (out / "cut.mp3.json").exists() and not (out / "cut.mp3.error.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--language", "fr"], "'--language' (env var: 'HARK_LANGUAGE'): Value error, 'fr'"),
        (["--formats", "json,docx"], "unknown output format docx"),
        (["--vad", "webrtc"], "'--vad' (env var: 'HARK_VAD')"),
        (["--precision", "int4"], "'--precision' (env var: 'HARK_PRECISION')"),
        (["--max-segment-seconds", "0.5"], "--max-segment-seconds / HARK_MAX_SEGMENT_SECONDS"),
        (["--device", "cpu", "--precision", "float16"], "float16 runs on CUDA only"),
        (["--device", "cuda", "--precision", "int8"], "precision int8 runs on the CPU only"),
    ],
)
def test_bad_options_exit_2_with_a_message_naming_them(
    args: list[str], message: str, inputs: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    code, text = run([str(inputs), "--out", str(tmp_path / "o"), *args], tiny_model_dir)
    assert code == 2 and message in text


def test_a_missing_input_path_is_named(tmp_path: Path, tiny_model_dir: Path) -> None:
    code, text = run([str(tmp_path / "nope"), "--out", str(tmp_path / "o")], tiny_model_dir)
    assert code == 2 and "nope" in text


def test_the_installed_entry_point_runs_the_embedded_default(
    inputs: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    out = tmp_path / "out"
    hark = Path(sys.executable).with_name("hark")
    args = [str(hark), "transcribe", str(inputs / "a.wav"), "--out", str(out), "--json"]
    began = time.monotonic()
    proc = subprocess.run(
        [*args, "--timestamps", "word"],
        env={
            **os.environ,
            "HARK_MODEL": str(tiny_model_dir),
            "HARK_DEVICE": "cpu",
            "HARK_MODEL_CACHE": str(tmp_path / "cache"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    # The start a user waits through: from the process's start until the model was ready.
    timings = json.loads(proc.stdout)["timings"]
    assert timings["load_seconds"] <= timings["start_seconds"] < took, (timings, took)
    printed = re.search(r"model ready (\d+\.\d) s after start", proc.stderr)
    assert printed, proc.stderr
    # The same figure, printed to one decimal (the JSON keeps three).
    assert abs(float(printed[1]) - timings["start_seconds"]) <= 0.05 + 1e-9
    doc = json.loads((out / "a.wav.json").read_text())
    assert doc["options"]["timestamps"] == "word"
    assert doc["model"] == {
        "name": "SenseVoiceSmall",
        "source": str(tiny_model_dir),
        "device": "cpu",
        "dtype": "int8",  # the default on a CPU with int8 vector instructions, as CI's is
        "runtime": "onnxruntime",
    }


def test_vad_segments_recipe_transcribes_the_pauses_that_speech_leaves_out(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path
) -> None:
    src = audio_dir / "speech_en_16k.wav"  # sentences 0.8 s apart
    docs = {}
    for mode in ("speech", "recipe"):
        out = tmp_path / mode
        code, text = run([str(src), "--out", str(out), "--vad-segments", mode], tiny_model_dir)
        assert code == 0, text
        docs[mode] = json.loads((out / "speech_en_16k.wav.json").read_text())
        validate_result(docs[mode])
    speech, recipe = docs["speech"]["segments"], docs["recipe"]["segments"]
    # The recipe's one span holds the sentences and the pauses between them; speech
    # only gives each sentence its own segment. Both report where the speech is.
    assert len(speech) > len(recipe) >= 1
    assert speech[0]["start"] == recipe[0]["start"] and speech[-1]["end"] == recipe[-1]["end"]
