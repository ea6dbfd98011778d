"""Constructed call transcripts for the analytics unit tests."""

from __future__ import annotations

from hark_serving.analytics.call import build_call
from hark_serving.transcript.call import Call
from hark_serving.transcript.schema import (
    ModelInfo,
    ResultOptions,
    Segment,
    Source,
    Summary,
    Timing,
    Transcript,
)

ROLES = {"0": "agent", "1": "customer"}


def seg(
    start: float,
    end: float,
    role: str = "agent",
    text: str = "hello there",
    emotion: str | None = "NEUTRAL",
    events: list[str] | None = None,
    language: str = "en",
) -> Segment:
    channel = 0 if role == "agent" else 1
    return Segment(
        id=0, start=start, end=end, channel=channel, role=role, language=language,
        emotion=emotion, events=events or [], text=text, raw=text,
    )  # fmt: skip


def numbered(segments: list[Segment]) -> list[Segment]:
    ordered = sorted(segments, key=lambda s: (s.start, s.channel or 0))
    for i, s in enumerate(ordered):
        s.id = i
    return ordered


def call_of(segments: list[Segment], duration: float, **kw: object) -> Call:
    return build_call(numbered(segments), duration, ROLES, **kw)  # type: ignore[arg-type]


def transcript(
    segments: list[Segment], duration: float, uri: str = "file:///calls/a.wav"
) -> Transcript:
    segs = numbered(segments)
    return Transcript(
        source=Source(uri=uri, format="wav", duration=duration, sample_rate=8000, channels=2),
        model=ModelInfo(source="test", device="cpu", dtype="float32"),
        options=ResultOptions(
            language="auto", use_itn=True, timestamps="segment", channels="split"
        ),
        language="en",
        text=" ".join(s.text for s in segs),
        segments=segs,
        summary=Summary(),
        timing=Timing(),
        call=build_call(segs, duration, ROLES),
    )
