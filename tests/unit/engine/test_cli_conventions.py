"""`hark` as scripts use it: --help with HARK_* variables and choices, --version, stdin and
stdout, the --json run summary, and the exit-code table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hark_serving.cli import exits
from hark_serving.cli.main import app

HARK = str(Path(sys.executable).with_name("hark"))


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def help_of(*command: str) -> str:
    """The help from the installed entry point, with its line wrapping undone."""
    proc = subprocess.run(
        [HARK, *command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return " ".join(proc.stdout.split())


@pytest.mark.parametrize(
    "command, variables",
    [
        (
            ["transcribe"],
            [
                "HARK_MODEL", "HARK_LANGUAGE", "HARK_USE_ITN", "HARK_VAD", "HARK_CHANNELS",
                "HARK_TIMESTAMPS", "HARK_DEVICE", "HARK_PRECISION", "HARK_RUNTIME",
                "HARK_MAX_SEGMENT_SECONDS", "HARK_BATCH_FRAMES", "HARK_THREADS",
            ],
        ),
        (["serve"], ["HARK_MODEL", "HARK_PORT", "HARK_HOST", "HARK_MAX_BATCH_SEGMENTS", "HARK_RUNTIME"]),
        (["operator"], ["HARK_NAMESPACES", "HARK_STANDALONE", "HARK_PRIORITY"]),
        (["run"], ["HARK_MODEL", "HARK_DEVICE", "HARK_VAD"]),
        (["doctor"], ["HARK_MODEL"]),
        (["model", "quantize"], ["HARK_MODEL", "HARK_MODEL_CACHE", "HARK_THREADS"]),
        (["model", "export"], ["HARK_MODEL", "HARK_MODEL_CACHE", "HARK_THREADS"]),
    ],
)  # fmt: skip
def test_help_names_the_environment_variable_of_each_setting_flag(
    command: list[str], variables: list[str]
) -> None:
    text = help_of(*command)
    for var in variables:
        assert f"env var: {var}]" in text, var
    # The exit codes are documented where a script writer looks.
    assert "3 the model could not be loaded" in text
    assert "DESIGN" not in text


def test_help_shows_the_choices_of_enum_options() -> None:
    text = help_of("transcribe")
    for choices in (
        "<auto|zh|en|yue|ja|ko>", "<segment|word>", "<mix|split>",
        "<auto|float32|float16|bfloat16|int8>", "<auto|cpu|cuda>", "<silero|fsmn|none>",
        "<auto|torch|onnx>",
        "json,srt,vtt,txt",
    ):  # fmt: skip
        assert choices in text, choices


def test_an_environment_variable_sets_the_flag_and_is_checked_like_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HARK_LANGUAGE", "fr")
    code, _, err = invoke("transcribe", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == exits.USAGE
    assert "HARK_LANGUAGE" in err and "'fr' is not one of" in err


def test_version_is_the_package_version() -> None:
    code, out, _ = invoke("--version")
    assert code == 0 and out.strip() == f"hark {version('hark')}"
    proc = subprocess.run([HARK, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"hark {version('hark')}"


def test_no_help_text_names_a_file_outside_the_repository() -> None:
    for command in ([], ["transcribe"], ["serve"], ["doctor"], ["operator"], ["run"], ["model"]):
        text = help_of(*command)
        assert ".md" not in text.replace("docs/cli.md", ""), command


def test_exit_codes_are_distinct_and_documented() -> None:
    codes = [exits.OK, exits.FAILURES, exits.USAGE, exits.MODEL, exits.STORAGE, exits.INTERRUPTED]
    assert len(set(codes)) == len(codes)
    doc = (Path(__file__).resolve().parents[3] / "docs" / "cli.md").read_text()
    for code in codes:
        assert f"| {code} |" in doc, code


def test_stdin_to_stdout_prints_the_transcript_the_folder_run_writes(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path
) -> None:
    wav = audio_dir / "one_sentence_16k.wav"
    env = {**os.environ, "HARK_MODEL": str(tiny_model_dir), "HARK_DEVICE": "cpu"}
    with wav.open("rb") as stdin:  # `cat a.wav | hark transcribe - --out - --formats txt`
        piped = subprocess.run(
            [HARK, "transcribe", "-", "--out", "-", "--formats", "txt"],
            stdin=stdin, capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    folder = subprocess.run(
        [HARK, "transcribe", str(wav), "--out", str(tmp_path / "o"), "--formats", "txt", "-q"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert folder.returncode == 0, folder.stderr
    written = (tmp_path / "o" / "one_sentence_16k.wav.txt").read_text()
    assert written.strip() and piped.stdout == written

    with wav.open("rb") as stdin:  # stdin into a folder: named `stdin`, JSON as always
        into = subprocess.run(
            [HARK, "transcribe", "-", "--out", str(tmp_path / "p"), "-q"],
            stdin=stdin, capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
    assert into.returncode == 0, into.stderr
    doc = json.loads((tmp_path / "p" / "stdin.json").read_text())
    reference = json.loads((tmp_path / "o" / "one_sentence_16k.wav.json").read_text())
    assert doc["source"]["uri"] == "-" and doc["source"]["bytes"] == wav.stat().st_size
    assert doc["segments"] == reference["segments"]


def test_empty_stdin_is_a_failed_file_with_its_code(tiny_model_dir: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["transcribe", "-", "--out", "-", "--formats", "txt", "--model", str(tiny_model_dir)],
        input=b"",
    )
    assert result.exit_code == exits.FAILURES
    assert "-: empty_file" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "-", "--formats", "txt,srt"], "--out - prints one format"),
        (["--out", "-", "--json"], "--json and --out - both print"),
    ],
)
def test_stdout_needs_one_format_and_no_json_summary(
    args: list[str], message: str, audio_dir: Path, tiny_model_dir: Path
) -> None:
    code, _, err = invoke(
        "transcribe", str(audio_dir / "one_sentence_16k.wav"), *args, "--model", str(tiny_model_dir)
    )
    assert code == exits.USAGE and message in err


def test_stdout_takes_one_file(audio_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    for name in ("one_sentence_16k.wav", "speech_en.mp3"):
        shutil.copy(audio_dir / name, tmp_path / name)
    code, _, err = invoke(
        "transcribe", str(tmp_path), "--out", "-", "--formats", "txt",
        "--model", str(tiny_model_dir),
    )  # fmt: skip
    assert code == exits.USAGE and "the inputs hold 2 files" in err


def test_json_summary_counts_every_file_exactly(
    tmp_path: Path, audio_dir: Path, tiny_model_dir: Path
) -> None:
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    shutil.copy(audio_dir / "one_sentence_16k.wav", inputs / "a.wav")
    shutil.copy(audio_dir / "speech_en.mp3", inputs / "sub" / "b.mp3")
    shutil.copy(audio_dir / "broken_not_audio.mp3", inputs / "bad.mp3")
    out = tmp_path / "out"
    args = ["transcribe", str(inputs), "--out", str(out), "--formats", "json,txt", "--json", "-q"]

    code, stdout, _ = invoke(*args, "--model", str(tiny_model_dir))
    summary = json.loads(stdout)  # stdout holds the summary and nothing else
    assert code == exits.FAILURES and summary["exit_code"] == exits.FAILURES
    assert summary["counts"] == {
        "files": 3, "transcribed": 2, "skipped": 0, "rerendered": 0, "failed": 1,
    }  # fmt: skip
    assert sorted(summary["outputs"]) == sorted(
        str(out / name) for name in ("a.wav.json", "a.wav.txt", "sub/b.mp3.json", "sub/b.mp3.txt")
    )
    assert summary["failures"] == [
        {
            "uri": str((inputs / "bad.mp3").resolve()),
            "code": "unsupported_format",
            "message": summary["failures"][0]["message"],
        }
    ]
    assert summary["failures"][0]["message"]
    assert set(summary["timings"]) == {"load_seconds", "start_seconds", "total_seconds"}
    assert summary["timings"]["start_seconds"] >= summary["timings"]["load_seconds"] > 0
    assert summary["audio_seconds"] > 0

    (inputs / "bad.mp3").unlink()
    code, stdout, _ = invoke(*args, "--model", str(tiny_model_dir))
    summary = json.loads(stdout)
    assert code == exits.OK
    assert summary["counts"] == {
        "files": 2, "transcribed": 0, "skipped": 2, "rerendered": 0, "failed": 0,
    }  # fmt: skip
    assert summary["outputs"] == []

    # A format missing beside a current JSON is rendered from it, and listed.
    code, stdout, _ = invoke(*args[:-3], "json,txt,srt", "--json", "-q", "--model", "/absent")
    summary = json.loads(stdout)
    assert code == exits.OK
    assert summary["counts"] == {
        "files": 2, "transcribed": 0, "skipped": 0, "rerendered": 2, "failed": 0,
    }  # fmt: skip
    assert sorted(summary["outputs"]) == [str(out / "a.wav.srt"), str(out / "sub/b.mp3.srt")]


def test_json_summary_of_a_run_that_could_not_start(tmp_path: Path) -> None:
    code, stdout, _ = invoke(
        "transcribe", str(tmp_path / "absent"), "--out", str(tmp_path / "o"), "--json"
    )
    summary = json.loads(stdout)
    assert code == exits.USAGE
    assert summary["exit_code"] == exits.USAGE and summary["error"]["code"] == "not_found"
    assert "absent" in summary["error"]["message"]
