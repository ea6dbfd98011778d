"""File-level figures and flags from segments."""

from __future__ import annotations

from hark_serving.transcript.schema import Segment
from hark_serving.transcript.summary import summarize


def seg(i: int, start: float, end: float, **kw: object) -> Segment:
    fields: dict[str, object] = {"language": "en", "emotion": "NEUTRAL", "text": "words", "raw": ""}
    fields.update(kw)
    return Segment(id=i, start=start, end=end, **fields)  # type: ignore[arg-type]


def test_it_totals_seconds_per_language_and_emotion_and_counts_events() -> None:
    s = summarize(
        [
            seg(0, 0, 2, emotion="HAPPY", events=["Laughter"]),
            seg(1, 2, 5, language="zh", events=["Laughter", "BGM"]),
            seg(2, 5, 6, language="nospeech", emotion=None, text=""),
        ]
    )
    assert s.speech_seconds == 5.0
    assert s.languages == {"en": 2.0, "nospeech": 1.0, "zh": 3.0}
    assert s.emotions == {"HAPPY": 2.0, "NEUTRAL": 3.0}
    assert s.events == {"BGM": 1, "Laughter": 2}
    assert s.flags == ["mixed_language"]  # BGM on 1 of 3 segments is not "background music"


def test_three_consecutive_angry_segments_raise_sustained_anger() -> None:
    angry = [seg(i, i, i + 1, emotion="ANGRY") for i in range(3)]
    assert summarize(angry).flags == ["sustained_anger"]
    broken_run = [*angry[:2], seg(2, 2, 3), seg(3, 3, 4, emotion="ANGRY")]
    assert summarize(broken_run).flags == []


def test_runs_are_counted_per_channel() -> None:
    # Agent and customer interleave; only the customer stays angry.
    segments = []
    for i in range(3):
        segments.append(seg(2 * i, 2 * i, 2 * i + 1, channel=0))
        segments.append(seg(2 * i + 1, 2 * i + 1, 2 * i + 2, channel=1, emotion="ANGRY"))
    assert summarize(segments).flags == ["sustained_anger"]


def test_silence_is_flagged_no_speech() -> None:
    assert summarize([]).flags == ["no_speech"]
    assert summarize([]).speech_seconds == 0.0
