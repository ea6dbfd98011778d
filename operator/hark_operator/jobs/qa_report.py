"""The QA reports of a job with `analytics` (calls.csv, report.json, report.html), kept up to
date while it runs.

Every transcript the job's summary reads (those that existed when the job started, and
each one it writes) is also reduced to a report entry (`runs.qa.entry_of_document`) and
put in the `ReportBook`; no transcript is read twice. A Batch job rewrites its report in
`<output prefix>_hark/<namespace>.<job>/` while calls finish and once more when it
ends; a Watch job writes one report per UTC day of completion, in `<YYYY-MM-DD>/` under
that folder. A report is rewritten at most every `interval` seconds, and only when calls
were added; nothing is written before the job has read the transcripts that existed when
it started, so a restarted operator never replaces a report with a shorter one. A report
that cannot be written is a Warning Event (once until one is written again), never a
failed job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from hark_operator.clients.storage import Stores
from hark_operator.jobs.report_book import ReportBook, report_folder, unpacked
from hark_operator.jobs.reporter import EventSink
from hark_operator.resource.models import JobSpec
from hark_serving.analytics.report import MetadataPattern
from hark_serving.analytics.rules import Rules
from hark_serving.errors import HarkError, InvalidOption, StorageError
from hark_serving.runs.qa import REPORT_DIR, entry_of_document, write_entries_report
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import S3Uri

log = logging.getLogger(__name__)


class QaReports:
    """The reports of one job: `add` each transcript read, `run` the rewrites, `finish`."""

    def __init__(
        self,
        spec: JobSpec,
        job: str,
        stores: Stores,
        store: Callable[[], S3Store | None],
        events: EventSink,
        *,
        interval: float,
        wall: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert spec.analytics is not None
        self.job = job  # <namespace>.<name>
        self.output_prefix = spec.output_prefix
        self.stores = stores
        self.store = store
        self.events = events
        self.interval = interval
        self.wall = wall
        self.clock = clock
        self.book = ReportBook(per_day=spec.mode == "Watch")
        self.rules: Rules | None = None
        self.pattern: MetadataPattern | None = None
        self.problem: str | None = None
        try:
            self.rules = spec.analytics.rules()
            pattern = spec.analytics.metadata.pattern
            self.pattern = MetadataPattern.parse(pattern) if pattern else None
        except InvalidOption as exc:
            self.problem = str(exc)
        self.ready = False
        self._changed = asyncio.Event()
        self._closing = False
        self._failing = False

    def today(self) -> date:
        return self.wall().date()

    async def add(self, base: S3Uri, doc: dict[str, Any]) -> None:
        """A transcript (the JSON of output base `base`) the job read: into its report."""
        prefix = self.output_prefix
        if base.bucket != prefix.bucket or not base.key.startswith(prefix.key):
            return
        relative = base.key[len(prefix.key) :]
        stamp = doc.get("created_at")
        if not isinstance(stamp, str) or self.book.shelf_for(stamp, self.today()) is None:
            return  # a Watch job's older day: not parsed at all
        try:
            entry, created = await self.stores.run(
                lambda: entry_of_document(relative, doc, rules=self.rules, pattern=self.pattern)
            )
        except (ValueError, HarkError) as exc:
            log.warning("%s: %s: left out of the report: %s", self.job, relative, exc)
            return
        if self.book.add(entry, created, self.today()) is not None:
            self._changed.set()

    def open(self) -> None:
        """The transcripts that existed when the job started are all in: reports may be written."""
        self.ready = True
        self._changed.set()

    async def run(self) -> None:
        """Rewrite each report when it is due, until `finish`."""
        while not self._closing:
            self._changed.clear()
            delay = self.book.next_delay(self.clock(), self.interval) if self.ready else None
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)
                continue
            for name in self.book.due(self.clock(), self.interval):
                await self._write(name)
            self.book.forget(self.today())

    async def finish(self, task: asyncio.Task[None] | None) -> None:
        """The job ended: stop the rewrites (a write under way completes first), then write
        every report that has calls not yet in it."""
        self._closing = True
        self._changed.set()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        self.book.ensure_job()
        for name in sorted(self.book.shelves):
            if self.book.shelves[name].changed or self.book.shelves[name].written_at is None:
                await self._write(name)

    async def _write(self, name: str) -> None:
        store = self.store()
        folder = report_folder(f"{REPORT_DIR}/{self.job}", name)
        packed, covered = self.book.take(name)
        try:
            if self.problem is not None:
                raise InvalidOption(self.problem)
            if store is None:
                raise StorageError("no object store yet")
            await self.stores.run(
                lambda: write_entries_report(
                    store, self.output_prefix, folder, unpacked(packed), self.pattern
                )
            )
        except (StorageError, InvalidOption) as exc:
            self.book.failed(name, self.clock())
            log.warning("%s: QA report %s not written: %s", self.job, folder, exc)
            if not self._failing:
                self._failing = True
                await self.events.event("Warning", "ReportNotWritten", f"{folder}: {exc}")
            return
        self.book.written(name, self.clock(), covered)
        self._failing = False
        log.info("%s: QA report %s written (%d calls)", self.job, folder, len(packed))
