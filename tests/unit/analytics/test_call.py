"""The call report from constructed segments: exact figures."""

from __future__ import annotations

import pytest

from hark_serving.analytics.call import build_call, dbfs, role_of, sentiment_score
from hark_serving.options import TranscribeOptions
from hark_serving.transcript.call import NonTalkInstance, Span
from hark_serving.transcript.schema import validate_result
from hark_serving.transcript.writers import to_srt, to_txt, to_vtt

from .calls import call_of, seg, transcript


def test_talk_time_counts_overlap_once_per_role_and_shares_sum_to_one() -> None:
    call = call_of(
        [seg(0, 4), seg(3, 6), seg(5, 9, "customer"), seg(12, 14, "customer")], duration=20
    )
    assert call.talk_time["agent"].seconds == 6.0
    assert call.talk_time["customer"].seconds == 6.0
    assert call.talk_time["agent"].share == 0.5
    assert call.talk_time["customer"].share == 0.5


def test_non_talk_lists_gaps_of_the_minimum_and_totals_all_gaps() -> None:
    call = call_of([seg(1, 4), seg(5, 9, "customer"), seg(12, 14, "customer")], duration=20)
    # gaps: 0-1, 4-5, 9-12, 14-20
    assert call.non_talk.total_seconds == 11.0
    assert call.non_talk.instances == [
        NonTalkInstance(start=9, end=12, hold=False),
        NonTalkInstance(start=14, end=20, hold=False),
    ]


def test_a_silence_with_background_music_is_a_hold() -> None:
    music = seg(6, 10, "customer", text="", emotion=None, events=["BGM"], language="nospeech")
    call = call_of([seg(0, 3), music, seg(12, 15, "customer")], duration=15)
    assert call.non_talk.instances == [NonTalkInstance(start=3, end=12, hold=True)]
    assert call.talk_time["customer"].seconds == 3.0


def test_interruption_is_credited_to_the_role_that_starts_while_the_other_speaks() -> None:
    call = call_of(
        [seg(0, 5), seg(4, 8, "customer"), seg(9, 12), seg(11.5, 11.8, "customer")], duration=12
    )
    assert call.interruptions.total == 2
    assert call.interruptions.by_interrupter == {
        "customer": [Span(start=4, end=5), Span(start=11.5, end=11.8)]
    }


def test_turns_merge_consecutive_segments_of_one_role() -> None:
    call = call_of(
        [seg(0, 2), seg(2.5, 4), seg(5, 7, "customer"), seg(8, 9, "customer"), seg(10, 11)],
        duration=12,
    )
    assert [(t.role, t.start, t.end, t.segments) for t in call.turns] == [
        ("agent", 0, 4, [0, 1]),
        ("customer", 5, 9, [2, 3]),
        ("agent", 10, 11, [4]),
    ]


def test_talk_speed_is_words_per_minute_for_english_and_characters_for_chinese() -> None:
    call = call_of(
        [
            seg(0, 30, text="one two three four five six seven eight nine ten"),
            seg(30, 60, "customer", text="你好 谢谢你的来电", language="zh"),
        ],
        duration=60,
    )
    assert call.talk_speed["agent"] is not None and call.talk_speed["agent"].rate == 20.0
    assert call.talk_speed["agent"].unit == "words_per_minute"
    customer = call.talk_speed["customer"]
    assert customer is not None and (customer.rate, customer.unit) == (16.0, "chars_per_minute")


def test_emotions_sentiment_by_quarter_and_end() -> None:
    call = call_of(
        [
            seg(0, 10, emotion="HAPPY"),
            seg(10, 20, "customer", emotion="NEUTRAL"),
            seg(20, 30, "customer", emotion="ANGRY"),
            seg(30, 35, "customer", emotion="SAD"),
            seg(36, 40, "customer", emotion="EMO_UNKNOWN"),
        ],
        duration=40,
    )
    assert call.emotions["customer"] == {"ANGRY": 10, "EMO_UNKNOWN": 4, "NEUTRAL": 10, "SAD": 5}
    s = call.sentiment["customer"]
    assert s.overall == -0.6  # (0*10 - 10 - 5) / 25
    assert s.by_quarter == [None, 0.0, -1.0, -1.0]
    assert s.end == -0.6  # the customer's last turn is 10-40: the same segments as overall
    assert s.end_emotion == "EMO_UNKNOWN"
    assert call.sentiment["agent"].overall == 1.0
    assert sentiment_score([]) is None


def test_events_carry_role_and_times() -> None:
    call = call_of([seg(0, 2, events=["Laughter"]), seg(3, 4, "customer", events=["Cough"])], 5)
    assert [(e.type, e.role, e.start, e.end) for e in call.events] == [
        ("Laughter", "agent", 0, 2),
        ("Cough", "customer", 3, 4),
    ]


def test_loudness_per_turn_and_role_from_segment_power() -> None:
    call = call_of(
        [seg(0, 1), seg(1.5, 2.5), seg(3, 4, "customer")], 5, powers={0: 0.01, 1: 0.0001, 2: 0.0}
    )
    assert call.turns[0].loudness_dbfs == dbfs(0.00505) == -23.0
    assert call.loudness == {"agent": -23.0, "customer": -100.0}
    assert dbfs(1.0) == 0.0


def test_mono_call_has_one_role_and_no_interruptions() -> None:
    segs = [seg(0, 2), seg(1, 3)]
    for s in segs:
        s.channel, s.role = None, "speaker"
    call = build_call(segs, 4, {"0": "speaker"})
    assert list(call.talk_time) == ["speaker"]
    assert call.interruptions.total == 0


def test_roles_default_to_agent_and_customer_and_follow_the_option() -> None:
    assert [role_of(c, None) for c in (0, 1, 2)] == ["agent", "customer", "channel2"]
    assert role_of(None, None) == "speaker"
    roles = TranscribeOptions(channels="split", roles="Customer,agent").roles  # type: ignore[arg-type]
    assert roles == ("customer", "agent")
    assert role_of(0, roles) == "customer"


@pytest.mark.parametrize("bad", ["agent,agent", "1st", "agent,cust omer"])
def test_bad_roles_are_refused_with_the_name(bad: str) -> None:
    with pytest.raises(ValueError, match="role"):
        TranscribeOptions(roles=bad)  # type: ignore[arg-type]


def test_transcript_with_a_call_matches_the_schema_and_subtitles_name_roles() -> None:
    t = transcript([seg(0, 2, text="Hello"), seg(2.5, 4, "customer", text="Hi")], 5)
    validate_result(t.to_json_dict())
    assert "<v Agent>Hello" in to_vtt(t)
    assert "Customer: Hi" in to_srt(t)
    assert to_txt(t) == "[Agent] Hello\n[Customer] Hi\n"
