"""One job from start to finish: scan, dispatch, report, repeat.

    Pending ─► Running ─(nothing pending, nothing in flight)─► Succeeded ─(ttl)─► deleted
       │          │                                       └─► Failed (the job cannot run)
       │          └─ spec.suspend ─► Suspended ─ resume ─► Running
       └─► Watching (mode Watch): scan every pollIntervalSeconds, forever

A scan lists both prefixes (planner), queues every pending input with the
dispatcher and counts the rest. A Batch job waits until its queue drains and
scans again; a scan that finds nothing pending and nothing in flight
completes it. Nothing lives only in memory: a new runner (after a restart)
scans S3 and carries on, and the first scan reads the existing transcripts'
summaries so the job summary covers them too. Deleting the job cancels the
runner; in-flight items are abandoned and outputs stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import ValidationError

from hark_operator import metrics
from hark_operator.clients.storage import Stores
from hark_operator.errors import JobConfigError
from hark_operator.jobs.dispatcher import Dispatcher
from hark_operator.jobs.planner import PlanItem, Planner, ScanTally
from hark_operator.jobs.progress import JobTracker
from hark_operator.jobs.reporter import Observation, Reporter
from hark_operator.jobs.summary import summary_uri
from hark_operator.jobs.summary_store import Kind, SummaryKeeper
from hark_operator.jobs.work import Outcome, WorkItem
from hark_operator.resource.models import JobRef, JobSpec, JobStatus, Phase
from hark_serving.errors import StorageError, StorageUnavailable
from hark_serving.runs.itemspec import ItemRequest
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import parse_s3_uri

log = logging.getLogger(__name__)

CHUNK = 256  # plan items fetched from the listing thread at a time
KNOWN_CURRENT_LIMIT = 100_000
EVENT_FAILURES_PER_SCAN = 10  # ItemFailed Events per scan; the rest are in status and S3


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class JobEnv:
    """What every job of a process shares."""

    dispatcher: Dispatcher
    stores: Stores
    status_interval: float = 2.0
    retry_delay: float = 5.0
    page_size: int = 1000
    wall: Callable[[], datetime] = utcnow


def _take(gen: Generator[PlanItem, None, None], n: int) -> list[PlanItem]:
    return list(itertools.islice(gen, n))


class JobRunner:
    def __init__(
        self,
        ref: JobRef,
        spec: Callable[[], JobSpec],
        reporter: Reporter,
        env: JobEnv,
        *,
        created: datetime | None = None,
        generation: Callable[[], int | None] = lambda: None,
        status: JobStatus | None = None,
        delete: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.ref = ref
        self.spec = spec
        self.reporter = reporter
        self.env = env
        self.created = created
        self.generation = generation
        self.delete = delete
        self.status = status or JobStatus()
        self.tracker = JobTracker()
        self.summary = SummaryKeeper(
            env.stores,
            on_failure=lambda f: self.tracker.seed_failures([f]),
            name=ref.key,
        )
        self.phase: Phase = self.status.phase or "Pending"
        self.start_time = self.status.start_time
        self.completion_time = self.status.completion_time
        self.blocked: tuple[str, str] | None = None
        self.failure: tuple[str, str] | None = None
        self.summary_uri = self.status.summary_uri
        self._wake = asyncio.Event()
        self._known: OrderedDict[str, str] = OrderedDict()  # output base → etag found current
        self._failure_events = 0

    @property
    def key(self) -> str:
        return self.ref.key

    def wake(self) -> None:
        """The spec changed: stop waiting and look at it again."""
        self._wake.set()

    def backlog(self) -> int:
        if self.phase not in ("Running", "Watching"):
            return 0
        return self.tracker.backlog(self.env.dispatcher.load(self.key).running)

    # -- the loop --------------------------------------------------------------

    async def run(self) -> JobStatus:
        if self.status.finished:
            await self._after_finish()
            return self.status
        self.start_time = self.start_time or self.env.wall()
        try:
            spec = self.spec()
        except ValidationError as exc:  # the API server admitted what the models refuse
            await self._fail("InvalidSpec", "; ".join(e["msg"] for e in exc.errors()))
            await self.publish()
            return self.status
        self.env.dispatcher.register(
            self.key,
            priority=spec.priority,
            parallelism=spec.parallelism,
            max_attempts=spec.max_attempts,
            sink=self._on_outcome,
        )
        publisher = asyncio.create_task(self._publish_loop())
        try:
            finished = await self._main()
        finally:
            await self.env.dispatcher.unregister(self.key)
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
            await self.summary.close()
            metrics.forget_job(self.key)
        await self.publish()
        if finished:
            await self._after_finish()
        return self.status

    async def _main(self) -> bool:
        try:
            spec = self.spec()
            store = await self.env.stores.store(spec.storage.profile, self.ref.namespace)
        except JobConfigError as exc:
            return await self._fail("InvalidStorage", str(exc))
        self.summary.start(store)
        await self.reporter.event(
            "Normal", "Started", f"{spec.mode} job: {spec.input.uri} → {spec.output.uri}"
        )
        first, delay = True, self.env.retry_delay
        while True:
            spec = self.spec()
            self.env.dispatcher.configure(
                self.key,
                priority=spec.priority,
                parallelism=spec.parallelism,
                max_attempts=spec.max_attempts,
                suspended=spec.suspend,
            )
            if spec.suspend:
                if self.phase != "Suspended":
                    self.phase = "Suspended"
                    await self.reporter.event("Normal", "Suspended", "dispatching paused")
                    await self.publish()
                await self._sleep(self.env.status_interval)
                continue
            if self.phase == "Suspended":
                await self.reporter.event("Normal", "Resumed", "dispatching resumed")
            self.phase = "Watching" if spec.mode == "Watch" else "Running"
            try:
                tally = await self._scan(store, spec, seed=first)
            except StorageUnavailable as exc:
                self.blocked = ("StorageUnavailable", str(exc))
                await self.reporter.event("Warning", "StorageUnavailable", str(exc))
                await self.publish()
                await self._sleep(delay)
                delay = min(delay * 2, 300.0)
                continue
            except StorageError as exc:
                return await self._fail(_reason(exc.code), str(exc))
            self.blocked, first, delay = None, False, self.env.retry_delay
            if spec.mode == "Batch":
                if tally.pending == 0 and self.env.dispatcher.load(self.key).open == 0:
                    return await self._succeed(spec)
                await self._wait_idle()
            else:
                await self._write_summary(spec, final=False)
                await self._sleep(spec.poll_interval_seconds)

    async def _scan(self, store: S3Store, spec: JobSpec, *, seed: bool) -> ScanTally:
        started = time.perf_counter()
        planner = Planner(store, page_size=self.env.page_size)
        out = spec.output_prefix
        gen = planner.scan(
            spec.input_uri,
            out,
            spec.input.include,
            spec.input.exclude,
            overwrite=spec.output.overwrite,
            since=self.created,
            known_current=lambda rel, etag: self._known.get(str(out.join(rel))) == etag,
        )
        self.tracker.begin_scan()
        tag = self.tracker.scan_number
        self._failure_events = 0
        try:
            while chunk := await self.env.stores.run(_take, gen, CHUNK):
                for item in chunk:
                    self.tracker.scanned(item)
                    if item.state == "pending":
                        if not self.env.dispatcher.busy(item.key):
                            work = WorkItem(
                                item.key, self._request(spec, item), item.size, item.etag, tag
                            )
                            await self.env.dispatcher.submit(self.key, work)
                    elif seed:
                        kind: Kind = "json" if item.state == "done" else "error"
                        await self.summary.add(kind, item.output_base, str(item.input))
        except BaseException:
            self.tracker.abandon_scan()
            gen.close()
            raise
        tally = self.tracker.end_scan(self.env.wall())
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        log.debug("%s: scanned %d inputs, %d pending", self.key, tally.total, tally.pending)
        return tally

    def _request(self, spec: JobSpec, item: PlanItem) -> ItemRequest:
        return ItemRequest(
            input_uri=str(item.input),
            output_uri=str(item.output_base),
            formats=spec.formats(),
            options=spec.options.transcribe_options(),
            job=self.key,
            profile=spec.storage.profile,
            overwrite=spec.output.overwrite,
            max_segment_seconds=spec.options.vad.max_segment_seconds,
        )

    # -- outcomes and the summary ----------------------------------------------

    def _on_outcome(self, outcome: Outcome) -> None:
        result, item = outcome.result, outcome.item
        self.tracker.record(result, item.request.input_uri, self.env.wall(), item.tag)
        if result.status == "failed":
            error = result.error
            code, message = (error.code, error.message) if error else ("failed", "")
            self.summary.tally.add_failure(item.request.input_uri, code, message)
            if self._failure_events < EVENT_FAILURES_PER_SCAN:
                self._failure_events += 1
                text = (
                    f"{item.request.input_uri}: {code}: {message} (after {outcome.attempts} tries)"
                )
                self.summary.background(self.reporter.event("Warning", "ItemFailed", text))
            return
        if result.status == "skipped":
            self._known[item.key] = item.etag
            while len(self._known) > KNOWN_CURRENT_LIMIT:
                self._known.popitem(last=False)
        self.summary.add_soon("json", parse_s3_uri(item.request.output_uri), item.request.input_uri)

    # -- waiting ---------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or less when the spec changes."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _wait_idle(self) -> None:
        """Until the job's items are all done, or its spec changed (suspend, priority)."""
        self._wake.clear()
        idle = asyncio.create_task(self.env.dispatcher.idle(self.key))
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({idle, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (idle, woken):
                t.cancel()
            await asyncio.gather(idle, woken, return_exceptions=True)

    # -- status ----------------------------------------------------------------

    def observation(self) -> Observation:
        load = self.env.dispatcher.load(self.key)
        counts = self.tracker.counts(load.running)
        return Observation(
            phase=self.phase,
            counts=counts,
            generation=self.generation(),
            audio_seconds=self.summary.tally.audio_seconds,
            recent_failures=tuple(self.tracker.recent),
            start_time=self.start_time,
            completion_time=self.completion_time,
            last_scan_time=self.tracker.last_scan_time,
            summary_uri=self.summary_uri,
            blocked=self.blocked,
            failure=self.failure,
        )

    async def publish(self) -> None:
        obs = self.observation()
        metrics.BACKLOG.labels(self.key).set(obs.counts.pending + obs.counts.in_flight)
        await self.reporter.publish(obs, self.env.wall())
        self.status = self.reporter.previous

    async def _publish_loop(self) -> None:
        while True:
            await asyncio.sleep(self.env.status_interval)
            try:
                await self.publish()
            except Exception as exc:  # a report lost; the next one carries the same facts
                log.warning("%s: status not written: %s", self.key, exc)

    # -- the end ---------------------------------------------------------------

    async def _write_summary(self, spec: JobSpec, *, final: bool) -> None:
        target = summary_uri(spec.output_prefix, self.ref)
        doc = self.summary.tally.document(
            self.ref,
            spec,
            self.tracker.counts(self.env.dispatcher.load(self.key).running),
            phase=self.phase,
            started=self.start_time,
            finished=self.completion_time,
            updated=self.env.wall(),
        )
        if await self.summary.write(target, doc, force=final):
            self.summary_uri = str(target)

    async def _succeed(self, spec: JobSpec) -> bool:
        await self.summary.drain()
        self.phase, self.completion_time = "Succeeded", self.env.wall()
        await self._write_summary(spec, final=True)
        c = self.tracker.counts(0)
        await self.reporter.event(
            "Normal",
            "Completed",
            f"{c.succeeded}/{c.total} inputs have transcripts ({c.skipped} were current already), "
            f"{c.failed} failed; summary {self.summary_uri}",
        )
        return True

    async def _fail(self, reason: str, message: str) -> bool:
        self.phase, self.completion_time = "Failed", self.env.wall()
        self.failure = (reason, message)
        await self.reporter.event("Warning", "Failed", message)
        return True

    async def _after_finish(self) -> None:
        """ttlSecondsAfterFinished: delete the job object (its outputs stay)."""
        ttl = self.spec().ttl_seconds_after_finished
        if ttl is None or self.delete is None:
            return
        done = self.completion_time or self.env.wall()
        wait = (done - self.env.wall()).total_seconds() + ttl
        if wait > 0:
            await asyncio.sleep(wait)
        log.info("%s: finished %ss ago; deleting the job object", self.key, ttl)
        await self.delete()


def _reason(code: str) -> str:
    """A condition reason (CamelCase) from an error code (snake_case)."""
    return "".join(part.capitalize() for part in code.split("_")) or "Failed"
