"""A job's counts between two scans: the last complete scan plus the outcomes since.

A scan of the prefixes is exact but takes a while on a big prefix, and items
finish while it runs. So the counts shown are the latest *complete* scan
(total, done, failed, pending) moved along by the outcomes that arrived after
it completed: a success moves one item from pending to succeeded, a final
failure from pending to failed.

Each item carries the number of the scan that queued it. An item queued by
the running scan was pending in it, so its outcome carries over into the
counts after that scan completes. An outcome of an item queued earlier may
or may not be in the running scan's listing, so it is left to the next scan
rather than risk counting it twice. The same holds after that scan completes:
an outcome of an item queued before the last complete scan may already be in
its listing (the output is written before the outcome reaches the operator),
so only outcomes of items the last complete scan queued move its counts; the
others wait for the next scan. Counting such an outcome on top of the listing
once showed a Watch job all done while one file still waited for a retry.
Before the first scan completes, the running scan is shown with every outcome
so far, so a first scan of a huge prefix shows progress too.

An input a bucket notification brought is queued without a scan (tag
`NOTICED`) and adds one to the total. When that happens while a scan runs,
the scan may list it or not (it may have passed its key already): listed
pending, its outcome carries over like one the scan queued; listed done or
failed, the scan counted it; not listed at all, it carries over into the
counts after that scan, with its outcome if that came already.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime

from hark_operator.jobs.planner import PlanItem, ScanTally
from hark_operator.resource.models import Counts, FailureRecord
from hark_serving.runs.itemspec import ItemResult

RECENT_FAILURES = 20
NOTICED = 0  # the tag of items queued without a scan


@dataclass
class _Delta:
    total: int = 0  # inputs noticed outside a scan
    succeeded: int = 0
    skipped: int = 0
    failed: int = 0

    def add(self, status: str) -> None:
        if status == "failed":
            self.failed += 1
        else:
            self.succeeded += 1
            self.skipped += status == "skipped"


@dataclass
class JobTracker:
    recent_limit: int = RECENT_FAILURES
    scans: int = 0  # completed scans
    # Scans begun, complete or abandoned: each gets a number of its own, so the items
    # an abandoned scan queued are never taken for the next scan's.
    begun: int = 0
    completed: int = 0  # the number of the last complete scan
    snapshot: ScanTally | None = None
    running: ScanTally | None = None
    delta: _Delta = field(default_factory=_Delta)  # since the last complete scan
    carry: _Delta = field(default_factory=_Delta)  # of items the running scan queued
    recent: deque[FailureRecord] = field(default_factory=deque)
    last_scan_time: datetime | None = None
    # Inputs noticed while the running scan runs and not listed by it yet: input URI →
    # its outcome's status once it came. And those it listed pending, outcome to come.
    unlisted: dict[str, str | None] = field(default_factory=dict)
    listed_pending: set[str] = field(default_factory=set)

    @property
    def scan_number(self) -> int:
        """The number of the scan running (or about to run): tag items with it."""
        return self.begun if self.running is not None else self.begun + 1

    def begin_scan(self) -> None:
        self.begun += 1
        self.running = ScanTally()
        self.carry = _Delta()
        self.unlisted.clear()
        self.listed_pending.clear()

    def scanned(self, item: PlanItem) -> None:
        assert self.running is not None, "begin_scan first"
        self.running.add(item)
        if self.unlisted and str(item.input) in self.unlisted:
            key = str(item.input)
            status = self.unlisted.pop(key)
            if item.state == "pending" and status is None:
                self.listed_pending.add(key)
            elif item.state == "pending" and status is not None:
                self.carry.add(status)  # its outcome came before its listed state

    def end_scan(self, when: datetime) -> ScanTally:
        assert self.running is not None, "begin_scan first"
        for status in self.unlisted.values():
            self.carry.total += 1
            if status is not None:
                self.carry.add(status)
        self.unlisted.clear()
        self.listed_pending.clear()
        self.snapshot, self.running = self.running, None
        self.delta, self.carry = self.carry, _Delta()
        self.scans += 1
        self.completed = self.begun
        self.last_scan_time = when
        return self.snapshot

    def noticed(self, key: str) -> None:
        """Input `key` queued without a scan (a notification named it): one more in total."""
        self.delta.total += 1
        if self.running is not None:
            self.unlisted[key] = None

    def abandon_scan(self) -> None:
        """A scan that failed half-way tells nothing; the last complete one stands."""
        self.running = None
        self.carry = _Delta()
        self.unlisted.clear()
        self.listed_pending.clear()

    def record(self, result: ItemResult, key: str, when: datetime, tag: int) -> None:
        """A final outcome from the dispatcher, of an item queued by scan `tag`."""
        deltas = []
        if self.snapshot is None or tag in (self.completed, NOTICED):
            deltas.append(self.delta)
        if self.running is not None:
            if tag == self.scan_number or key in self.listed_pending:
                self.listed_pending.discard(key)
                deltas.append(self.carry)
            elif tag == NOTICED and key in self.unlisted:
                self.unlisted[key] = result.status
        for d in deltas:
            d.add(result.status)
        if result.status == "failed":
            error = result.error
            self._remember(
                FailureRecord(
                    key=key,
                    reason=error.code if error else "failed",
                    message=(error.message if error else "")[:512],
                    time=when,
                )
            )

    def _remember(self, failure: FailureRecord) -> None:
        self.recent.append(failure)
        while len(self.recent) > self.recent_limit:
            self.recent.popleft()

    def seed_failures(self, failures: list[FailureRecord]) -> None:
        """Failures found by scanning (their .error.json), oldest first."""
        for failure in failures[-self.recent_limit :]:
            self._remember(failure)

    @property
    def base(self) -> ScanTally:
        if self.snapshot is not None:
            return self.snapshot
        return self.running or ScanTally()

    def counts(self, in_flight: int) -> Counts:
        base, d = self.base, self.delta
        total = base.total + d.total
        failed = min(total, base.failed + d.failed)
        succeeded = min(total - failed, base.done + d.succeeded)
        skipped = min(succeeded, base.skipped + d.skipped)
        in_flight = min(in_flight, total - failed - succeeded)
        pending = max(0, total - succeeded - failed - in_flight)
        return Counts(
            total=total,
            succeeded=succeeded,
            failed=failed,
            skipped=skipped,
            in_flight=in_flight,
            pending=pending,
        )

    def backlog(self, in_flight: int) -> int:
        """Items waiting or in flight: the scaling policy's input for this job."""
        c = self.counts(in_flight)
        return c.pending + c.in_flight

    def with_scan(self, tally: ScanTally) -> JobTracker:
        """A copy whose last complete scan is `tally` (for tests and tools)."""
        return replace(self, snapshot=tally, delta=_Delta(), carry=_Delta())
