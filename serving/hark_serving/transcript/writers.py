"""Render a transcript as json, srt, vtt or txt.

Subtitles carry what makes the transcript rich in a form a viewer reads at a
glance: sound events as `[laughter]`, a non-neutral emotion as `[angry]`, and
with split channels the channel as a speaker label. With word timestamps, long
segments become several short cues cut at word boundaries.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from hark_serving.transcript.schema import Segment, Transcript

LINE_CHARS = 42
CUE_SECONDS = 7.0
QUIET_EMOTIONS = frozenset({"NEUTRAL", "EMO_UNKNOWN"})


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def markers(segment: Segment) -> str:
    parts = [f"[{e.lower()}]" for e in segment.events]
    if segment.emotion and segment.emotion not in QUIET_EMOTIONS:
        parts.insert(0, f"[{segment.emotion.lower()}]")
    return " ".join(parts)


def _speaker(segment: Segment) -> str:
    if segment.role:
        return segment.role.replace("_", " ").replace("-", " ").title()
    return f"Channel {segment.channel}" if segment.channel is not None else ""


def cues(segment: Segment) -> list[Cue]:
    """One segment → subtitle cues, split at words when the segment is long."""
    if not segment.text:
        return []
    words = segment.words or []
    too_long = segment.end - segment.start > CUE_SECONDS or len(segment.text) > 2 * LINE_CHARS
    if not words or not too_long:
        return [Cue(segment.start, segment.end, segment.text)]
    out: list[Cue] = []
    chunk: list[str] = []
    start = words[0].start
    for i, word in enumerate(words):
        chunk.append(word.text)
        last = i == len(words) - 1
        if last or (
            words[i + 1].end - start > CUE_SECONDS or len(" ".join(chunk)) >= 2 * LINE_CHARS - 8
        ):
            out.append(Cue(start, word.end, " ".join(chunk)))
            chunk = []
            if not last:
                start = words[i + 1].start
    return out


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, LINE_CHARS, break_long_words=False)) or text


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _subtitle_lines(transcript: Transcript) -> list[tuple[Cue, Segment]]:
    items = [(cue, seg) for seg in transcript.segments for cue in cues(seg)]
    return sorted(items, key=lambda item: (item[0].start, item[1].channel or 0))


def _cue_text(cue: Cue, seg: Segment, first: bool) -> str:
    mark = markers(seg) if first else ""
    return _wrap(f"{mark} {cue.text}".strip())


def to_srt(transcript: Transcript) -> str:
    blocks = []
    seen: set[int] = set()
    for n, (cue, seg) in enumerate(_subtitle_lines(transcript), start=1):
        text = _cue_text(cue, seg, seg.id not in seen)
        seen.add(seg.id)
        if _speaker(seg):
            text = f"{_speaker(seg)}: {text}"
        blocks.append(f"{n}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n{text}\n")
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: Transcript) -> str:
    blocks = ["WEBVTT\n"]
    seen: set[int] = set()
    for cue, seg in _subtitle_lines(transcript):
        text = _vtt_escape(_cue_text(cue, seg, seg.id not in seen))
        seen.add(seg.id)
        if _speaker(seg):
            text = f"<v {_speaker(seg)}>{text}"
        blocks.append(f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n{text}\n")
    return "\n".join(blocks)


def to_txt(transcript: Transcript) -> str:
    lines = []
    for seg in sorted(transcript.segments, key=lambda s: (s.start, s.channel or 0)):
        if seg.text:
            lines.append(f"[{_speaker(seg)}] {seg.text}" if _speaker(seg) else seg.text)
    return "\n".join(lines) + ("\n" if lines else "")


def to_json(transcript: Transcript) -> str:
    return transcript.to_json()


RENDERERS: dict[str, Callable[[Transcript], str]] = {
    "json": to_json,
    "srt": to_srt,
    "vtt": to_vtt,
    "txt": to_txt,
}

CONTENT_TYPES = {
    "json": "application/json",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "txt": "text/plain",
}


def render(transcript: Transcript, fmt: str) -> str:
    return RENDERERS[fmt](transcript)
