"""The call report of one transcript, from its segments: plain functions over plain data.

Talk is a segment with text in a spoken language; a segment the model marks
`nospeech` (music, noise) is not talk, but its events count (BGM during a silence
marks the silence as `hold`). Times are the segment times the speech detector gave,
so every figure inherits its tolerance (about a quarter second with silero).

Sentiment score: each segment's emotion maps to a value (HAPPY +1, NEUTRAL and
SURPRISED 0, SAD, ANGRY, FEARFUL and DISGUSTED -1; EMO_UNKNOWN is left out), and a
score is the mean of those values weighted by segment seconds, from -1 to +1.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hark_serving.transcript.call import (
    Call,
    CallEvent,
    Interruptions,
    NonTalk,
    NonTalkInstance,
    Sentiment,
    Span,
    TalkSpeed,
    TalkTime,
    Turn,
)
from hark_serving.transcript.schema import Segment

DEFAULT_ROLES: tuple[str, ...] = ("agent", "customer")
MONO_ROLE = "speaker"
SENTIMENT_VALUES: Mapping[str, float] = {
    "HAPPY": 1.0,
    "NEUTRAL": 0.0,
    "SURPRISED": 0.0,
    "SAD": -1.0,
    "ANGRY": -1.0,
    "FEARFUL": -1.0,
    "DISGUSTED": -1.0,
}
CHARACTER_LANGUAGES = frozenset({"zh", "yue", "ja", "ko"})
# Below this a turn or role is taken as digital silence rather than given -inf.
FLOOR_DBFS = -100.0
_WORD = re.compile(r"[\w']+")
_CHAR = re.compile(r"\w")


@dataclass(frozen=True)
class CallSettings:
    non_talk_min_seconds: float = 2.0


def role_of(channel: int | None, roles: Sequence[str] | None) -> str:
    """Channel → role: the n-th role, else the defaults, else `channel<n>`."""
    names = tuple(roles) if roles else DEFAULT_ROLES
    if channel is None:
        return names[0] if roles else MONO_ROLE
    return names[channel] if channel < len(names) else f"channel{channel}"


def is_talk(seg: Segment) -> bool:
    return bool(seg.text) and seg.language != "nospeech" and seg.end > seg.start


def _union(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(spans: Iterable[tuple[float, float]]) -> float:
    return sum(e - s for s, e in spans)


def _r(x: float) -> float:
    return round(x, 3)


def talk_time(talk: Mapping[str, list[Segment]]) -> dict[str, TalkTime]:
    seconds = {role: _length(_union((s.start, s.end) for s in segs)) for role, segs in talk.items()}
    total = sum(seconds.values())
    return {
        role: TalkTime(seconds=_r(sec), share=_r(sec / total) if total > 0 else 0.0)
        for role, sec in seconds.items()
    }


def non_talk(
    talk: Sequence[Segment], others: Sequence[Segment], duration: float, min_seconds: float
) -> NonTalk:
    """Gaps in which nobody talks; instances are the gaps of at least `min_seconds`."""
    spoken = _union((s.start, s.end) for s in talk)
    gaps: list[tuple[float, float]] = []
    cursor = 0.0
    for start, end in spoken:
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if duration > cursor:
        gaps.append((cursor, duration))
    music = [(s.start, s.end) for s in list(talk) + list(others) if "BGM" in s.events]
    instances = [
        NonTalkInstance(
            start=_r(start),
            end=_r(end),
            hold=any(ms < end and me > start for ms, me in music),
        )
        for start, end in gaps
        if end - start >= min_seconds
    ]
    return NonTalk(total_seconds=_r(_length(gaps)), instances=instances)


def interruptions(talk: Mapping[str, list[Segment]]) -> Interruptions:
    """One role starting while another is speaking; the span is the overlap."""
    regions = {role: _union((s.start, s.end) for s in segs) for role, segs in talk.items()}
    by: dict[str, list[Span]] = {}
    for role, spans in regions.items():
        found: list[Span] = []
        for start, end in spans:
            for other, other_spans in regions.items():
                if other == role:
                    continue
                for os_, oe in other_spans:
                    if os_ < start < oe:
                        found.append(Span(start=_r(start), end=_r(min(end, oe))))
                        break
                else:
                    continue
                break
        if found:
            by[role] = found
    return Interruptions(total=sum(len(v) for v in by.values()), by_interrupter=by)


def talk_speed(segs: Sequence[Segment]) -> TalkSpeed | None:
    """Words per minute, or characters per minute when the role mostly speaks zh/yue/ja/ko."""
    minutes = _length(_union((s.start, s.end) for s in segs)) / 60
    if minutes <= 0:
        return None
    by_lang: dict[str | None, float] = defaultdict(float)
    for s in segs:
        by_lang[s.language] += s.end - s.start
    language = max(by_lang.items(), key=lambda kv: kv[1])[0]
    if language in CHARACTER_LANGUAGES:
        count = sum(len(_CHAR.findall(s.text)) for s in segs)
        return TalkSpeed(rate=round(count / minutes, 1), unit="chars_per_minute")
    count = sum(len(_WORD.findall(s.text)) for s in segs)
    return TalkSpeed(rate=round(count / minutes, 1), unit="words_per_minute")


def dbfs(power: float | None) -> float | None:
    """Mean square of samples in [-1, 1] → dBFS (RMS; a full-scale square wave is 0)."""
    if power is None:
        return None
    if power <= 0:
        return FLOOR_DBFS
    return round(max(FLOOR_DBFS, 10 * math.log10(power)), 1)


def _mean_power(segs: Sequence[Segment], powers: Mapping[int, float]) -> float | None:
    weighted = [(powers[s.id], s.end - s.start) for s in segs if s.id in powers]
    total = sum(w for _, w in weighted)
    if not weighted or total <= 0:
        return None
    return sum(p * w for p, w in weighted) / total


def emotions(segs: Sequence[Segment]) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    for s in segs:
        if s.emotion:
            seconds[s.emotion] += s.end - s.start
    return {k: _r(v) for k, v in sorted(seconds.items())}


def sentiment_score(
    segs: Iterable[Segment], start: float = 0.0, end: float = math.inf
) -> float | None:
    """Duration-weighted mean emotion value of the parts of `segs` inside [start, end)."""
    num = den = 0.0
    for s in segs:
        value = SENTIMENT_VALUES.get(s.emotion or "")
        overlap = min(s.end, end) - max(s.start, start)
        if value is None or overlap <= 0:
            continue
        num += value * overlap
        den += overlap
    return round(num / den, 3) if den > 0 else None


def sentiment(segs: Sequence[Segment], role_turns: Sequence[Turn], duration: float) -> Sentiment:
    quarter = duration / 4
    by_quarter = [
        sentiment_score(segs, i * quarter, (i + 1) * quarter if i < 3 else math.inf)
        for i in range(4)
    ]
    last = role_turns[-1] if role_turns else None
    end = sentiment_score(segs, last.start, last.end + 1e-9) if last else None
    with_emotion = [s for s in segs if s.emotion]
    return Sentiment(
        overall=sentiment_score(segs),
        by_quarter=by_quarter,
        end=end,
        end_emotion=with_emotion[-1].emotion if with_emotion else None,
    )


def turns(talk: Sequence[Segment], powers: Mapping[int, float]) -> list[Turn]:
    """Consecutive talk segments of one role (in order of start) merged into one turn."""
    groups: list[list[Segment]] = []
    for seg in sorted(talk, key=lambda s: (s.start, s.id)):
        if groups and groups[-1][0].role == seg.role:
            groups[-1].append(seg)
        else:
            groups.append([seg])
    return [
        Turn(
            role=g[0].role or MONO_ROLE,
            start=_r(min(s.start for s in g)),
            end=_r(max(s.end for s in g)),
            segments=[s.id for s in g],
            loudness_dbfs=dbfs(_mean_power(g, powers)),
        )
        for g in groups
    ]


def build_call(
    segments: Sequence[Segment],
    duration: float,
    roles: Mapping[str, str],
    powers: Mapping[int, float] | None = None,
    settings: CallSettings = CallSettings(),
) -> Call:
    """The call report of `segments`; `roles` maps channel (string) to role, `powers`
    segment id to the mean square of its samples."""
    powers = powers or {}
    talk_segs = [s for s in segments if is_talk(s)]
    others = [s for s in segments if not is_talk(s)]
    role_names = list(dict.fromkeys(roles.values()))
    by_role: dict[str, list[Segment]] = {r: [] for r in role_names}
    for s in talk_segs:
        by_role.setdefault(s.role or MONO_ROLE, []).append(s)
    all_turns = turns(talk_segs, powers)
    return Call(
        roles=dict(roles),
        duration=_r(duration),
        talk_time=talk_time(by_role),
        non_talk=non_talk(talk_segs, others, duration, settings.non_talk_min_seconds),
        interruptions=interruptions(by_role),
        talk_speed={r: talk_speed(segs) for r, segs in by_role.items()},
        loudness={r: dbfs(_mean_power(segs, powers)) for r, segs in by_role.items()},
        emotions={r: emotions(segs) for r, segs in by_role.items()},
        sentiment={
            r: sentiment(segs, [t for t in all_turns if t.role == r], duration)
            for r, segs in by_role.items()
        },
        events=[
            CallEvent(type=e, role=s.role, start=_r(s.start), end=_r(s.end))
            for s in sorted(segments, key=lambda s: s.start)
            for e in s.events
        ],
        turns=all_turns,
    )
