"""Subtitles and text: exact renderings of a known transcript."""

from __future__ import annotations

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
from hark_serving.transcript.writers import render


def transcript(segments: list[Segment]) -> Transcript:
    return Transcript(
        source=Source(uri="x.wav", format="wav", duration=80.0, sample_rate=16000, channels=2),
        model=ModelInfo(source="m", device="cpu", dtype="float32"),
        options=ResultOptions(language="auto", use_itn=True, timestamps="segment"),
        text="",
        segments=segments,
        summary=Summary(),
        timing=Timing(),
    )


CALL = transcript(
    [
        Segment(id=0, start=0.42, end=4.96, channel=0, emotion="NEUTRAL", text="Hello, how can I help?", raw=""),
        Segment(id=1, start=5.5, end=9.25, channel=1, emotion="ANGRY", events=["Cough"], text="My order <never> came & I want a refund.", raw=""),
        Segment(id=2, start=9.3, end=9.9, channel=1, text="", raw="<|nospeech|>"),
        Segment(id=3, start=3661.0, end=3662.5, channel=0, events=["Laughter"], text="Sorry!", raw=""),
    ]
)  # fmt: skip


def test_srt_numbers_cues_labels_channels_and_marks_emotion_and_events() -> None:
    assert render(CALL, "srt") == (
        "1\n00:00:00,420 --> 00:00:04,960\nChannel 0: Hello, how can I help?\n\n"
        "2\n00:00:05,500 --> 00:00:09,250\nChannel 1: [angry] [cough] My order <never> came & I\nwant a refund.\n\n"
        "3\n01:01:01,000 --> 01:01:02,500\nChannel 0: [laughter] Sorry!\n"
    )


def test_vtt_escapes_markup_and_uses_voice_tags() -> None:
    assert render(CALL, "vtt") == (
        "WEBVTT\n\n"
        "00:00:00.420 --> 00:00:04.960\n<v Channel 0>Hello, how can I help?\n\n"
        "00:00:05.500 --> 00:00:09.250\n<v Channel 1>[angry] [cough] My order &lt;never&gt; came &amp; I\nwant a refund.\n\n"
        "01:01:01.000 --> 01:01:02.500\n<v Channel 0>[laughter] Sorry!\n"
    )


def test_txt_is_one_line_per_spoken_segment() -> None:
    assert render(CALL, "txt") == (
        "[Channel 0] Hello, how can I help?\n"
        "[Channel 1] My order <never> came & I want a refund.\n"
        "[Channel 0] Sorry!\n"
    )


def test_long_segments_with_words_become_short_cues_at_word_boundaries() -> None:
    words = [Word(text=f"w{i}", start=i * 0.5, end=i * 0.5 + 0.4) for i in range(40)]
    seg = Segment(
        id=0, start=0.0, end=20.0, text=" ".join(w.text for w in words), raw="", words=words
    )
    srt = render(transcript([seg]), "srt")
    cues = [block.split("\n") for block in srt.strip().split("\n\n")]
    assert len(cues) > 2
    texts = " ".join(" ".join(c[2:]) for c in cues).split()
    assert texts == [w.text for w in words], "no word lost or repeated"
    for c in cues:
        start, end = c[1].split(" --> ")
        assert start < end
