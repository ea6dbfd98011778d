"""A Watch job and the keys bucket notifications name: each is queued at once, without
a listing, also while a scan runs; and a wake during a scan is never lost."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prometheus_client import REGISTRY

from hark_operator.jobs.intake import NOTIFIED_LIMIT
from hark_operator.jobs.lifecycle import JobRunner
from hark_operator.jobs.planner import PlanItem
from hark_operator.jobs.progress import NOTICED, JobTracker
from hark_operator.resource.models import Counts
from hark_serving.runs.itemspec import ItemResult
from hark_serving.storage.s3 import ObjectInfo
from hark_serving.storage.uris import S3Uri, parse_s3_uri

from .fakes import FakeStore
from .test_lifecycle import REF, Harness, run, spec

INPUTS = [f"calls/{i:02d}.wav" for i in range(20)]
T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)


def _for_a_scan() -> bool:
    """Whether this listing is a job's scan (not the summary's own pass over the outputs)."""
    frame = sys._getframe()
    while frame is not None and frame.f_globals.get("__name__") != "hark_operator.jobs.intake":
        frame = frame.f_back  # type: ignore[assignment]
    return frame is not None


@dataclass
class ListingStore(FakeStore):
    """A FakeStore that counts the scans' listings of the input prefix and calls `during`
    once, from the listing thread, when the first has yielded half its objects (each
    listing reads its keys when it starts, as S3 pages do past the point they reached)."""

    listings: int = 0
    during: Callable[[], None] | None = None
    fired: bool = field(default=False)

    def iter_objects(self, prefix: S3Uri, page_size: int = 1000) -> Iterator[ObjectInfo]:
        scanning = prefix.bucket == "in-b" and _for_a_scan()
        self.listings += scanning
        for n, obj in enumerate(super().iter_objects(prefix, page_size)):
            if scanning and n == len(INPUTS) // 2 and not self.fired:
                self.fired = True
                if self.during is not None:
                    self.during()
            yield obj


def notified(result: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "hark_operator_notified_keys_total", {"job": REF.key, "result": result}
        )
        or 0.0
    )


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.02)


async def watching(store: ListingStore) -> tuple[Harness, JobRunner, asyncio.Task[object]]:
    for key in INPUTS:
        store.put(f"s3://in-b/{key}")
    h = Harness(store)
    # An hour between polls: within a test only notifications and wakes start work.
    runner = await h.job(spec(mode="Watch", pollIntervalSeconds=3600))
    return h, runner, asyncio.create_task(runner.run())


async def stop(h: Harness, task: asyncio.Task[object]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await h.close()


def test_a_key_notified_during_a_scan_is_queued_without_another_listing() -> None:
    async def main() -> None:
        store = ListingStore()
        loop = asyncio.get_running_loop()
        box: list[JobRunner] = []

        def upload_behind_the_listing() -> None:
            # Sorts before the half the listing has passed: this scan cannot see it.
            store.put("s3://in-b/calls/00-late.wav")
            loop.call_soon_threadsafe(box[0].notify, ["calls/00-late.wav"])

        store.during = upload_behind_the_listing
        dispatched = notified("dispatched")
        h, runner, task = await watching(store)
        box.append(runner)
        await until(lambda: "t/00-late.wav.json" in store.keys("out-b"))
        await until(lambda: len(h.worker.calls) == len(INPUTS) + 1)
        await until(lambda: runner.observation().counts.succeeded == len(INPUTS) + 1)
        assert store.listings == 1 and runner.tracker.scans == 1
        assert notified("dispatched") == dispatched + 1
        counts = runner.observation().counts
        assert (counts.total, counts.pending, counts.in_flight) == (len(INPUTS) + 1, 0, 0)
        assert [r.input_uri for r in h.worker.calls].count("s3://in-b/calls/00-late.wav") == 1
        await stop(h, task)

    run(main())


def test_a_notified_key_that_is_current_or_no_input_is_left_alone() -> None:
    async def main() -> None:
        store = ListingStore()
        h, runner, task = await watching(store)
        await until(lambda: runner.tracker.scans == 1 and len(h.worker.calls) == len(INPUTS))
        await until(lambda: runner.observation().counts.succeeded == len(INPUTS))
        current, ignored = notified("current"), notified("ignored")
        store.put("s3://in-b/calls/readme.txt")  # not audio: the job's filters drop it
        runner.notify(["calls/00.wav", "calls/readme.txt", "calls/gone.wav", "elsewhere/a.wav"])
        await until(lambda: notified("current") + notified("ignored") == current + ignored + 4)
        assert notified("current") == current + 1 and notified("ignored") == ignored + 3
        assert len(h.worker.calls) == len(INPUTS) and store.listings == 1
        await stop(h, task)

    run(main())


def test_a_wake_during_a_scan_starts_the_next_scan_after_it() -> None:
    async def main() -> None:
        store = ListingStore()
        box: list[JobRunner] = []
        loop = asyncio.get_running_loop()

        def wake_mid_scan() -> None:
            loop.call_soon_threadsafe(box[0].wake)

        store.during = wake_mid_scan
        h, runner, task = await watching(store)
        box.append(runner)
        # Not an hour later: the wake that came mid-scan cut the wait short.
        await until(lambda: runner.tracker.scans == 2)
        assert store.listings >= 2
        await stop(h, task)

    run(main())


def test_a_burst_of_notifications_during_a_scan_becomes_one_more_scan() -> None:
    async def main() -> None:
        store = ListingStore()
        box: list[JobRunner] = []
        loop = asyncio.get_running_loop()
        burst = [f"calls/burst-{i:04d}.wav" for i in range(NOTIFIED_LIMIT + 1)]

        def bulk_upload() -> None:
            for key in burst[:3]:
                store.put(f"s3://in-b/{key}")
            loop.call_soon_threadsafe(box[0].notify, burst)

        store.during = bulk_upload
        deferred = notified("deferred")
        h, runner, task = await watching(store)
        box.append(runner)
        await until(lambda: runner.tracker.scans == 2)
        await until(lambda: len(h.worker.calls) == len(INPUTS) + 3)
        assert notified("deferred") == deferred + len(burst)
        assert store.listings == 2
        await stop(h, task)

    run(main())


# -- the counts of a notified input, whatever the scan running beside it saw --------


def pending_item(uri: str, state: str = "pending") -> PlanItem:
    return PlanItem("r", parse_s3_uri(uri), S3Uri("o", "r"), 1, "e", state)  # type: ignore[arg-type]


def ok(uri: str) -> ItemResult:
    return ItemResult(status="succeeded", input_uri=uri, output_uri="s3://o/r.json")


def complete_scan(t: JobTracker, pending: int) -> None:
    t.begin_scan()
    for i in range(pending):
        t.scanned(pending_item(f"s3://in-b/old{i}"))
    t.end_scan(T0)


def test_a_notified_input_adds_one_to_the_counts_until_a_scan_lists_it() -> None:
    t = JobTracker()
    complete_scan(t, pending=2)
    t.noticed("s3://in-b/new")
    assert t.counts(in_flight=1) == Counts(total=3, inFlight=1, pending=2)
    t.record(ok("s3://in-b/new"), "s3://in-b/new", T0, NOTICED)
    assert t.counts(in_flight=0) == Counts(total=3, succeeded=1, pending=2)


def test_a_notified_input_the_running_scan_never_lists_carries_over_with_its_outcome() -> None:
    for outcome_during_the_scan in (True, False):
        t = JobTracker()
        complete_scan(t, pending=1)
        t.begin_scan()
        t.noticed("s3://in-b/new")
        t.scanned(pending_item("s3://in-b/old0"))  # the listing had passed the new key
        if outcome_during_the_scan:
            t.record(ok("s3://in-b/new"), "s3://in-b/new", T0, NOTICED)
        t.end_scan(T0)
        if not outcome_during_the_scan:
            t.record(ok("s3://in-b/new"), "s3://in-b/new", T0, NOTICED)
        assert t.counts(in_flight=0) == Counts(total=2, succeeded=1, pending=1)


def test_a_notified_input_the_running_scan_lists_is_counted_once() -> None:
    for listed, outcome_first in [("pending", False), ("pending", True), ("done", True)]:
        t = JobTracker()
        complete_scan(t, pending=1)
        t.begin_scan()
        t.noticed("s3://in-b/new")
        if outcome_first:
            t.record(ok("s3://in-b/new"), "s3://in-b/new", T0, NOTICED)
        t.scanned(pending_item("s3://in-b/new", listed))
        t.scanned(pending_item("s3://in-b/old0"))
        if not outcome_first:
            t.record(ok("s3://in-b/new"), "s3://in-b/new", T0, NOTICED)
        t.end_scan(T0)
        assert t.counts(in_flight=0) == Counts(total=2, succeeded=1, pending=1), listed
