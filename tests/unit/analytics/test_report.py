"""The QA report from constructed transcripts: CSV rows, JSON aggregates, the HTML page."""

from __future__ import annotations

import csv
import io
import json

import pytest

from hark_serving.analytics.categories import categorize
from hark_serving.analytics.charts import histogram
from hark_serving.analytics.report import (
    MetadataPattern,
    build_report,
    render_csv,
    render_html,
    render_json,
)
from hark_serving.analytics.rules import load_rules
from hark_serving.errors import InvalidOption
from hark_serving.transcript.schema import Transcript

from .calls import seg, transcript

RULES = load_rules(
    [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 10}}]},
        {"name": "angry-customer", "all": [{"emotion": {"role": "customer", "in": ["ANGRY"]}}]},
    ]
)


def calls() -> list[tuple[str, str, Transcript]]:
    quiet = transcript([seg(0, 5), seg(20, 30, "customer", emotion="ANGRY")], 30, "file:///c/1.wav")
    calm = transcript([seg(0, 5, emotion="HAPPY"), seg(5, 10, "customer")], 10, "file:///c/2.wav")
    other = transcript([seg(0, 4), seg(3, 8, "customer", emotion="ANGRY")], 8, "file:///c/3.wav")
    return [
        ("2026-11-30/alice/c1.wav", "../2026-11-30/alice/c1.wav.json", categorize(RULES, quiet)),
        ("2026-11-30/alice/c2.wav", "../2026-11-30/alice/c2.wav.json", categorize(RULES, calm)),
        ("2026-12-01/bob/c3.wav", "../2026-12-01/bob/c3.wav.json", categorize(RULES, other)),
    ]


def test_metadata_pattern_reads_fields_from_keys_and_leaves_misfits_blank() -> None:
    p = MetadataPattern.parse("{date}/{agent}/{call_id}.wav")
    assert p.fields_of("2026-11-30/alice/c1.wav") == {
        "date": "2026-11-30",
        "agent": "alice",
        "call_id": "c1",
    }
    assert p.fields_of("elsewhere/c1.mp3") == {"date": "", "agent": "", "call_id": ""}
    with pytest.raises(InvalidOption, match="names no field"):
        MetadataPattern.parse("calls/*.wav")
    with pytest.raises(InvalidOption, match="twice"):
        MetadataPattern.parse("{agent}/{agent}.wav")


def test_calls_csv_has_one_row_per_call_with_shares_categories_and_metadata() -> None:
    report = build_report(calls(), MetadataPattern.parse("{date}/{agent}/{call_id}.wav"))
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert [r["file"] for r in rows] == [
        "2026-11-30/alice/c1.wav",
        "2026-11-30/alice/c2.wav",
        "2026-12-01/bob/c3.wav",
    ]
    first = rows[0]
    assert first["transcript"] == "../2026-11-30/alice/c1.wav.json"
    assert (first["duration"], first["talk_share_agent"], first["talk_share_customer"]) == (
        "30.0",
        "0.333",
        "0.667",
    )
    assert (first["sentiment_customer"], first["sentiment_agent"]) == ("-1.0", "0.0")
    assert (first["categories"], first["alerts"]) == ("long-silence;angry-customer", "long-silence")
    assert (first["non_talk_seconds"], first["interruptions"]) == ("15.0", "0")
    assert (first["date"], first["agent"], first["call_id"]) == ("2026-11-30", "alice", "c1")
    assert rows[1]["categories"] == "" and rows[2]["interruptions"] == "1"


def test_report_json_aggregates_categories_and_agents() -> None:
    report = build_report(calls(), MetadataPattern.parse("{date}/{agent}/{call_id}.wav"))
    doc = json.loads(render_json(report))
    assert doc["schema"] == "hark.report/v1" and doc["calls"] == 3 and doc["audio_seconds"] == 48
    assert doc["categories"] == {"angry-customer": 2, "long-silence": 1}
    assert set(doc["by_agent"]) == {"alice", "bob"}
    alice = doc["by_agent"]["alice"]
    assert (alice["calls"], alice["audio_seconds"], alice["flagged_calls"]) == (2, 40, 1)
    assert alice["categories"] == {"long-silence": 1, "angry-customer": 1}
    assert alice["talk_share"] == {"agent": 0.416, "customer": 0.584}  # means of rounded shares
    assert doc["by_agent"]["bob"]["interruptions"] == 1
    assert doc["non_talk_instances"] == [15.0]
    # emotions over ten tenths of the call, per role
    assert len(doc["emotion_over_time"]["customer"]) == 10
    assert doc["emotion_over_time"]["customer"][9] == {"ANGRY": 3.8, "NEUTRAL": 1.0}


def test_html_is_self_contained_with_charts_and_links_to_flagged_transcripts() -> None:
    html = render_html(build_report(calls(), MetadataPattern.parse("{date}/{agent}/{call_id}.wav")))
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in html and "@import" not in html and "url(" not in html
    assert html.count("<svg") == 5  # two roles' emotions, categories, non-talk, interruptions
    assert '<a href="../2026-11-30/alice/c1.wav.json">2026-11-30/alice/c1.wav</a>' in html
    assert '<a href="../2026-12-01/bob/c3.wav.json">' in html
    assert "c2.wav.json" not in html  # not flagged
    assert "<h2>Per agent</h2>" in html


def test_histogram_counts_values_into_open_ended_bins() -> None:
    svg = histogram("h", [0.5, 4.9, 5.0, 31, 200], (0.0, 5.0, 30.0))
    assert 'data-label="0-5" data-value="2"' in svg
    assert 'data-label="5-30" data-value="1"' in svg
    assert 'data-label="≥ 30" data-value="2"' in svg
