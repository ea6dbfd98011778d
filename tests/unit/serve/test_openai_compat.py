"""The OpenAI transcription endpoint's request fields and response shapes."""

from __future__ import annotations

import pytest

from hark_serving.errors import InvalidOption
from hark_serving.serve.openai_compat import (
    compression_ratio,
    parse_language,
    parse_request,
    response,
)
from hark_serving.transcript.schema import Transcript

SEGMENT_KEYS = {
    "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
    "compression_ratio", "no_speech_prob",
}  # fmt: skip
EXTRA_KEYS = {"language", "emotion", "events"}


def test_defaults_are_json_with_segment_timestamps() -> None:
    req = parse_request(None, None, [])
    assert (req.language, req.response_format, req.words, req.segments) == (
        "auto",
        "json",
        False,
        True,
    )


@pytest.mark.parametrize(
    "given, expected",
    [("en", "en"), ("EN", "en"), ("zh", "zh"), ("english", "en"), ("yue", "yue"), ("", "auto")],
)
def test_languages_are_read_as_openai_clients_send_them(given: str, expected: str) -> None:
    assert parse_language(given) == expected


@pytest.mark.parametrize(
    "language, fmt, granularities",
    [("xx", "json", []), ("en", "mp3", []), ("en", "verbose_json", ["sentence"])],
)
def test_bad_fields_are_invalid_options(language: str, fmt: str, granularities: list[str]) -> None:
    with pytest.raises(InvalidOption):
        parse_request(language, fmt, granularities)


def test_json_is_just_the_text(transcript: Transcript) -> None:
    body, media = response(transcript, parse_request("en", "json", []))
    assert body == {"text": "hello world"}
    assert media == "application/json"


def test_text_srt_and_vtt_are_plain_text(transcript: Transcript) -> None:
    assert response(transcript, parse_request(None, "text", [])) == ("hello world\n", "text/plain")
    srt, _ = response(transcript, parse_request(None, "srt", []))
    assert srt.startswith("1\n00:00:00,500 --> 00:00:02,250\n")
    vtt, media = response(transcript, parse_request(None, "vtt", []))
    assert vtt.startswith("WEBVTT\n") and media == "text/vtt"


def test_verbose_json_has_openais_shape_plus_rich_fields(transcript: Transcript) -> None:
    body, _ = response(transcript, parse_request(None, "verbose_json", []))
    assert set(body) == {"task", "language", "duration", "text", "segments"}
    assert (body["task"], body["language"], body["duration"]) == ("transcribe", "english", 4.5)
    first, second = body["segments"]
    assert set(first) == SEGMENT_KEYS | EXTRA_KEYS
    assert first["seek"] == 50 and first["tokens"] == [] and first["temperature"] == 0.0
    assert (first["emotion"], first["events"]) == ("HAPPY", ["Laughter"])
    assert (first["no_speech_prob"], second["no_speech_prob"]) == (0.0, 1.0)


def test_words_come_only_when_asked_for(word_transcript: Transcript) -> None:
    words_only, _ = response(word_transcript, parse_request(None, "verbose_json", ["word"]))
    assert "segments" not in words_only
    assert words_only["words"] == [
        {"word": "hello", "start": 0.5, "end": 1.0},
        {"word": "world", "start": 1.2, "end": 2.2},
    ]
    both, _ = response(word_transcript, parse_request(None, "verbose_json", ["word", "segment"]))
    assert {"segments", "words"} <= set(both)


def test_compression_ratio_grows_with_repetition() -> None:
    assert compression_ratio("") == 0.0
    assert compression_ratio("la " * 200) > 10 > compression_ratio("a quick brown fox")
