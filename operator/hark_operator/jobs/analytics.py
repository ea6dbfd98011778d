"""What a job with `analytics` runs beside its items: the QA reports (`qa_report`) and,
when the operator has a webhook (`HARK_WEBHOOK_URL`), the alert outbox (`outbox`).

The job runner calls in at a few points: each transcript its summary reads (`add`),
each item that raised an alert (`alerted`), the end of the transcripts that existed
when it started (`open_after`), the end of a Batch job (`finish`), the time after the
end (`settled`: the outbox is empty), and its own end (`close`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hark_operator.jobs.env import JobEnv
from hark_operator.jobs.outbox import AlertOutbox
from hark_operator.jobs.qa_report import QaReports
from hark_operator.jobs.reporter import EventSink
from hark_operator.jobs.summary_store import SummaryKeeper
from hark_operator.resource.models import JobRef, JobSpec
from hark_serving.retry import RetryPolicy
from hark_serving.runs.qa import alerts_prefix
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import S3Uri

log = logging.getLogger(__name__)


class JobAnalytics:
    def __init__(self, reports: QaReports, outbox: AlertOutbox | None) -> None:
        self.reports = reports
        self.outbox = outbox
        self._report_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def start(
        cls,
        ref: JobRef,
        spec: JobSpec,
        env: JobEnv,
        events: EventSink,
        summary: SummaryKeeper,
        *,
        running: bool,
    ) -> JobAnalytics | None:
        """A job's analytics, started, reading the transcripts its summary reads; None when
        it has no `analytics`. With `running`, the reports are kept up to date too."""
        analytics = cls.of(ref, spec, env, events, lambda: summary.store)
        if analytics is not None:
            summary.on_transcript = analytics.add
            analytics.begin(running)
        return analytics

    @classmethod
    async def resume(
        cls,
        ref: JobRef,
        spec: Callable[[], JobSpec],
        env: JobEnv,
        events: EventSink,
        summary: SummaryKeeper,
    ) -> JobAnalytics | None:
        """For a job that finished before this operator started: the alerts its outbox
        still holds are delivered (None when there is nothing to look at)."""
        if env.webhook is None:
            return None
        try:
            current = spec()
            summary.store = await env.stores.store(current.storage.profile)
        except Exception as exc:  # its outbox waits for the next start
            log.warning("%s: alert outbox not read: %s", ref.key, exc)
            return None
        return cls.start(ref, current, env, events, summary, running=False)

    @classmethod
    def of(
        cls,
        ref: JobRef,
        spec: JobSpec,
        env: JobEnv,
        events: EventSink,
        store: Callable[[], S3Store | None],
    ) -> JobAnalytics | None:
        """A job's analytics, or None when it has no `analytics`."""
        if spec.analytics is None:
            return None
        job = f"{ref.namespace}.{ref.name}"
        reports = QaReports(
            spec, job, env.stores, store, events, interval=env.report_interval, wall=env.wall
        )
        outbox = None
        if env.webhook is not None:
            outbox = AlertOutbox(
                env.webhook,
                env.stores,
                store,
                alerts_prefix(spec.output_prefix, job),
                spec.output_prefix,
                events,
                policy=RetryPolicy(base=env.retry_delay, cap=env.retry_cap, attempts=None),
                wall=env.wall,
                name=ref.key,
            )
        return cls(reports, outbox)

    @property
    def alerts_prefix(self) -> str | None:
        """Where the worker writes an item's alert before its transcript (None: no webhook)."""
        return str(self.outbox.prefix) if self.outbox is not None else None

    def begin(self, running: bool) -> None:
        """Deliver what the outbox holds; with `running`, keep the reports up to date too."""
        if self.outbox is not None:
            self._tasks.append(asyncio.create_task(self.outbox.run(), name="hark-alert-outbox"))
        if running:
            self._report_task = asyncio.create_task(self.reports.run(), name="hark-qa-report")
            self._tasks.append(self._report_task)

    async def add(self, base: S3Uri, doc: dict[str, Any]) -> None:
        await self.reports.add(base, doc)

    def alerted(self) -> None:
        if self.outbox is not None:
            self.outbox.wake()

    def open_after(self, seeded: Callable[[], Awaitable[None]]) -> None:
        """Write reports once `seeded()` (every transcript from before the start read) is done."""

        async def wait_then_open() -> None:
            await seeded()
            self.reports.open()

        self._tasks.append(asyncio.create_task(wait_then_open(), name="hark-qa-report-open"))

    async def finish(self) -> None:
        """A Batch job ended: its report, complete."""
        await self.reports.finish(self._report_task)

    async def settled(self) -> None:
        """Until the outbox has delivered everything (at once without a webhook)."""
        if self.outbox is not None:
            await self.outbox.emptied()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
