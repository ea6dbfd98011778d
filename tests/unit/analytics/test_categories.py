"""The category engine on constructed transcripts: exact matches and points, and bad rules."""

from __future__ import annotations

from typing import Any

import pytest

from hark_serving.analytics.categories import categorize, match
from hark_serving.analytics.rules import load_rules, parse_rules
from hark_serving.errors import InvalidOption
from hark_serving.transcript.schema import Segment, validate_result

from .calls import numbered, seg, transcript

DURATION = 100.0


def call_segments() -> list[Segment]:
    """A 100 s call: greeting, a complaint, an interruption, a long silence, an angry end."""
    return numbered(
        [
            seg(0, 5, text="Hello, thank you for calling.", emotion="HAPPY"),
            seg(6, 12, "customer", text="My order never arrived.", emotion="NEUTRAL"),
            seg(11, 16, text="I'm sorry to hear that.", emotion="NEUTRAL"),  # agent interrupts
            seg(30, 40, "customer", text="Order 456, please check.", emotion="SAD"),
            seg(41, 43, "customer", text="", emotion=None, events=["Cough"], language="nospeech"),
            seg(45, 50, text="One moment", emotion="NEUTRAL", events=["Laughter"]),
            seg(85, 95, "customer", text="This is unacceptable, cancel it", emotion="ANGRY"),
            seg(96, 99, "customer", text="cancel", emotion="ANGRY", events=["Cough"]),
        ]
    )


def run(*filters: dict[str, Any], combine: str = "all") -> list[tuple[float, float]] | None:
    rules = load_rules([{"name": "c", combine: list(filters)}])
    found = match(rules, call_segments(), DURATION)
    if "c" not in found.matched:
        return None
    return [(p.start, p.end) for p in found.details["c"].points]


def test_keyword_phrase_matches_whole_words_case_insensitively_in_the_role() -> None:
    assert run({"keyword": {"phrases": ["sorry"]}}) == [(11, 16)]
    assert run({"keyword": {"phrases": ["Sorry"], "role": "customer"}}) is None
    assert run({"keyword": {"phrases": ["order"]}}) == [(6, 12), (30, 40)]
    assert run({"keyword": {"phrases": ["ord"]}}) is None  # not a word
    assert run({"keyword": {"phrases": ["Order"], "ignore_case": False}}) == [(30, 40)]


def test_keyword_regex() -> None:
    assert run({"keyword": {"regex": r"\b\d{3}\b"}}) == [(30, 40)]
    assert run({"keyword": {"regex": "cancel"}}) == [(85, 95), (96, 99)]


def test_emotion_set_with_minimum_seconds_or_share() -> None:
    assert run({"emotion": {"in": ["ANGRY"], "role": "customer"}}) == [(85, 95), (96, 99)]
    assert run({"emotion": {"in": ["ANGRY"], "min_seconds": 13}}) == [(85, 95), (96, 99)]
    assert run({"emotion": {"in": ["ANGRY"], "min_seconds": 13.5}}) is None
    # customer talk: 6 + 10 + 10 + 3 = 29 s; angry 13 s (share 0.448), angry or sad 23 s (0.793)
    assert run({"emotion": {"in": ["ANGRY", "SAD"], "role": "customer", "min_share": 0.8}}) is None
    assert run({"emotion": {"in": ["ANGRY", "SAD"], "role": "customer", "min_share": 0.79}}) == [
        (30, 40),
        (85, 95),
        (96, 99),
    ]
    assert run({"emotion": {"in": ["ANGRY"], "role": "customer", "min_share": 0.45}}) is None
    assert run({"emotion": {"in": ["FEARFUL"]}}) is None


def test_event_type_and_minimum_count_including_non_speech_segments() -> None:
    assert run({"event": {"type": "Cough"}}) == [(41, 43), (96, 99)]
    assert run({"event": {"type": "Cough", "min_count": 3}}) is None
    assert run({"event": {"type": "Laughter", "role": "agent"}}) == [(45, 50)]
    assert run({"event": {"type": "Laughter", "role": "customer"}}) is None


def test_non_talk_minimum_seconds() -> None:
    # Gaps in which nobody talks: 5-6, 16-30, 40-45, 50-85, 95-96, 99-100.
    assert run({"non_talk": {"min_seconds": 14}}) == [(16, 30), (50, 85)]
    assert run({"non_talk": {"min_seconds": 36}}) is None


def test_interruption_count_or_seconds_by_interrupter() -> None:
    assert run({"interruption": {"min_count": 1}}) == [(11, 12)]
    assert run({"interruption": {"min_count": 1, "role": "agent"}}) == [(11, 12)]
    assert run({"interruption": {"min_count": 1, "role": "customer"}}) is None
    assert run({"interruption": {"min_seconds": 1}}) == [(11, 12)]
    assert run({"interruption": {"min_seconds": 1.5}}) is None
    assert run({"interruption": {"min_count": 2}}) is None


def test_talk_speed_above_and_below() -> None:
    # agent: "Hello, thank you for calling." 5 words, "I'm sorry to hear that." 5,
    # "One moment" 2 → 12 words in 15 s → 48 wpm
    assert run({"talk_speed": {"role": "agent", "above": 47}}) == [(0, 5), (11, 16), (45, 50)]
    assert run({"talk_speed": {"role": "agent", "above": 48}}) is None
    assert run({"talk_speed": {"role": "agent", "below": 49}}) is not None
    assert run({"talk_speed": {"role": "agent", "above": 40, "below": 47}}) is None
    # In the first 20 s: 10 words in 10 s → 60 wpm.
    assert run({"talk_speed": {"role": "agent", "above": 59, "window": {"first_seconds": 20}}})


def test_sentiment_above_and_below() -> None:
    # customer: NEUTRAL 6 s (0), SAD 10 s (-1), ANGRY 13 s (-1) → -23/29 = -0.793
    assert run({"sentiment": {"role": "customer", "below": -0.7}}) is not None
    assert run({"sentiment": {"role": "customer", "below": -0.8}}) is None
    assert run({"sentiment": {"role": "agent", "above": 0.3}}) == [(0, 5), (11, 16), (45, 50)]
    assert run({"sentiment": {"role": "agent", "above": 0.4}}) is None  # 5/16 = 0.3125


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({"first_seconds": 20}, [(6, 12)]),
        ({"last_seconds": 20}, [(85, 95)]),
        ({"first_percent": 35}, [(6, 12), (30, 35)]),
        ({"last_percent": 10}, [(90, 95)]),
        ({"from_percent": 20, "to_percent": 90}, [(30, 40), (85, 90)]),
        ({"from_percent": 96}, []),
    ],
)
def test_windows_clip_what_a_filter_sees(window: dict[str, float], expected: list[Any]) -> None:
    got = run({"keyword": {"regex": "order|unacceptable", "window": window}})
    assert got == (expected or None)


def test_window_changes_what_counts_not_only_the_points() -> None:
    # Only 5 s of the 13 s of anger lie in the last 10 s (90-95 and 96-99: 5+3 = 8).
    assert run(
        {"emotion": {"in": ["ANGRY"], "min_seconds": 8, "window": {"last_seconds": 10}}}
    ) == [
        (90, 95),
        (96, 99),
    ]
    assert (
        run({"emotion": {"in": ["ANGRY"], "min_seconds": 8.5, "window": {"last_seconds": 10}}})
        is None
    )


def test_negate_inverts_the_match_and_gives_no_points() -> None:
    assert run({"keyword": {"phrases": ["refund"], "negate": True}}) == []
    assert run({"keyword": {"phrases": ["sorry"], "negate": True}}) is None
    assert run(
        {"emotion": {"in": ["ANGRY"], "role": "customer", "window": {"last_percent": 20}}},
        {
            "keyword": {
                "role": "agent",
                "phrases": ["sorry"],
                "negate": True,
                "window": {"last_percent": 20},
            }
        },
    ) == [(85, 95), (96, 99)]


def test_all_needs_every_filter_and_any_needs_one() -> None:
    sorry = {"keyword": {"phrases": ["sorry"]}}
    refund = {"keyword": {"phrases": ["refund"]}}
    assert run(sorry, refund) is None
    assert run(sorry, refund, combine="any") == [(11, 16)]
    assert run(sorry, {"event": {"type": "Laughter"}}) == [(11, 16), (45, 50)]


def test_categorize_fills_the_call_with_matches_alerts_and_points() -> None:
    rules = parse_rules(
        """
categories:
  - name: long-silence
    alert: true
    all: [{non_talk: {min_seconds: 30}}]
  - name: polite
    any: [{keyword: {phrases: [please, thank you]}}]
  - name: happy-customer
    all: [{emotion: {role: customer, in: [HAPPY]}}]
"""
    )
    t = categorize(rules, transcript(call_segments(), DURATION))
    assert t.call is not None
    assert t.call.categories.matched == ["long-silence", "polite"]
    assert t.call.categories.details["long-silence"].alert is True
    assert [(p.start, p.end) for p in t.call.categories.details["polite"].points] == [
        (0, 5),
        (30, 40),
    ]
    validate_result(t.to_json_dict())


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [{"name": "x", "all": [{"emotion": {"in": ["FURIOUS"]}}]}],
            "category 'x': all[0].emotion.in[0]",
        ),
        (
            [{"name": "x", "all": [{"keyword": {"regex": "("}}]}],
            "category 'x': all[0].keyword.regex",
        ),
        ([{"name": "x", "all": [{"keyword": {"phrases": ["a"], "regex": "a"}}]}], "either phrases"),
        (
            [{"name": "x", "all": [{"keyword": {"phrase": "a"}}]}],
            "all[0].keyword.phrase: Extra inputs",
        ),
        (
            [{"name": "x", "all": [{"talk_speed": {"role": "agent"}}]}],
            "all[0].talk_speed: give above",
        ),
        ([{"name": "x", "all": [{"sentiment": {"below": 3}}]}], "all[0].sentiment.below"),
        (
            [{"name": "x", "all": [{"non_talk": {"min_seconds": 5, "role": "agent"}}]}],
            "takes no role",
        ),
        ([{"name": "x", "all": [{"interruption": {}}]}], "give min_count"),
        ([{"name": "x", "all": [{"event": {"type": "Bark"}}]}], "all[0].event.type"),
        (
            [
                {
                    "name": "x",
                    "any": [
                        {
                            "keyword": {
                                "phrases": ["a"],
                                "window": {"first_seconds": 5, "last_percent": 5},
                            }
                        }
                    ],
                }
            ],
            "any[0].keyword.window: Value error, give exactly one".replace("Value error, ", ""),
        ),
        (
            [
                {
                    "name": "x",
                    "all": [
                        {
                            "keyword": {
                                "phrases": ["a"],
                                "window": {"from_percent": 50, "to_percent": 10},
                            }
                        }
                    ],
                }
            ],
            "from_percent (50.0) must be below",
        ),
        (
            [{"name": "x", "all": [{"keyword": {"phrases": ["a"]}, "emotion": {"in": ["SAD"]}}]}],
            "exactly one of keyword",
        ),
        (
            [
                {
                    "name": "x",
                    "all": [{"keyword": {"phrases": ["a"]}}],
                    "any": [{"event": {"type": "BGM"}}],
                }
            ],
            "category 'x': give either all",
        ),
        ([{"name": "Bad Name", "all": [{"event": {"type": "BGM"}}]}], "category 'Bad Name': name"),
        ([{"all": [{"event": {"type": "BGM"}}]}], "category #1: name: Field required"),
        ([{"name": "x", "all": []}], "category 'x': all: List should have at least 1 item"),
        ([{"name": "x", "all": [{"event": {"type": "BGM"}}]}] * 2, "'x' is defined twice"),
    ],
)
def test_bad_rules_name_the_category_and_the_field(rules: list[Any], message: str) -> None:
    with pytest.raises(InvalidOption) as caught:
        load_rules(rules, source="rules.yaml")
    assert str(caught.value).startswith("rules.yaml: ")
    assert message in str(caught.value)


def test_bad_yaml_and_wrong_shape_are_refused_with_the_source() -> None:
    with pytest.raises(InvalidOption, match=r"rules\.yaml: not valid YAML"):
        parse_rules("categories: [", source="rules.yaml")
    with pytest.raises(InvalidOption, match=r"rules\.yaml: expected a mapping"):
        parse_rules("just text", source="rules.yaml")
    assert parse_rules("", source="rules.yaml").categories == []
