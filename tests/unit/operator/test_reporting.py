"""Counts between scans, the status built from them, conditions, and writes that conflict."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from hark_operator.jobs.planner import PlanItem
from hark_operator.jobs.progress import JobTracker
from hark_operator.jobs.reporter import (
    Conflict,
    Observation,
    Reporter,
    build_status,
    runner_failure_status,
    set_condition,
)
from hark_operator.resource.models import Counts, JobStatus
from hark_serving.runs.itemspec import ItemError, ItemResult
from hark_serving.storage.uris import S3Uri

from .fakes import Events

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def plan(state: str, n: int = 1, preexisting: bool = False) -> list[PlanItem]:
    return [
        PlanItem(f"{state}{i}", S3Uri("b", "k"), S3Uri("o", "k"), 10, "e", state, preexisting)  # type: ignore[arg-type]
        for i in range(n)
    ]


def ok(status: str = "succeeded") -> ItemResult:
    return ItemResult(
        status=status, input_uri="s3://b/k", output_uri="s3://o/k.json", audio_seconds=3
    )  # type: ignore[arg-type]


def bad(code: str = "corrupt_audio") -> ItemResult:
    return ItemResult(
        status="failed",
        input_uri="s3://b/k",
        output_uri="s3://o/k.json",
        error=ItemError(code=code, message="m"),
    )


def scanned(tracker: JobTracker, done: int, pending: int, failed: int = 0, skipped: int = 0) -> int:
    tracker.begin_scan()
    tag = tracker.scan_number
    for item in (
        plan("done", done - skipped)
        + plan("done", skipped, True)
        + plan("pending", pending)
        + plan("failed", failed)
    ):
        tracker.scanned(item)
    return tag


def test_counts_follow_outcomes_after_a_complete_scan() -> None:
    t = JobTracker()
    tag = scanned(t, done=2, pending=5, failed=1, skipped=1)
    t.end_scan(T0)
    assert t.counts(in_flight=2) == Counts(
        total=8, succeeded=2, failed=1, skipped=1, inFlight=2, pending=3
    )
    t.record(ok(), "k1", T0, tag)
    t.record(ok("skipped"), "k2", T0, tag)
    t.record(bad(), "k3", T0, tag)
    assert t.counts(in_flight=1) == Counts(
        total=8, succeeded=4, failed=2, skipped=2, inFlight=1, pending=1
    )
    assert t.backlog(in_flight=1) == 2


def test_the_first_scan_shows_progress_while_it_runs() -> None:
    t = JobTracker()
    tag = scanned(t, done=0, pending=3)
    t.record(ok(), "k", T0, tag)
    assert t.counts(0) == Counts(total=3, succeeded=1, pending=2)
    t.end_scan(T0)  # the outcome was of an item this scan queued: it carries over
    assert t.counts(0) == Counts(total=3, succeeded=1, pending=2)


def test_outcomes_of_older_scans_that_raced_a_scan_are_left_to_the_next_one() -> None:
    t = JobTracker()
    old = scanned(t, done=0, pending=2)
    t.end_scan(T0)
    scanned(t, done=1, pending=1)  # the second scan may or may not have seen this output...
    t.record(ok(), "k", T0, old)  # ...so the outcome is not counted on top of it
    t.end_scan(T0)
    assert t.counts(0) == Counts(total=2, succeeded=1, pending=1)


def test_an_outcome_that_arrives_after_a_scan_listed_its_output_is_not_counted_twice() -> None:
    t = JobTracker()
    old = scanned(t, done=0, pending=2)
    t.end_scan(T0)
    scanned(t, done=1, pending=1)  # one output written; its outcome is still on its way
    t.end_scan(T0)
    t.record(ok(), "k", T0, old)  # arrives after the scan that already counted it
    assert t.counts(0) == Counts(total=2, succeeded=1, pending=1)
    newer = scanned(t, done=1, pending=1)
    t.end_scan(T0)
    t.record(ok(), "k2", T0, newer)  # queued by the last complete scan: it counts
    assert t.counts(0) == Counts(total=2, succeeded=2, pending=0)


def test_outcomes_of_an_abandoned_scans_items_are_not_taken_for_the_next_scans() -> None:
    t = JobTracker()
    first = scanned(t, done=0, pending=1)
    t.end_scan(T0)
    abandoned = scanned(t, done=0, pending=1)  # queued one item, then the listing failed
    t.abandon_scan()
    again = scanned(t, done=1, pending=0)  # its output was written before this listing
    assert len({first, abandoned, again}) == 3
    t.record(ok(), "k", T0, abandoned)  # so its outcome must not count a second time
    t.end_scan(T0)
    assert t.counts(0) == Counts(total=1, succeeded=1)


def test_counts_never_go_out_of_range() -> None:
    t = JobTracker()
    tag = scanned(t, done=1, pending=0)
    t.end_scan(T0)
    for _ in range(3):
        t.record(ok(), "k", T0, tag)
    c = t.counts(in_flight=5)
    assert (c.total, c.succeeded, c.pending, c.in_flight) == (1, 1, 0, 0)


def test_recent_failures_are_bounded_and_newest_last() -> None:
    t = JobTracker(recent_limit=3)
    for i in range(10):
        t.record(bad(f"code{i}"), f"k{i}", T0 + timedelta(seconds=i), 1)
    assert [f.reason for f in t.recent] == ["code7", "code8", "code9"]


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = set_condition((), "Progressing", "True", "Transcribing", "1/3", T0, 1)
    later = set_condition(
        first, "Progressing", "True", "Transcribing", "2/3", T0 + timedelta(minutes=1), 1
    )
    assert later[0].last_transition_time == T0 and later[0].message == "2/3"
    flipped = set_condition(
        later, "Progressing", "False", "Completed", "3/3", T0 + timedelta(minutes=2), 2
    )
    assert (
        flipped[0].last_transition_time == T0 + timedelta(minutes=2)
        and flipped[0].observed_generation == 2
    )


def test_status_for_each_phase() -> None:
    counts = Counts(total=3, succeeded=2, failed=1)
    done = build_status(
        JobStatus(), Observation("Succeeded", counts, generation=3, completion_time=T0), T0
    )
    cond = {c.type: c for c in done.conditions}
    assert done.progress == "2/3" and done.observed_generation == 3
    assert (cond["Complete"].status, cond["Progressing"].status, cond["Suspended"].status) == (
        "True",
        "False",
        "False",
    )
    assert [c.type for c in done.conditions] == [
        "Progressing",
        "ProcessorAvailable",
        "Suspended",
        "Complete",
    ]
    suspended = build_status(JobStatus(), Observation("Suspended", Counts(total=3, pending=3)), T0)
    cond = {c.type: c for c in suspended.conditions}
    assert cond["Suspended"].status == "True" and cond["Progressing"].reason == "Suspended"
    blocked = build_status(
        JobStatus(),
        Observation("Running", Counts(total=3, pending=3), blocked=("StorageUnavailable", "down")),
        T0,
    )
    assert {c.type: c for c in blocked.conditions}["Progressing"].reason == "StorageUnavailable"
    failed = build_status(
        JobStatus(), Observation("Failed", Counts(), failure=("BucketNotAllowed", "no")), T0
    )
    cond = {c.type: c for c in failed.conditions}
    assert cond["Failed"].reason == "BucketNotAllowed" and "Complete" not in cond
    patch = done.to_patch()
    assert patch["counts"]["inFlight"] == 0 and patch["completionTime"] == "2026-05-01T00:00:00Z"


class FlakyWriter:
    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.written: list[JobStatus] = []
        self.reads = 0

    async def read(self) -> tuple[JobStatus, str | None]:
        self.reads += 1
        return JobStatus(phase="Pending"), f"rv{self.reads}"

    async def write(self, status: JobStatus, resource_version: str | None) -> str | None:
        if self.conflicts > 0:
            self.conflicts -= 1
            raise Conflict("the object changed")
        self.written.append(status)
        return "rv-new"


def test_a_conflicting_write_is_read_again_and_retried() -> None:
    writer = FlakyWriter(conflicts=2)
    reporter = Reporter(writer, Events(), JobStatus(), "rv0")
    obs = Observation("Running", Counts(total=1, pending=1))
    assert asyncio.run(reporter.publish(obs, T0))
    assert writer.reads == 2 and len(writer.written) == 1 and reporter.resource_version == "rv-new"
    assert asyncio.run(reporter.publish(obs, T0))  # unchanged: nothing written
    assert len(writer.written) == 1


def test_endless_conflicts_give_up_for_this_round() -> None:
    writer = FlakyWriter(conflicts=100)
    reporter = Reporter(writer, Events())
    assert not asyncio.run(reporter.publish(Observation("Running", Counts()), T0))


def test_a_paused_processor_and_unwritten_error_records_are_conditions() -> None:
    from hark_operator.jobs.gate import GateState

    counts = Counts(total=4, succeeded=1, pending=3)
    paused = GateState(False, "ProcessorRefused", "http://hark:8000/v1/items answered 401", 2)
    status = build_status(
        JobStatus(), Observation("Running", counts, processor=paused, unrecorded=2), T0
    )
    cond = {c.type: c for c in status.conditions}
    assert (cond["ProcessorAvailable"].status, cond["ProcessorAvailable"].reason) == (
        "False",
        "ProcessorRefused",
    )
    assert cond["Progressing"].status == "False" and "401" in cond["Progressing"].message
    assert cond["ErrorRecordsWritten"].status == "False" and "2 failed" in (
        cond["ErrorRecordsWritten"].message
    )
    waiting = build_status(
        status,
        Observation("Running", counts, environment=("storage_unavailable", "minio: refused")),
        T0,
    )
    cond = {c.type: c for c in waiting.conditions}
    assert cond["ProcessorAvailable"].status == "True"
    assert (cond["Progressing"].status, cond["Progressing"].reason) == (
        "False",
        "StorageUnavailable",
    )


def test_a_runner_that_will_start_again_reads_pending_with_the_reason() -> None:
    previous = JobStatus(phase="Watching", counts=Counts(total=3, succeeded=3))
    status = runner_failure_status(previous, "RuntimeError: boom", 2, 20.4, T0, 4)
    assert status.phase == "Pending" and status.counts == previous.counts
    (progressing,) = [c for c in status.conditions if c.type == "Progressing"]
    assert (progressing.status, progressing.reason) == ("False", "RunnerFailed")
    assert progressing.message == (
        "the job's runner failed: RuntimeError: boom; it starts again in 20s (failure 2)"
    )
    assert progressing.observed_generation == 4 and status.completion_time is None
    assert not [c for c in status.conditions if c.type == "Failed"]


def test_a_batch_runner_that_gave_up_reads_failed() -> None:
    status = runner_failure_status(JobStatus(phase="Running"), "KeyError: 'x'", 21, None, T0, 1)
    assert status.phase == "Failed" and status.finished and status.completion_time == T0
    reasons = {c.type: (c.status, c.reason) for c in status.conditions}
    assert reasons["Failed"] == ("True", "RunnerFailed")
    assert reasons["Progressing"] == ("False", "RunnerFailed")
