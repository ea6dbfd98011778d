"""The QA report of many transcripts: calls.csv, report.json and a self-contained report.html.

`build_report` is a plain function from (key, transcript link, transcript) triples
to a `QaReport`; `render_csv`, `render_json` and `render_html` turn it into bytes.
Each call is first reduced to a small `CallEntry` (its row, its emotion seconds per
tenth of the call, its silences), so a report kept up to date while a job runs
(`assemble`) holds entries, not transcripts.
Metadata comes from each key through a pattern such as
`{date}/{agent}/{call_id}.wav`; a key that does not fit keeps empty columns.
Calls are "flagged" by matched categories (alerts count double) and summary flags.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from html import escape
from typing import Any

from hark_serving.analytics.charts import bar_chart, histogram, stacked_bars
from hark_serving.errors import InvalidOption
from hark_serving.transcript.schema import Transcript, utc_now

REPORT_SCHEMA = "hark.report/v1"
TIME_BINS = 10
TOP_FLAGGED = 20
NON_TALK_EDGES = (0.0, 5.0, 10.0, 30.0, 60.0, 120.0)
INTERRUPTION_EDGES = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0)
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class MetadataPattern:
    """`{date}/{agent}/{call_id}.wav` → a regex with one named group per field."""

    text: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> MetadataPattern:
        fields = tuple(_FIELD.findall(text))
        if not fields:
            raise InvalidOption(
                f"metadata pattern {text!r} names no field; write fields in braces, "
                "e.g. {date}/{agent}/{call_id}.wav",
                subject="metadata-pattern",
            )
        if len(set(fields)) != len(fields):
            raise InvalidOption(
                f"metadata pattern {text!r} names a field twice", subject="metadata-pattern"
            )
        parts, last = [], 0
        for m in _FIELD.finditer(text):
            parts.append(re.escape(text[last : m.start()]))
            parts.append(f"(?P<{m.group(1)}>[^/]+?)")
            last = m.end()
        parts.append(re.escape(text[last:]))
        return cls(text, re.compile("^" + "".join(parts) + "$"), fields)

    def fields_of(self, key: str) -> dict[str, str]:
        m = self.regex.match(key)
        return {f: (m.group(f) if m else "") for f in self.fields}


@dataclass
class CallRow:
    key: str
    link: str
    duration: float
    roles: list[str]
    talk_share: dict[str, float]
    sentiment: dict[str, float | None]
    non_talk_seconds: float
    interruptions: int
    categories: list[str]
    alerts: list[str]
    flags: list[str]
    metadata: dict[str, str]

    @property
    def score(self) -> int:
        return len(self.categories) + len(self.alerts) + len(self.flags)


@dataclass
class QaReport:
    created_at: str
    roles: list[str]
    metadata_fields: list[str]
    rows: list[CallRow]
    categories: dict[str, int]
    flags: dict[str, int]
    emotion_over_time: dict[str, list[dict[str, float]]]
    non_talk_instances: list[float]
    by_agent: dict[str, dict[str, Any]] = field(default_factory=dict)


def _row(key: str, link: str, t: Transcript, pattern: MetadataPattern | None) -> CallRow:
    call = t.call
    cats = call.categories if call else None
    return CallRow(
        key=key,
        link=link,
        duration=round(t.source.duration, 3),
        roles=list(dict.fromkeys(call.roles.values())) if call else [],
        talk_share={r: v.share for r, v in call.talk_time.items()} if call else {},
        sentiment={r: v.overall for r, v in call.sentiment.items()} if call else {},
        non_talk_seconds=call.non_talk.total_seconds if call else 0.0,
        interruptions=call.interruptions.total if call else 0,
        categories=list(cats.matched) if cats else [],
        alerts=[n for n in cats.matched if cats.details[n].alert] if cats else [],
        flags=list(t.summary.flags),
        metadata=pattern.fields_of(key) if pattern else {},
    )


Bins = dict[str, list[dict[str, float]]]  # role → per tenth of the call: emotion → seconds


@dataclass(frozen=True)
class CallEntry:
    """What a report needs of one call."""

    row: CallRow
    emotions: Bins
    non_talk: tuple[float, ...]


def call_entry(
    key: str, link: str, t: Transcript, pattern: MetadataPattern | None = None
) -> CallEntry:
    return CallEntry(
        row=_row(key, link, t, pattern),
        emotions=_emotion_bins(t),
        non_talk=tuple(
            round(i.end - i.start, 3) for i in (t.call.non_talk.instances if t.call else [])
        ),
    )


def pack(entry: CallEntry) -> bytes:
    """An entry in a few hundred bytes (compressed JSON), for reports kept while a job runs."""
    doc = {"row": asdict(entry.row), "emotions": entry.emotions, "non_talk": entry.non_talk}
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode())


def unpack(data: bytes) -> CallEntry:
    doc = json.loads(zlib.decompress(data))
    return CallEntry(CallRow(**doc["row"]), doc["emotions"], tuple(doc["non_talk"]))


def _emotion_bins(t: Transcript) -> Bins:
    """Per role, per tenth of the call: seconds of each emotion (relative call time)."""
    bins: dict[str, list[defaultdict[str, float]]] = {}
    duration = t.source.duration
    if duration <= 0:
        return {}
    for seg in t.segments:
        if not seg.emotion or not seg.text or seg.end <= seg.start:
            continue
        role = seg.role or "speaker"
        role_bins = bins.setdefault(role, [defaultdict(float) for _ in range(TIME_BINS)])
        for i in range(TIME_BINS):
            lo, hi = duration * i / TIME_BINS, duration * (i + 1) / TIME_BINS
            overlap = min(seg.end, hi) - max(seg.start, lo)
            if overlap > 0:
                role_bins[i][seg.emotion] += overlap
    return {r: [dict(b) for b in bs] for r, bs in bins.items()}


def _sum_bins(entries: Iterable[CallEntry]) -> Bins:
    total: dict[str, list[defaultdict[str, float]]] = {}
    for e in entries:
        for role, bs in e.emotions.items():
            role_bins = total.setdefault(role, [defaultdict(float) for _ in range(TIME_BINS)])
            for i, b in enumerate(bs):
                for emotion, seconds in b.items():
                    role_bins[i][emotion] += seconds
    return {r: [{k: round(v, 3) for k, v in b.items()} for b in bs] for r, bs in total.items()}


def _by_agent(rows: Sequence[CallRow], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[CallRow]] = defaultdict(list)
    for r in rows:
        groups[r.metadata.get(key) or "(unknown)"].append(r)
    out: dict[str, dict[str, Any]] = {}
    for agent, rs in sorted(groups.items()):
        roles = sorted({role for r in rs for role in r.roles})
        out[agent] = {
            "calls": len(rs),
            "audio_seconds": round(sum(r.duration for r in rs), 3),
            "talk_share": {
                role: round(sum(r.talk_share.get(role, 0.0) for r in rs) / len(rs), 3)
                for role in roles
            },
            "sentiment": {role: _mean([r.sentiment.get(role) for r in rs]) for role in roles},
            "non_talk_seconds": round(sum(r.non_talk_seconds for r in rs) / len(rs), 3),
            "interruptions": sum(r.interruptions for r in rs),
            "categories": dict(Counter(c for r in rs for c in r.categories).most_common()),
            "flagged_calls": sum(1 for r in rs if r.score),
        }
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 3) if known else None


def build_report(
    items: Sequence[tuple[str, str, Transcript]],
    pattern: MetadataPattern | None = None,
    group_by: str = "agent",
) -> QaReport:
    """`items`: (key relative to the input root, link to the transcript, transcript)."""
    return assemble([call_entry(k, link, t, pattern) for k, link, t in items], pattern, group_by)


def assemble(
    entries: Iterable[CallEntry],
    pattern: MetadataPattern | None = None,
    group_by: str = "agent",
    *,
    link_prefix: str = "",
) -> QaReport:
    """The report of `entries` (their rows' metadata read with `pattern`); every link gets
    `link_prefix` in front (the way up from the report's folder)."""
    ordered = sorted(entries, key=lambda e: e.row.key)
    rows = [replace(e.row, link=link_prefix + e.row.link) for e in ordered]
    roles = list(dict.fromkeys(role for r in rows for role in r.roles))
    report = QaReport(
        created_at=utc_now(),
        roles=roles,
        metadata_fields=list(pattern.fields) if pattern else [],
        rows=rows,
        categories=dict(Counter(c for r in rows for c in r.categories).most_common()),
        flags=dict(Counter(f for r in rows for f in r.flags).most_common()),
        emotion_over_time=_sum_bins(ordered),
        non_talk_instances=[n for e in ordered for n in e.non_talk],
    )
    if pattern and group_by in pattern.fields:
        report.by_agent = _by_agent(rows, group_by)
    return report


def _csv_columns(report: QaReport) -> list[str]:
    return (
        ["file", "transcript", "duration"]
        + [f"talk_share_{r}" for r in report.roles]
        + [f"sentiment_{r}" for r in report.roles]
        + ["non_talk_seconds", "interruptions", "categories", "alerts", "flags"]
        + report.metadata_fields
    )


def _csv_values(report: QaReport, r: CallRow) -> list[Any]:
    def blank(v: float | None) -> Any:
        return "" if v is None else v

    return (
        [r.key, r.link, r.duration]
        + [blank(r.talk_share.get(role)) for role in report.roles]
        + [blank(r.sentiment.get(role)) for role in report.roles]
        + [r.non_talk_seconds, r.interruptions]
        + [";".join(r.categories), ";".join(r.alerts), ";".join(r.flags)]
        + [r.metadata.get(f, "") for f in report.metadata_fields]
    )


def render_csv(report: QaReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(_csv_columns(report))
    for r in report.rows:
        writer.writerow(_csv_values(report, r))
    return buf.getvalue()


def report_dict(report: QaReport) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "created_at": report.created_at,
        "calls": len(report.rows),
        "audio_seconds": round(sum(r.duration for r in report.rows), 3),
        "roles": report.roles,
        "categories": report.categories,
        "flags": report.flags,
        "by_agent": report.by_agent,
        "emotion_over_time": report.emotion_over_time,
        "non_talk_instances": report.non_talk_instances,
        "rows": [
            dict(zip(_csv_columns(report), _csv_values(report, r), strict=True))
            for r in report.rows
        ],
    }


def render_json(report: QaReport) -> str:
    return json.dumps(report_dict(report), ensure_ascii=False, indent=2) + "\n"


_STYLE = """
body{font-family:sans-serif;margin:24px;color:#1d2733;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #d8dde3;padding:4px 8px;text-align:left}
th{background:#f1f4f7}.charts{display:flex;flex-wrap:wrap;gap:24px}.muted{color:#67727e}
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(report: QaReport, title: str = "Hark QA report") -> str:
    """One HTML page with inline CSS and SVG: no scripts, no fonts, no requests."""
    audio = sum(r.duration for r in report.rows)
    flagged = sorted((r for r in report.rows if r.score), key=lambda r: (-r.score, r.key))
    emotion_charts = "".join(
        stacked_bars(f"Emotion over the call: {role}", bins)
        for role, bins in sorted(report.emotion_over_time.items())
    )
    charts = "".join(
        [
            bar_chart("Calls per category", list(report.categories.items())),
            histogram(
                "Non-talk instances (seconds)", report.non_talk_instances, NON_TALK_EDGES, " s"
            ),
            histogram(
                "Interruptions per call",
                [float(r.interruptions) for r in report.rows],
                INTERRUPTION_EDGES,
            ),
        ]
    )
    top = _table(
        ["file", "score", "categories", "alerts", "flags", "duration (s)"],
        (
            [
                f'<a href="{escape(r.link)}">{escape(r.key)}</a>',
                str(r.score),
                escape(", ".join(r.categories)),
                escape(", ".join(r.alerts)),
                escape(", ".join(r.flags)),
                f"{r.duration:.1f}",
            ]
            for r in flagged[:TOP_FLAGGED]
        ),
        "flagged",
    )
    agents = ""
    if report.by_agent:
        agents = "<h2>Per agent</h2>" + _table(
            [
                "agent",
                "calls",
                "audio (s)",
                "talk share",
                "sentiment",
                "interruptions",
                "categories",
            ],
            (
                [
                    escape(name),
                    str(a["calls"]),
                    f"{a['audio_seconds']:.0f}",
                    escape(", ".join(f"{k} {v:.0%}" for k, v in a["talk_share"].items())),
                    escape(
                        ", ".join(
                            f"{k} {v:+.2f}" for k, v in a["sentiment"].items() if v is not None
                        )
                    ),
                    str(a["interruptions"]),
                    escape(", ".join(f"{k} {v}" for k, v in a["categories"].items())),
                ]
                for name, a in report.by_agent.items()
            ),
            "agents",
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="muted">{len(report.rows)} calls, {audio / 3600:.2f} h of audio, '
        f"{len(flagged)} flagged; made {escape(report.created_at)}.</p>"
        f'<h2>Emotion over time</h2><div class="charts">{emotion_charts or "<p>no emotions</p>"}</div>'
        f'<h2>Categories and silences</h2><div class="charts">{charts}</div>'
        f"<h2>Most flagged calls</h2>{top if flagged else '<p>no call is flagged</p>'}"
        f"{agents}</body></html>\n"
    )
