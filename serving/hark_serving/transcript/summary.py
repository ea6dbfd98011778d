"""File-level figures and flags computed from a transcript's segments."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from hark_serving.transcript.schema import Segment, Summary

# A run of this many consecutive segments with one emotion raises a flag.
SUSTAINED_RUN = 3
SUSTAINED_FLAGS = {"ANGRY": "sustained_anger", "SAD": "sustained_sadness"}
# A second language is worth flagging once it holds this share of the speech.
MIXED_LANGUAGE_SHARE = 0.2
# Background music on at least this share of segments.
MUSIC_SHARE = 0.5


def _seconds(segment: Segment) -> float:
    return max(0.0, segment.end - segment.start)


def summarize(segments: Sequence[Segment]) -> Summary:
    languages: dict[str, float] = defaultdict(float)
    emotions: dict[str, float] = defaultdict(float)
    events: Counter[str] = Counter()
    speech = 0.0
    for seg in segments:
        seconds = _seconds(seg)
        if seg.language != "nospeech":
            speech += seconds
        if seg.language:
            languages[seg.language] += seconds
        if seg.emotion:
            emotions[seg.emotion] += seconds
        events.update(seg.events)
    return Summary(
        speech_seconds=round(speech, 3),
        languages={k: round(v, 3) for k, v in sorted(languages.items())},
        emotions={k: round(v, 3) for k, v in sorted(emotions.items())},
        events=dict(sorted(events.items())),
        flags=flags(segments, speech, languages),
    )


def _by_channel(segments: Iterable[Segment]) -> dict[int | None, list[Segment]]:
    channels: dict[int | None, list[Segment]] = defaultdict(list)
    for seg in segments:
        channels[seg.channel].append(seg)
    return channels


def flags(
    segments: Sequence[Segment], speech_seconds: float, languages: dict[str, float]
) -> list[str]:
    raised: set[str] = set()
    if not any(s.language != "nospeech" and s.text for s in segments):
        raised.add("no_speech")
    for channel_segments in _by_channel(segments).values():
        ordered = sorted(channel_segments, key=lambda s: s.start)
        run_emotion, run = None, 0
        for seg in ordered:
            run = run + 1 if seg.emotion == run_emotion else 1
            run_emotion = seg.emotion
            if run >= SUSTAINED_RUN and run_emotion in SUSTAINED_FLAGS:
                raised.add(SUSTAINED_FLAGS[run_emotion])
    spoken = {k: v for k, v in languages.items() if k != "nospeech"}
    if (
        speech_seconds > 0
        and sum(v / speech_seconds >= MIXED_LANGUAGE_SHARE for v in spoken.values()) > 1
    ):
        raised.add("mixed_language")
    if segments and sum("BGM" in s.events for s in segments) / len(segments) >= MUSIC_SHARE:
        raised.add("background_music")
    return sorted(raised)
