"""Matching categories against one transcript: plain functions from rules and segments.

A filter looks at the talk segments of its `role` (all roles when none) that
overlap its `window`, and returns whether it matched and the points (spans) that
made it match. `negate` inverts the match and gives no points. A category
matches when all (or any) of its filters do; its points are the union of its
matching filters' points, merged where they touch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hark_serving.analytics.call import (
    interruptions,
    is_talk,
    non_talk,
    sentiment_score,
    talk_speed,
)
from hark_serving.analytics.rules import (
    Category,
    EmotionFilter,
    EventFilter,
    FilterItem,
    InterruptionFilter,
    KeywordFilter,
    NonTalkFilter,
    Rules,
    SentimentFilter,
    TalkSpeedFilter,
    Window,
)
from hark_serving.transcript.call import Categories, CategoryMatch, Span
from hark_serving.transcript.schema import Segment, Transcript

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class Scope:
    """What one filter sees: the window's bounds and the role's segments in it."""

    start: float
    end: float
    talk: list[Segment]
    all_segments: list[Segment]

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _overlap(seg: Segment, start: float, end: float) -> float:
    return max(0.0, min(seg.end, end) - max(seg.start, start))


def _scope(
    segments: Sequence[Segment], duration: float, role: str | None, window: Window | None
) -> Scope:
    start, end = window.bounds(duration) if window else (0.0, duration)
    mine = [s for s in segments if role is None or s.role == role]
    inside = [s for s in mine if _overlap(s, start, end) > 0 or (s.start >= start and s.end <= end)]
    return Scope(start, end, [s for s in inside if is_talk(s)], inside)


def _clip(seg: Segment, scope: Scope) -> tuple[float, float]:
    return max(seg.start, scope.start), min(seg.end, scope.end)


def _phrase_pattern(phrase: str, ignore_case: bool) -> re.Pattern[str]:
    # Word edges only where the phrase starts or ends with a letter of a spaced script.
    body = re.escape(phrase.strip())
    left = r"(?<!\w)" if re.match(r"[A-Za-z0-9]", phrase.strip()) else ""
    right = r"(?!\w)" if re.search(r"[A-Za-z0-9]$", phrase.strip()) else ""
    return re.compile(left + body + right, re.IGNORECASE if ignore_case else 0)


def keyword(f: KeywordFilter, scope: Scope) -> tuple[bool, Points]:
    flags = re.IGNORECASE if f.ignore_case else 0
    patterns = (
        [_phrase_pattern(p, f.ignore_case) for p in f.phrases]
        if f.phrases is not None
        else [re.compile(f.regex or "", flags)]
    )
    points = [_clip(s, scope) for s in scope.talk if any(p.search(s.text) for p in patterns)]
    return bool(points), points


def emotion(f: EmotionFilter, scope: Scope) -> tuple[bool, Points]:
    wanted = set(f.in_)
    hits = [s for s in scope.talk if s.emotion in wanted]
    seconds = sum(_overlap(s, scope.start, scope.end) for s in hits)
    talk = sum(_overlap(s, scope.start, scope.end) for s in scope.talk)
    ok = bool(hits)
    if f.min_seconds is not None:
        ok = ok and seconds >= f.min_seconds
    if f.min_share is not None:
        ok = ok and talk > 0 and seconds / talk >= f.min_share
    return ok, [_clip(s, scope) for s in hits] if ok else []


def event(f: EventFilter, scope: Scope) -> tuple[bool, Points]:
    hits = [s for s in scope.all_segments if f.type in s.events]
    ok = len(hits) >= f.min_count
    return ok, [_clip(s, scope) for s in hits] if ok else []


def non_talk_filter(f: NonTalkFilter, scope: Scope, all_talk: list[Segment]) -> tuple[bool, Points]:
    # Silence is measured on every channel at once, inside the window.
    inside = [s for s in all_talk if _overlap(s, scope.start, scope.end) > 0]
    shifted = [
        s.model_copy(
            update={
                "start": max(s.start, scope.start) - scope.start,
                "end": min(s.end, scope.end) - scope.start,
            }
        )
        for s in inside
    ]
    gaps = non_talk(shifted, [], scope.seconds, f.min_seconds).instances
    points = [(g.start + scope.start, g.end + scope.start) for g in gaps]
    return bool(points), points


def interruption(
    f: InterruptionFilter, scope: Scope, all_talk: list[Segment], role: str | None
) -> tuple[bool, Points]:
    by_role: dict[str, list[Segment]] = {}
    for s in all_talk:
        by_role.setdefault(s.role or "", []).append(s)
    found = interruptions(by_role).by_interrupter
    spans = [
        (sp.start, sp.end)
        for r, items in found.items()
        if role is None or r == role
        for sp in items
        if scope.start <= sp.start < scope.end
    ]
    ok = bool(spans)
    if f.min_count is not None:
        ok = ok and len(spans) >= f.min_count
    if f.min_seconds is not None:
        ok = ok and sum(e - s for s, e in spans) >= f.min_seconds
    return ok, spans if ok else []


def _within(value: float | None, above: float | None, below: float | None) -> bool:
    if value is None:
        return False
    return (above is None or value > above) and (below is None or value < below)


def talk_speed_filter(f: TalkSpeedFilter, scope: Scope) -> tuple[bool, Points]:
    clipped = [
        s.model_copy(update={"start": _clip(s, scope)[0], "end": _clip(s, scope)[1]})
        for s in scope.talk
    ]
    speed = talk_speed(clipped)
    ok = _within(speed.rate if speed else None, f.above, f.below)
    return ok, [_clip(s, scope) for s in scope.talk] if ok else []


def sentiment_filter(f: SentimentFilter, scope: Scope) -> tuple[bool, Points]:
    score = sentiment_score(scope.talk, scope.start, scope.end)
    ok = _within(score, f.above, f.below)
    return ok, [_clip(s, scope) for s in scope.talk] if ok else []


def evaluate(item: FilterItem, segments: Sequence[Segment], duration: float) -> tuple[bool, Points]:
    """One filter against a transcript's segments: (matched, points), negate applied."""
    f = item.filter
    scope = _scope(segments, duration, f.role, f.window)
    all_talk = [s for s in segments if is_talk(s)]
    if isinstance(f, KeywordFilter):
        ok, points = keyword(f, scope)
    elif isinstance(f, EmotionFilter):
        ok, points = emotion(f, scope)
    elif isinstance(f, EventFilter):
        ok, points = event(f, scope)
    elif isinstance(f, NonTalkFilter):
        ok, points = non_talk_filter(f, scope, all_talk)
    elif isinstance(f, InterruptionFilter):
        ok, points = interruption(f, scope, all_talk, f.role)
    elif isinstance(f, TalkSpeedFilter):
        ok, points = talk_speed_filter(f, scope)
    else:
        assert isinstance(f, SentimentFilter)
        ok, points = sentiment_filter(f, scope)
    if f.negate:
        return not ok, []
    return ok, points


def _merge(points: Points) -> list[Span]:
    merged: Points = []
    for start, end in sorted(points):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [Span(start=round(s, 3), end=round(e, 3)) for s, e in merged]


def match_category(
    category: Category, segments: Sequence[Segment], duration: float
) -> CategoryMatch | None:
    results = [evaluate(item, segments, duration) for item in category.filters]
    matched = (
        all(ok for ok, _ in results) if category.all is not None else any(ok for ok, _ in results)
    )
    if not matched:
        return None
    points = [p for ok, pts in results if ok for p in pts]
    return CategoryMatch(points=_merge(points), alert=category.alert)


def match(rules: Rules, segments: Sequence[Segment], duration: float) -> Categories:
    details = {}
    for category in rules.categories:
        found = match_category(category, segments, duration)
        if found is not None:
            details[category.name] = found
    return Categories(matched=list(details), details=details)


def categorize(rules: Rules, transcript: Transcript) -> Transcript:
    """`transcript` with `call.categories` filled in (the call object is required)."""
    if transcript.call is None:
        return transcript
    found = match(rules, transcript.segments, transcript.source.duration)
    call = transcript.call.model_copy(update={"categories": found})
    return transcript.model_copy(update={"call": call})
