"""Which QA reports of a job to write, and when: plain decisions, no I/O.

A Batch job has one report, in the job's folder; a Watch job has one per UTC day on
which its transcripts were completed (the transcript's `created_at`), in
`<YYYY-MM-DD>/` under that folder. The book keeps every call of each report as a
packed entry (a few hundred bytes, `analytics.report.pack`), so a report is rewritten
without reading a transcript again; a Watch job keeps only the current day and the one
before (a call of an older day is left to that day's report as written).

A report is rewritten when calls were added since it was last written, at most once
every `interval` seconds (`write_delay`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from hark_serving.analytics.report import CallEntry, pack, unpack

JOB = ""  # the name of a Batch job's one report: the job's folder itself
KEEP_DAYS = 2  # a Watch job keeps the current day's calls and the day before's


def write_delay(
    changed: int, written_at: float | None, now: float, interval: float
) -> float | None:
    """Seconds until a report with `changed` calls added since `written_at` (None: never
    written) should be written: None when nothing changed, 0.0 when it is due now."""
    if changed <= 0:
        return None
    if written_at is None:
        return 0.0
    return max(0.0, written_at + interval - now)


def day_of(created_at: str) -> date | None:
    """The UTC day of an RFC 3339 time (`2026-11-30T12:00:00Z`), None when unreadable."""
    try:
        return datetime.fromisoformat(created_at.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def report_folder(job_dir: str, name: str) -> str:
    """`_hark/<namespace>.<job>` (Batch) or `_hark/<namespace>.<job>/<YYYY-MM-DD>` (Watch)."""
    return f"{job_dir}/{name}" if name else job_dir


@dataclass
class Shelf:
    """The calls of one report."""

    entries: dict[str, bytes] = field(default_factory=dict)  # key → packed CallEntry
    changed: int = 0  # calls added since the last write
    written_at: float | None = None


class ReportBook:
    def __init__(self, per_day: bool, keep_days: int = KEEP_DAYS) -> None:
        self.per_day = per_day
        self.keep_days = keep_days
        self.shelves: dict[str, Shelf] = {}

    def shelf_for(self, created_at: str, today: date) -> str | None:
        """The report a call completed at `created_at` belongs in, None when it is too old
        to be kept (Watch) or its time is unreadable."""
        if not self.per_day:
            return JOB
        day = day_of(created_at)
        if day is None or day <= today - timedelta(days=self.keep_days):
            return None
        return day.isoformat()

    def add(self, entry: CallEntry, created_at: str, today: date) -> str | None:
        """Put a call in its report; the report's name, or None when it is not kept."""
        name = self.shelf_for(created_at, today)
        if name is None:
            return None
        shelf = self.shelves.setdefault(name, Shelf())
        shelf.entries[entry.row.key] = pack(entry)
        shelf.changed += 1
        return name

    def ensure_job(self) -> None:
        """A Batch job's report exists at its end, even without a call."""
        if not self.per_day:
            self.shelves.setdefault(JOB, Shelf())

    def next_delay(self, now: float, interval: float) -> float | None:
        """Seconds until some report is due (0.0: now), None when none has changes."""
        delays = [
            d
            for s in self.shelves.values()
            if (d := write_delay(s.changed, s.written_at, now, interval)) is not None
        ]
        return min(delays, default=None)

    def due(self, now: float, interval: float) -> list[str]:
        return sorted(
            name
            for name, s in self.shelves.items()
            if write_delay(s.changed, s.written_at, now, interval) == 0.0
        )

    def take(self, name: str) -> tuple[list[bytes], int]:
        """A snapshot of one report's calls (packed), and how many changes it covers."""
        shelf = self.shelves[name]
        return list(shelf.entries.values()), shelf.changed

    def written(self, name: str, now: float, covered: int) -> None:
        shelf = self.shelves[name]
        shelf.changed = max(0, shelf.changed - covered)
        shelf.written_at = now

    def failed(self, name: str, now: float) -> None:
        """A write failed: its changes stay, and it is tried again after the interval."""
        self.shelves[name].written_at = now

    def forget(self, today: date) -> None:
        """Drop the days a Watch job no longer keeps, once they hold nothing unwritten."""
        oldest = today - timedelta(days=self.keep_days - 1)
        for name in [n for n in self.shelves if n != JOB]:
            if date.fromisoformat(name) < oldest and not self.shelves[name].changed:
                del self.shelves[name]


def unpacked(entries: list[bytes]) -> list[CallEntry]:
    return [unpack(e) for e in entries]
