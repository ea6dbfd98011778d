"""When a job's QA reports are rewritten, and which calls each holds: the plain decisions."""

from __future__ import annotations

from datetime import date

import pytest

from hark_operator.jobs.report_book import (
    JOB,
    ReportBook,
    day_of,
    report_folder,
    unpacked,
    write_delay,
)
from hark_serving.analytics.report import CallEntry, assemble, call_entry, pack, unpack
from tests.unit.analytics.calls import seg, transcript

TODAY = date(2026, 11, 30)


def entry(key: str) -> CallEntry:
    t = transcript([seg(0, 5, emotion="HAPPY"), seg(8, 10, "customer")], 12)
    return call_entry(key, f"{key}.json", t)


@pytest.mark.parametrize(
    ("changed", "written_at", "now", "expected"),
    [
        (0, None, 100.0, None),  # nothing finished: no write
        (0, 10.0, 100.0, None),
        (1, None, 100.0, 0.0),  # never written: at once
        (3, 90.0, 100.0, 50.0),  # written 10 s ago: 50 s to go
        (3, 40.0, 100.0, 0.0),  # exactly the interval ago: due
        (1, 10.0, 100.0, 0.0),  # long ago: due
    ],
)
def test_a_report_is_written_when_calls_finished_and_the_interval_has_passed(
    changed: int, written_at: float | None, now: float, expected: float | None
) -> None:
    assert write_delay(changed, written_at, now, interval=60.0) == expected


def test_the_day_of_a_transcript_is_the_utc_day_of_its_created_at() -> None:
    assert day_of("2026-11-30T23:59:59Z") == date(2026, 11, 30)
    assert day_of("2026-12-01T00:30:00+02:00") == date(2026, 12, 1)
    assert day_of("yesterday") is None


def test_report_folders_are_the_job_folder_or_one_per_day() -> None:
    assert report_folder("_hark/ns.job", JOB) == "_hark/ns.job"
    assert report_folder("_hark/ns.job", "2026-11-30") == "_hark/ns.job/2026-11-30"


def test_a_batch_job_has_one_report_of_every_call_whatever_its_day() -> None:
    book = ReportBook(per_day=False)
    assert book.add(entry("a.wav"), "2020-01-01T00:00:00Z", TODAY) == JOB
    assert book.add(entry("b.wav"), "2026-11-30T10:00:00Z", TODAY) == JOB
    assert book.add(entry("a.wav"), "2026-11-30T11:00:00Z", TODAY) == JOB  # a.wav again
    packed, changed = book.take(JOB)
    assert sorted(e.row.key for e in unpacked(packed)) == ["a.wav", "b.wav"]
    assert changed == 3


def test_a_watch_job_keeps_today_and_yesterday_and_leaves_older_days_alone() -> None:
    book = ReportBook(per_day=True)
    assert book.add(entry("t.wav"), "2026-11-30T08:00:00Z", TODAY) == "2026-11-30"
    assert book.add(entry("y.wav"), "2026-11-29T23:00:00Z", TODAY) == "2026-11-29"
    assert book.add(entry("old.wav"), "2026-11-28T12:00:00Z", TODAY) is None
    assert book.add(entry("bad.wav"), "not a time", TODAY) is None
    assert sorted(book.shelves) == ["2026-11-29", "2026-11-30"]


def test_the_debounce_writes_changed_reports_at_most_once_per_interval() -> None:
    book = ReportBook(per_day=True)
    assert book.next_delay(0.0, 60.0) is None  # nothing yet
    book.add(entry("a.wav"), "2026-11-30T08:00:00Z", TODAY)
    assert book.due(0.0, 60.0) == ["2026-11-30"]
    packed, covered = book.take("2026-11-30")
    assert [e.row.key for e in unpacked(packed)] == ["a.wav"]
    book.add(entry("b.wav"), "2026-11-30T08:01:00Z", TODAY)  # finished during the write
    book.written("2026-11-30", 0.0, covered)
    assert book.shelves["2026-11-30"].changed == 1
    assert book.due(30.0, 60.0) == [] and book.next_delay(30.0, 60.0) == 30.0
    assert book.due(60.0, 60.0) == ["2026-11-30"]
    packed, covered = book.take("2026-11-30")
    assert len(packed) == 2
    book.written("2026-11-30", 60.0, covered)
    assert book.next_delay(500.0, 60.0) is None  # nothing finished since


def test_a_failed_write_keeps_its_changes_and_waits_an_interval() -> None:
    book = ReportBook(per_day=False)
    book.add(entry("a.wav"), "2026-11-30T08:00:00Z", TODAY)
    book.failed(JOB, 10.0)
    assert book.due(20.0, 60.0) == [] and book.due(70.0, 60.0) == [JOB]


def test_days_past_yesterday_are_forgotten_once_written() -> None:
    book = ReportBook(per_day=True)
    book.add(entry("a.wav"), "2026-11-29T08:00:00Z", TODAY)
    book.add(entry("b.wav"), "2026-11-30T08:00:00Z", TODAY)
    tomorrow = date(2026, 12, 1)
    book.forget(tomorrow)
    assert sorted(book.shelves) == ["2026-11-29", "2026-11-30"]  # 29th not written yet
    _, covered = book.take("2026-11-29")
    book.written("2026-11-29", 0.0, covered)
    book.forget(tomorrow)
    assert sorted(book.shelves) == ["2026-11-30"]


def test_a_batch_job_without_calls_still_gets_its_report_at_the_end() -> None:
    book = ReportBook(per_day=False)
    book.ensure_job()
    assert book.take(JOB) == ([], 0)
    watch = ReportBook(per_day=True)
    watch.ensure_job()
    assert watch.shelves == {}


def test_a_packed_entry_is_small_and_reads_back_the_same() -> None:
    e = entry("2026-11-30/alice/c1.wav")
    data = pack(e)
    assert unpack(data) == e
    assert len(data) < 600


def test_a_report_assembled_from_entries_links_up_from_its_folder() -> None:
    report = assemble([entry("b/c2.wav"), entry("a/c1.wav")], link_prefix="../../../")
    assert [(r.key, r.link) for r in report.rows] == [
        ("a/c1.wav", "../../../a/c1.wav.json"),
        ("b/c2.wav", "../../../b/c2.wav.json"),
    ]
    assert report.emotion_over_time["agent"][0] == {"HAPPY": 2.4}
