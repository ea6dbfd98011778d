"""Hark's transcripts equal what funasr gives for the same audio, byte for byte."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hark_serving.engine.audio import decode_audio
from hark_serving.engine.embedded import AudioJob, Engine, EngineSettings
from hark_serving.engine.recognition import DecodeRequest
from hark_serving.engine.sensevoice import SenseVoice
from hark_serving.engine.vad import SileroDetector, WholeFileDetector, plan_segments
from hark_serving.options import TranscribeOptions
from hark_serving.transcript.schema import Transcript

# 16 kHz mono WAV under 30 s: funasr reads them to the same samples Hark decodes.
SHORT_WAVS = [
    "speech_en_16k.wav", "speech_zh_16k.wav", "speech_ja_16k.wav", "speech_ko_16k.wav",
    "speech_yue_16k.wav", "one_sentence_16k.wav", "silence_10s.wav",
]  # fmt: skip


def job(path: Path) -> AudioJob:
    return AudioJob(uri=str(path), open=lambda: nullcontext(path))


def transcribe(engine: Engine, path: Path, options: TranscribeOptions) -> Transcript:
    return engine.transcribe(job(path), options)


@pytest.mark.parametrize("name", SHORT_WAVS)
@pytest.mark.parametrize(
    "language, use_itn", [("auto", True), ("auto", False), ("en", True), ("zh", False)]
)
def test_without_vad_the_text_equals_funasr_automodel(
    name: str,
    language: str,
    use_itn: bool,
    recognizer: SenseVoice,
    funasr_reference: Any,
    audio_dir: Path,
) -> None:
    engine = Engine(recognizer, WholeFileDetector())
    options = TranscribeOptions(language=language, use_itn=use_itn)  # type: ignore[arg-type]
    result = transcribe(engine, audio_dir / name, options)
    expected = funasr_reference.generate(
        input=str(audio_dir / name), language=language, use_itn=use_itn
    )[0]["text"]
    assert "".join(s.raw for s in result.segments) == expected


@pytest.mark.parametrize("name", ["speech_en_16k.wav", "speech_zh_16k.wav", "call_stereo_8k.wav"])
def test_with_vad_each_segment_equals_funasr_on_that_segments_samples(
    name: str, recognizer: SenseVoice, funasr_reference: Any, audio_dir: Path
) -> None:
    engine = Engine(recognizer, SileroDetector())
    result = transcribe(engine, audio_dir / name, TranscribeOptions())
    with decode_audio(audio_dir / name) as decoded:
        samples = decoded.channels[0]
        plans = plan_segments(
            SileroDetector().detect(samples), merge_seconds=15, max_segment_seconds=30
        )
        assert len(plans) == len(result.segments) > 0
        for plan, segment in zip(plans, result.segments, strict=True):
            expected = funasr_reference.generate(
                input=plan.samples(samples), language="auto", use_itn=True
            )[0]["text"]
            assert segment.raw == expected
            assert (segment.start, segment.end) == (
                plan.speech_start_ms / 1000,
                plan.speech_end_ms / 1000,
            )


def test_a_batch_gives_each_segment_what_it_gets_alone(
    recognizer: SenseVoice, audio_dir: Path
) -> None:
    with decode_audio(audio_dir / "speech_en_16k.wav") as decoded:
        audio = decoded.channels[0]
        waves = [
            np.ascontiguousarray(audio[i * 8000 : i * 8000 + 16000 * (1 + i % 5)])
            for i in range(12)
        ]
    requests = [
        DecodeRequest(language=("auto", "en", "zh")[i % 3], use_itn=i % 2 == 0) for i in range(12)
    ]
    batched = recognizer.recognize(waves, requests)
    alone = [recognizer.recognize([w], [r])[0] for w, r in zip(waves, requests, strict=True)]
    assert batched == alone


def test_cross_file_batching_does_not_change_any_transcript(
    recognizer: SenseVoice, audio_dir: Path
) -> None:
    names = ["speech_en_16k.wav", "speech_zh_16k.wav", "speech_en.mp3", "call_stereo_8k.wav"]
    one_at_a_time = Engine(
        recognizer, SileroDetector(), EngineSettings(batch_frames=1, max_batch_segments=1)
    )
    batched = Engine(recognizer, SileroDetector(), EngineSettings(batch_frames=20000))
    opts = TranscribeOptions()
    alone = {n: transcribe(one_at_a_time, audio_dir / n, opts) for n in names}
    together = {
        o.job.uri: o.transcript for o in batched.run([job(audio_dir / n) for n in names], opts)
    }
    for n in names:
        got = together[str(audio_dir / n)]
        assert got is not None
        assert [s.raw for s in got.segments] == [s.raw for s in alone[n].segments]


def test_the_same_audio_gives_the_same_transcript_byte_for_byte(
    engine: Engine, audio_dir: Path
) -> None:
    def stable(t: Transcript) -> dict[str, Any]:
        doc = t.to_json_dict()
        doc.pop("timing"), doc.pop("created_at")
        return doc

    opts = TranscribeOptions(timestamps="word")
    first = transcribe(engine, audio_dir / "speech_en.m4a", opts)
    second = transcribe(engine, audio_dir / "speech_en.m4a", opts)
    assert stable(first) == stable(second)
