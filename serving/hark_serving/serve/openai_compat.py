"""OpenAI `POST /v1/audio/transcriptions`: its request fields in, its response shapes out.

Clients written for OpenAI's API (the official SDKs, LangChain, ...) work
unchanged. What SenseVoice does not produce is filled the way Whisper-style
servers do: `tokens` are empty, `avg_logprob` and `temperature` are 0,
`no_speech_prob` is 1 for segments the model tags as no speech, and
`compression_ratio` is computed from the text as Whisper computes it.
`verbose_json` segments also carry Hark's `emotion` and `events` (and `role`), and with
split channels (the `channels` and `roles` form fields, Hark's own) the `call` report.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Literal

from hark_serving.errors import InvalidOption
from hark_serving.options import LANGUAGES
from hark_serving.transcript.schema import Segment, Transcript
from hark_serving.transcript.writers import render

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
RESPONSE_FORMATS: tuple[str, ...] = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("word", "segment")

# Whisper reports the language by name.
LANGUAGE_NAMES = {
    "zh": "chinese",
    "en": "english",
    "yue": "cantonese",
    "ja": "japanese",
    "ko": "korean",
}
# Names and ISO codes clients send for the languages SenseVoice knows.
_LANGUAGE_ALIASES = {name: code for code, name in LANGUAGE_NAMES.items()} | {
    "zh-cn": "zh",
    "cmn": "zh",
    "mandarin": "zh",
    "jp": "ja",
}


@dataclass(frozen=True)
class OpenAIRequest:
    language: str
    response_format: ResponseFormat
    words: bool
    segments: bool


def parse_language(value: str | None) -> str:
    """OpenAI's optional ISO-639-1 `language` → a SenseVoice language (`auto` if unset)."""
    lang = (value or "").strip().lower()
    if not lang:
        return "auto"
    lang = _LANGUAGE_ALIASES.get(lang, lang)
    if lang not in LANGUAGES:
        raise InvalidOption(
            f"unknown language {value!r}; SenseVoice knows {', '.join(LANGUAGES)}",
            subject="language",
        )
    return lang


def parse_request(
    language: str | None, response_format: str | None, granularities: list[str]
) -> OpenAIRequest:
    fmt = (response_format or "json").strip().lower()
    if fmt not in RESPONSE_FORMATS:
        raise InvalidOption(
            f"unknown response_format {response_format!r}; choose from "
            f"{', '.join(RESPONSE_FORMATS)}",
            subject="response_format",
        )
    wanted = {g.strip().lower() for g in granularities if g.strip()}
    unknown = wanted - set(GRANULARITIES)
    if unknown:
        raise InvalidOption(
            f"unknown timestamp granularity {', '.join(sorted(unknown))}; choose from word, segment",
            subject="timestamp_granularities[]",
        )
    # As OpenAI does: segments by default, words only when asked for.
    return OpenAIRequest(
        language=parse_language(language),
        response_format=fmt,  # type: ignore[arg-type]
        words="word" in wanted,
        segments="segment" in wanted or not wanted,
    )


def compression_ratio(text: str) -> float:
    """Whisper's repetition signal: bytes over zlib-compressed bytes."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return round(len(data) / len(zlib.compress(data)), 4)


def _segment(seg: Segment) -> dict[str, Any]:
    return {
        "id": seg.id,
        "seek": round(seg.start * 100),  # Whisper counts seek in 10 ms frames
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": compression_ratio(seg.text),
        "no_speech_prob": 1.0 if seg.language == "nospeech" else 0.0,
        "language": seg.language,
        "emotion": seg.emotion,
        "events": list(seg.events),
        **({"role": seg.role} if seg.role else {}),
    }


def language_name(transcript: Transcript) -> str:
    code = transcript.language or transcript.options.language
    return LANGUAGE_NAMES.get(code, code if code != "auto" else "unknown")


def verbose_json(transcript: Transcript, request: OpenAIRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": language_name(transcript),
        "duration": transcript.source.duration,
        "text": transcript.text,
    }
    if request.segments:
        body["segments"] = [_segment(s) for s in transcript.segments]
    if request.words:
        body["words"] = [
            {"word": w.text, "start": w.start, "end": w.end}
            for s in transcript.segments
            for w in (s.words or [])
        ]
    if transcript.call is not None:
        # Split channels: the call report, as in hark.transcript/v1.
        body["call"] = transcript.call.model_dump(mode="json")
    return body


def response(transcript: Transcript, request: OpenAIRequest) -> tuple[Any, str]:
    """(body, media type): a dict for the JSON formats, text for the others."""
    fmt = request.response_format
    if fmt == "json":
        return {"text": transcript.text}, "application/json"
    if fmt == "verbose_json":
        return verbose_json(transcript, request), "application/json"
    if fmt == "text":
        return transcript.text + "\n" if transcript.text else "", "text/plain"
    if fmt == "srt":
        return render(transcript, "srt"), "application/x-subrip"
    return render(transcript, "vtt"), "text/vtt"
