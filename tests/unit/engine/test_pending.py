"""The model loads on a thread while a run starts: every use waits, a failed load ends the run."""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hark_serving.cli import exits
from hark_serving.cli.main import app
from hark_serving.engine.embedded import AudioJob, Engine, EngineSettings, Recognizer
from hark_serving.engine.pending import PendingRecognizer
from hark_serving.engine.sensevoice import SenseVoice
from hark_serving.engine.vad import SileroDetector
from hark_serving.errors import ModelError
from hark_serving.options import TranscribeOptions


def job(path: Path) -> AudioJob:
    return AudioJob(uri=str(path), open=lambda: nullcontext(path), size=path.stat().st_size)


def test_files_are_prepared_while_the_model_loads_and_wait_for_it(
    recognizer: SenseVoice, audio_dir: Path
) -> None:
    release = threading.Event()
    prepared: list[str] = []
    detector = SileroDetector()

    class Watching:
        name = "silero"

        def detect(self, samples):  # type: ignore[no-untyped-def]
            prepared.append("vad")
            return detector.detect(samples)

    def load() -> Recognizer:
        assert release.wait(60)
        return recognizer

    pending = PendingRecognizer(load, clock=time.perf_counter)
    engine = Engine(pending, Watching(), EngineSettings())  # type: ignore[arg-type]
    files = [audio_dir / "one_sentence_16k.wav", audio_dir / "speech_en_16k.wav"]
    outcomes = engine.run([job(f) for f in files], TranscribeOptions())
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.extend(outcomes))
    reader.start()
    deadline = time.monotonic() + 60
    while len(prepared) < 2 and time.monotonic() < deadline:  # both files cut, model not loaded
        time.sleep(0.05)
    assert prepared == ["vad", "vad"] and not got and pending.ready_at is None
    release.set()
    reader.join(120)
    assert [o.transcript is not None for o in got] == [True, True]  # type: ignore[attr-defined]
    assert pending.ready_at is not None and pending.load_seconds is not None


def test_a_load_that_fails_ends_the_run_with_its_error_not_a_failure_per_file(
    audio_dir: Path,
) -> None:
    def load() -> Recognizer:
        raise ModelError("no such model here; set HARK_MODEL")

    engine = Engine(PendingRecognizer(load, clock=time.perf_counter), SileroDetector())
    files = [audio_dir / "one_sentence_16k.wav", audio_dir / "silence_10s.wav"]
    with pytest.raises(ModelError, match="no such model here"):
        list(engine.run([job(f) for f in files], TranscribeOptions()))


def test_hark_transcribe_with_a_model_that_fails_to_load_writes_nothing_and_exits_3(
    tmp_path: Path, audio_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARK_MODEL_CACHE", str(tmp_path / "cache"))
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "config.yaml").write_text("model: SenseVoiceSmall\n")  # no weights, no tokens
    out = tmp_path / "out"
    args = ["transcribe", str(audio_dir / "one_sentence_16k.wav"), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--model", str(broken), "--quiet"])
    assert result.exit_code == exits.MODEL, result.output
    assert "model.pt" in result.output
    assert not out.exists() or not list(out.rglob("*.json"))  # no transcript, no error record
