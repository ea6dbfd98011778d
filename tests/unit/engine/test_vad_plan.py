"""Segment planning: the published recipe's merging, minus pure-silence spans."""

from __future__ import annotations

import itertools
import random

import pytest
from funasr.utils.vad_utils import merge_vad

from hark_serving.engine.vad import PlannedSegment, Region, merge_spans, plan_segments, split_long


def random_regions(rng: random.Random) -> list[Region]:
    t, out = rng.randint(0, 3000), []
    for _ in range(rng.randint(0, 25)):
        length = rng.choice([rng.randint(250, 4000), rng.randint(4000, 40000)])
        out.append(Region(t, t + length))
        t += length + rng.choice([rng.randint(100, 900), rng.randint(900, 20000)])
    return out


@pytest.mark.parametrize("seed", range(200))
def test_merging_matches_funasrs_merge_vad(seed: int) -> None:
    rng = random.Random(seed)
    regions = split_long(random_regions(rng), 30000)
    merge_ms = rng.choice([5000, 15000, 20000])
    expected = merge_vad([[r.start_ms, r.end_ms] for r in regions], merge_ms)
    assert merge_spans(regions, merge_ms) == [tuple(x) for x in expected]


def test_spans_without_speech_are_not_transcribed_and_times_are_the_speech() -> None:
    regions = [Region(1000, 5000), Region(40000, 45000)]
    # funasr's merge also yields the 35 s pause [5000, 40000] as a segment.
    assert merge_spans(regions, 15000) == [(0, 5000), (5000, 40000), (40000, 45000)]
    assert plan_segments(regions, merge_seconds=15, max_segment_seconds=30) == [
        PlannedSegment(0, 5000, 1000, 5000),
        PlannedSegment(40000, 45000, 40000, 45000),
    ]


def test_long_speech_is_split_at_the_limit() -> None:
    assert split_long([Region(0, 65000)], 30000) == [
        Region(0, 30000),
        Region(30000, 60000),
        Region(60000, 65000),
    ]
    planned = plan_segments([Region(0, 65000)], merge_seconds=0, max_segment_seconds=30)
    assert [(p.span_start_ms, p.span_end_ms) for p in planned] == [
        (0, 30000),
        (30000, 60000),
        (60000, 65000),
    ]


@pytest.mark.parametrize("seed", range(50))
def test_no_planned_segment_exceeds_the_limit_or_misses_speech(seed: int) -> None:
    rng = random.Random(seed)
    regions = random_regions(rng)
    planned = plan_segments(regions, merge_seconds=15, max_segment_seconds=30)
    for p in planned:
        assert 0 < p.span_end_ms - p.span_start_ms <= 30000
        assert p.span_start_ms <= p.speech_start_ms < p.speech_end_ms <= p.span_end_ms
    covered = sum(p.span_end_ms - p.span_start_ms for p in planned)
    spans = [(p.span_start_ms, p.span_end_ms) for p in planned]
    assert spans == sorted(spans)
    for r in regions:
        inside = sum(max(0, min(r.end_ms, b) - max(r.start_ms, a)) for a, b in spans)
        assert inside == r.end_ms - r.start_ms, "every millisecond of speech is transcribed"
    assert covered >= sum(r.end_ms - r.start_ms for r in regions)


def test_samples_are_sliced_as_funasr_slices_them() -> None:
    import numpy as np

    audio = np.arange(16000 * 3, dtype=np.float32)
    seg = PlannedSegment(1000, 2500, 1000, 2500)
    out = seg.samples(audio)
    assert out[0] == 16000 and len(out) == 24000 and out.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("seed", range(100))
def test_speech_only_segments_hold_all_speech_and_no_long_pause(seed: int) -> None:
    rng = random.Random(seed)
    regions = random_regions(rng)
    planned = plan_segments(
        regions, merge_seconds=15, max_segment_seconds=30, max_pause_seconds=0.5
    )
    spans = [(p.span_start_ms, p.span_end_ms) for p in planned]
    assert spans == sorted(spans)
    for p in planned:
        assert (p.span_start_ms, p.span_end_ms) == (p.speech_start_ms, p.speech_end_ms)
        assert 0 < p.span_end_ms - p.span_start_ms <= 30000
        inside = [r for r in regions if r.start_ms < p.span_end_ms and r.end_ms > p.span_start_ms]
        pauses = [b.start_ms - a.end_ms for a, b in itertools.pairwise(inside)]
        assert all(gap < 500 for gap in pauses), "no pause of 0.5 s or more is transcribed"
    for r in regions:
        covered = sum(max(0, min(r.end_ms, b) - max(r.start_ms, a)) for a, b in spans)
        assert covered == r.end_ms - r.start_ms, "every millisecond of speech is transcribed"


def test_speech_only_merges_close_regions_and_cuts_at_a_pause() -> None:
    regions = [Region(1000, 3000), Region(3300, 6000), Region(7000, 9000), Region(9100, 9500)]
    assert plan_segments(
        regions, merge_seconds=15, max_segment_seconds=30, max_pause_seconds=0.5
    ) == [PlannedSegment(1000, 6000, 1000, 6000), PlannedSegment(7000, 9500, 7000, 9500)]
    # The recipe transcribes the pauses, and the leading silence, too.
    assert plan_segments(regions, merge_seconds=15, max_segment_seconds=30) == [
        PlannedSegment(0, 9500, 1000, 9500)
    ]
