"""The embedded engine: every format, channel layouts, words, errors that lose nothing."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from hark_serving.engine.embedded import AudioJob, Engine
from hark_serving.engine.priority import BACKGROUND
from hark_serving.options import TranscribeOptions
from hark_serving.transcript.schema import validate_result
from tests.fixtures import audio as fixtures


def job(path: Path) -> AudioJob:
    return AudioJob(uri=str(path), open=lambda: nullcontext(path), size=path.stat().st_size)


def test_every_format_and_layout_transcribes_to_a_valid_result(
    engine: Engine, audio_dir: Path, corpus: dict[str, fixtures.AudioSpec]
) -> None:
    names = fixtures.good_files()
    outcomes = {
        o.job.uri: o for o in engine.run([job(audio_dir / n) for n in names], TranscribeOptions())
    }
    assert set(outcomes) == {str(audio_dir / n) for n in names}
    for name in names:
        outcome = outcomes[str(audio_dir / name)]
        assert outcome.error is None, f"{name}: {outcome.error}"
        t = outcome.transcript
        assert t is not None
        validate_result(t.to_json_dict())
        spec = corpus[name]
        assert abs(t.source.duration - spec.duration) < 0.15, name
        assert (t.source.sample_rate, t.source.channels) == (spec.sample_rate, spec.channels)
        assert t.source.format == Path(name).suffix.lstrip(".")
        for seg in t.segments:
            assert 0 <= seg.start < seg.end <= t.source.duration + 0.05
        if name.startswith("silence"):
            assert t.segments == [] and t.summary.flags == ["no_speech"] and t.text == ""
        else:
            assert t.segments, f"{name}: speech was found"


def test_split_channels_transcribe_each_speaker_separately(engine: Engine, audio_dir: Path) -> None:
    t = engine.transcribe(
        job(audio_dir / "call_stereo_8k.wav"), TranscribeOptions(channels="split")
    )
    validate_result(t.to_json_dict())
    channels = [s.channel for s in t.segments]
    assert set(channels) == {0, 1}
    # Turns alternate: agent (0) first, then customer (1).
    assert channels[0] == 0 and 1 in channels[1:3]
    assert [s.start for s in t.segments] == sorted(s.start for s in t.segments)
    assert [s.id for s in t.segments] == list(range(len(t.segments)))


def test_word_timestamps_lie_inside_their_segment_span(engine: Engine, audio_dir: Path) -> None:
    t = engine.transcribe(
        job(audio_dir / "speech_en_16k.wav"), TranscribeOptions(timestamps="word")
    )
    words = [w for s in t.segments for w in s.words or []]
    assert words, "the random model still fires tokens"
    for seg in t.segments:
        assert seg.words is not None
        starts = [w.start for w in seg.words]
        assert starts == sorted(starts)
        for w in seg.words:
            assert w.start <= w.end <= t.source.duration + 0.1
    assert all(
        s.words is None
        for s in engine.transcribe(
            job(audio_dir / "speech_en_16k.wav"), TranscribeOptions()
        ).segments
    )


def test_broken_files_fail_by_name_and_the_rest_still_transcribe(
    engine: Engine, audio_dir: Path
) -> None:
    names = ["speech_en_16k.wav", *fixtures.broken_files(), "speech_zh_16k.wav"]
    outcomes = list(engine.run([job(audio_dir / n) for n in names], TranscribeOptions()))
    assert len(outcomes) == len(names)
    by_name = {Path(o.job.uri).name: o for o in outcomes}
    for name in fixtures.broken_files():
        err = by_name[name].error
        assert err is not None and err.code == fixtures.CORPUS[name].broken
        assert name in str(err)
    assert by_name["speech_en_16k.wav"].transcript is not None
    assert by_name["speech_zh_16k.wav"].transcript is not None


def test_a_failure_inside_the_model_fails_only_that_batchs_files(
    engine: Engine, audio_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = engine.recognizer.recognize

    def flaky(waves, requests):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(waves, requests)

    monkeypatch.setattr(engine.recognizer, "recognize", flaky)
    outcomes = list(
        engine.run(
            [job(audio_dir / "one_sentence_16k.wav"), job(audio_dir / "speech_ko_16k.wav")],
            TranscribeOptions(),
        )
    )
    errors = [o for o in outcomes if o.error is not None]
    assert errors and all(
        o.error.code == "internal" and "illegal memory" in str(o.error) for o in errors
    )  # type: ignore[union-attr]
    assert len(outcomes) == 2


def test_audio_spilled_to_disk_transcribes_exactly_as_in_memory(
    recognizer: object, audio_dir: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    from hark_serving.engine.embedded import EngineSettings
    from hark_serving.engine.pipeline import SegmentingSettings
    from hark_serving.engine.vad import SileroDetector

    spill = SegmentingSettings(spill_after_seconds=2.0, spill_dir=tmp_path)
    on_disk = Engine(recognizer, SileroDetector(), EngineSettings(segmenting=spill))  # type: ignore[arg-type]
    in_memory = Engine(
        recognizer,
        SileroDetector(),
        EngineSettings(segmenting=replace(spill, spill_after_seconds=3600)),
    )  # type: ignore[arg-type]
    for name in ("speech_en_16k.wav", "call_stereo_8k.wav"):
        opts = TranscribeOptions(channels="split" if name.startswith("call") else "mix")
        a = on_disk.transcribe(job(audio_dir / name), opts)
        b = in_memory.transcribe(job(audio_dir / name), opts)
        assert [s.model_dump() for s in a.segments] == [s.model_dump() for s in b.segments]
    assert list(tmp_path.iterdir()) == [], "spill files are gone once the file is done"


def test_files_are_prepared_on_a_background_thread_below_the_models_priority(
    engine: Engine, audio_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: list[tuple[str, int]] = []
    real = Engine._prepare_path

    def watched(self: Engine, *args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, niceness()))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "_prepare_path", watched)
    names = ["speech_en_16k.wav", "speech_zh_16k.wav"]
    outcomes = list(engine.run([job(audio_dir / n) for n in names], TranscribeOptions()))
    assert all(o.transcript is not None for o in outcomes) and len(outcomes) == 2
    assert len(seen) == 2
    assert all(name.startswith("hark-prepare") and nice == BACKGROUND for name, nice in seen)
    assert niceness() < BACKGROUND  # the caller, which runs the model, keeps its own


def test_the_model_starts_on_the_first_file_while_later_files_are_still_being_prepared(
    engine: Engine, audio_dir: Path
) -> None:
    # The second file cannot be opened until the first transcript is out: an engine
    # that waited for a fuller pool before its first batch would wait here until the
    # release times out.
    release = threading.Event()
    released: list[bool] = []

    @contextmanager
    def held_open() -> Iterator[Path]:
        released.append(release.wait(timeout=20))
        yield audio_dir / "speech_zh_16k.wav"

    first = job(audio_dir / "speech_en_16k.wav")
    held = AudioJob(uri="held.wav", open=held_open)
    outcomes = engine.run([first, held], TranscribeOptions())
    done = next(outcomes)
    assert done.job is first and done.transcript is not None and done.transcript.segments
    release.set()
    rest = list(outcomes)
    assert [o.job for o in rest] == [held] and rest[0].transcript is not None
    assert released == [True], "the first file was transcribed before the second was ready"


def test_two_files_are_prepared_at_once(engine: Engine, audio_dir: Path) -> None:
    # Decoding and VAD of one file run beside another's: on two cores, preparing
    # one file after another left a core idle before the model's first batch.
    both = threading.Barrier(2, timeout=20)
    met: list[bool] = []

    @contextmanager
    def meeting(name: str) -> Iterator[Path]:
        try:
            both.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)
        yield audio_dir / name

    names = ["speech_en_16k.wav", "speech_zh_16k.wav"]
    jobs = [AudioJob(uri=n, open=partial(meeting, n)) for n in names]
    outcomes = list(engine.run(jobs, TranscribeOptions()))
    assert sorted(o.job.uri for o in outcomes if o.transcript is not None) == names
    assert met == [True, True]


@pytest.mark.parametrize(
    "precision, segments, mode",
    [
        ("float32", "auto", "recipe"),
        ("auto", "auto", "speech"),
        ("int8", "auto", "speech"),
        ("bfloat16", "auto", "speech"),
        ("float32", "speech", "speech"),
        ("int8", "recipe", "recipe"),
    ],
)
def test_float32_keeps_the_recipes_segments_and_faster_precisions_transcribe_speech_only(
    precision: str, segments: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hark_serving.config import load_settings
    from hark_serving.engine.factory import SPEECH_PAUSE_SECONDS, segmenting, segmenting_mode

    monkeypatch.setenv("HARK_VAD_SEGMENTS", segments)
    settings = load_settings(precision=precision)
    assert segmenting_mode(settings) == mode
    pause = segmenting(settings).max_pause_seconds
    assert pause == (SPEECH_PAUSE_SECONDS if mode == "speech" else None)


def test_a_bad_segments_setting_names_the_variable_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hark_serving.config import load_settings
    from hark_serving.errors import ConfigError

    monkeypatch.setenv("HARK_VAD_SEGMENTS", "silence")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "HARK_VAD_SEGMENTS" in str(caught.value) and "'speech'" in str(caught.value)


def test_speech_only_segments_skip_the_pauses_the_recipe_transcribes(audio_dir: Path) -> None:
    from hark_serving.engine.pipeline import SegmentingSettings, prepare
    from hark_serving.engine.vad import SileroDetector

    def planned(max_pause: float | None) -> list[Any]:
        prepared = prepare(
            audio_dir / "speech_en_16k.wav",
            uri="speech_en_16k.wav",
            options=TranscribeOptions(),
            detector=SileroDetector(),
            settings=SegmentingSettings(max_pause_seconds=max_pause),
        )
        prepared.close()
        return [s.plan for s in prepared.segments]

    recipe, speech = planned(None), planned(0.5)
    span = lambda plans: sum(p.span_end_ms - p.span_start_ms for p in plans)  # noqa: E731
    # The file's sentences are 0.8 s apart: the recipe's one span holds every pause.
    assert len(speech) > len(recipe) >= 1
    assert span(speech) < span(recipe)
    assert all((p.span_start_ms, p.span_end_ms) == (p.speech_start_ms, p.speech_end_ms)
               for p in speech)  # fmt: skip
    assert (speech[0].speech_start_ms, speech[-1].speech_end_ms) == (
        recipe[0].speech_start_ms,
        recipe[-1].speech_end_ms,
    )
