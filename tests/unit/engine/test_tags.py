"""Reading SenseVoice's tags: exact results for the shapes the model emits, and for junk."""

from __future__ import annotations

import pytest

from hark_serving.transcript.tags import parse_rich_text


def test_it_reads_the_four_leading_tags_of_a_real_output() -> None:
    p = parse_rich_text("<|zh|><|HAPPY|><|Laughter|><|withitn|>今天天气很好。")
    assert (p.language, p.emotion, p.events, p.itn, p.text) == (
        "zh", "HAPPY", ("Laughter",), True, "今天天气很好。"
    )  # fmt: skip
    assert p.unknown_tags == ()


def test_speech_is_the_default_event_and_not_listed() -> None:
    p = parse_rich_text("<|en|><|NEUTRAL|><|Speech|><|woitn|>hello there")
    assert p.events == ()
    assert p.itn is False
    assert p.text == "hello there"


def test_unknown_tags_are_kept_aside_and_never_break_parsing() -> None:
    p = parse_rich_text("<|ko|><|Sing|><|SAD|><|BGM|><|/BGM|><|withitn|>노래")
    assert (p.language, p.emotion, p.events) == ("ko", "SAD", ("BGM",))
    assert p.unknown_tags == ("Sing", "/BGM")
    assert p.text == "노래"


def test_first_language_and_emotion_win_and_events_do_not_repeat() -> None:
    p = parse_rich_text("<|en|>a<|ANGRY|>b<|zh|><|HAPPY|><|Cough|>c<|Cough|><|Applause|>")
    assert (p.language, p.emotion, p.events) == ("en", "ANGRY", ("Cough", "Applause"))
    assert p.text == "a b c"


@pytest.mark.parametrize(
    "raw, text",
    [
        ("", ""),
        ("plain words", "plain words"),
        ("<|", "<|"),
        ("<||>", "<||>"),
        ("a <|not a tag", "a <|not a tag"),
        ("<|nospeech|><|EMO_UNKNOWN|><|Event_UNK|><|woitn|>", ""),
        ("x<|" + "A" * 200 + "|>y", "x<|" + "A" * 200 + "|>y"),
    ],
)
def test_odd_inputs_give_clean_text_without_errors(raw: str, text: str) -> None:
    assert parse_rich_text(raw).text == text
