"""Small hand-made transcripts for the pure parts of the HTTP layer."""

from __future__ import annotations

import pytest

from hark_serving.transcript.schema import (
    ModelInfo,
    ResultOptions,
    Segment,
    Source,
    Summary,
    Timing,
    Transcript,
    Word,
)


def make_transcript(words: bool = False) -> Transcript:
    segments = [
        Segment(
            id=0,
            start=0.5,
            end=2.25,
            language="en",
            emotion="HAPPY",
            events=["Laughter"],
            text="hello world",
            raw="<|en|><|HAPPY|><|Laughter|><|withitn|>hello world",
            words=[Word(text="hello", start=0.5, end=1.0), Word(text="world", start=1.2, end=2.2)]
            if words
            else None,
        ),
        Segment(
            id=1,
            start=3.0,
            end=4.0,
            language="nospeech",
            emotion="EMO_UNKNOWN",
            events=[],
            text="",
            raw="<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|><|withitn|>",
            words=[] if words else None,
        ),
    ]
    return Transcript(
        source=Source(
            uri="a.wav", format="wav", duration=4.5, sample_rate=16000, channels=1, bytes=10
        ),
        model=ModelInfo(source="tiny", device="cpu", dtype="float32"),
        options=ResultOptions(
            language="auto", use_itn=True, timestamps="word" if words else "segment"
        ),
        language="en",
        text="hello world",
        segments=segments,
        summary=Summary(),
        timing=Timing(),
    )


@pytest.fixture
def transcript() -> Transcript:
    return make_transcript()


@pytest.fixture
def word_transcript() -> Transcript:
    return make_transcript(words=True)
