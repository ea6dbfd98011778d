"""One job from start to finish: scan, dispatch, report, repeat.

    Pending ─► Running ─(nothing pending, nothing in flight)─► Succeeded ─(ttl)─► deleted
       │          │                                       └─► Failed (the job cannot run)
       │          └─ spec.suspend ─► Suspended ─ resume ─► Running
       │          └─ more files failed than maxFailedFiles, or all failed ─► Failed
       └─► Watching (mode Watch): scan every pollIntervalSeconds, forever

Nothing that the job's input did not cause ends it: a scan that cannot read
the prefixes (storage outage, expired or refused credentials, an unexpected
error) sets `Progressing=False` with the reason, posts an Event and tries
again after a backoff (jittered, capped at minutes), in both modes. A failure
whose error record cannot be written is counted as failed, named in the
`ErrorRecordsWritten` condition, and not dispatched again until its input
changes, so it never loops.

A scan lists both prefixes (planner), queues every pending input with the
dispatcher and counts the rest (intake). A Batch job waits until its queue
drains and scans again; a scan that finds nothing pending and nothing in
flight completes it. A Watch job scans every pollIntervalSeconds, and queues
the keys bucket notifications name (`notify`) as they come, one by one
without a listing, during a scan too; its scans stay the reconciliation.
Nothing lives only in memory: a new runner (after a restart) scans S3 and
carries on. The existing transcripts' summaries are read for the
job summary by a separate pass in the background (`SummaryKeeper.seed`), which
starts once the first scan is complete and counts only outputs written before
this runner started (its own outcomes count the rest), so a restart in a
folder holding many transcripts dispatches a new upload as fast as the
listing reaches it, whatever the history. Deleting the job cancels the
runner; in-flight items are abandoned and outputs stay. A job with
`analytics` keeps its QA reports and drains its alert outbox beside this
(`jobs.analytics`); a finished job's runner stays until the outbox is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from pydantic import ValidationError

from hark_operator import metrics
from hark_operator.errors import JobConfigError
from hark_operator.jobs.analytics import JobAnalytics
from hark_operator.jobs.env import JobEnv
from hark_operator.jobs.gate import GateNews
from hark_operator.jobs.intake import CHUNK, NOTIFIED_BATCH, Intake, NotifiedKeys
from hark_operator.jobs.planner import Planner
from hark_operator.jobs.progress import JobTracker
from hark_operator.jobs.reporter import Observation, Reporter
from hark_operator.jobs.summary import summary_uri
from hark_operator.jobs.summary_store import SummaryKeeper
from hark_operator.jobs.verdict import final_verdict, over_budget
from hark_operator.jobs.work import Outcome
from hark_operator.resource.models import Counts, JobRef, JobSpec, JobStatus, Phase
from hark_serving.errors import AccessDenied, StorageError, StorageUnavailable
from hark_serving.retry import RetryPolicy
from hark_serving.storage.uris import parse_s3_uri

log = logging.getLogger(__name__)

EVENT_FAILURES_PER_SCAN = 10  # ItemFailed Events per scan; the rest are in status and S3


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
        self.intake = Intake(ref.key, env, self.tracker, self.summary, created=created)
        self._wake = asyncio.Event()
        self._notified = NotifiedKeys()
        self._notice = asyncio.Event()  # keys notified, or the job may take them now
        self._failure_events = 0
        self._seeder: asyncio.Task[None] | None = None
        self._began = self.env.wall()  # this runner's start: outputs since are its own
        self._gate_news = GateNews(env.dispatcher.gate)
        self.analytics: JobAnalytics | None = None

    @property
    def key(self) -> str:
        return self.ref.key

    def wake(self) -> None:
        """The spec changed: stop waiting and look at it again (and scan)."""
        self._wake.set()

    def notify(self, keys: Iterable[str]) -> None:
        """A bucket notification named these keys in the job's drop folder: queue them
        without a listing; too many at once and the job scans instead."""
        dropped = self._notified.add(keys)
        if dropped:
            metrics.NOTIFIED.labels(self.key, "deferred").inc(dropped)
            self.wake()
        self._notice.set()

    def backlog(self) -> int:
        if self.phase not in ("Running", "Watching"):
            return 0
        return self.tracker.backlog(self.env.dispatcher.load(self.key).running)

    # -- the loop --------------------------------------------------------------

    async def run(self) -> JobStatus:
        try:
            return await self._run()
        finally:
            if self.analytics is not None:
                await self.analytics.close()

    async def _run(self) -> JobStatus:
        if self.status.finished:
            self.analytics = await JobAnalytics.resume(
                self.ref, self.spec, self.env, self.reporter, self.summary
            )
            await self._after_finish()
            return self.status
        self._began = self.env.wall()
        self.start_time = self.start_time or self._began
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
        helpers = [
            asyncio.create_task(self._publish_loop()),
            asyncio.create_task(self._notified_loop()),
        ]
        try:
            finished = await self._main()
        finally:
            await self.env.dispatcher.unregister(self.key)
            self.env.claims.release(self.key)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if self._seeder is not None:
                self._seeder.cancel()
                await asyncio.gather(self._seeder, return_exceptions=True)
            await self.summary.close()
            metrics.forget_job(self.key)
            metrics.forget_job_progress(self.key)
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
        self.analytics = JobAnalytics.start(
            self.ref, spec, self.env, self.reporter, self.summary, running=True
        )
        if self.analytics is not None:
            self.intake.alerts_prefix = self.analytics.alerts_prefix
        await self.reporter.event(
            "Normal", "Started", f"{spec.mode} job: {spec.input.uri} → {spec.output.uri}"
        )
        first, waits = True, 0
        policy = RetryPolicy(base=self.env.retry_delay, cap=self.env.retry_cap, attempts=None)
        while True:
            # Cleared before the spec is read and the scan starts: a wake that comes
            # during the scan cuts the wait after it short instead of being lost.
            self._wake.clear()
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
            other = self.env.claims.claim(self.key, spec.output_prefix)
            if other is not None:
                waits += 1
                message = (
                    f"{spec.output_prefix} overlaps the output prefix of job {other}; "
                    "waiting until that job is finished (give each job its own output prefix)"
                )
                await self._blocked("OutputConflict", message, policy.delay(waits))
                continue
            self._notice.set()  # notified keys may be queued from now on (while watching)
            if spec.mode == "Batch":
                exceeded = over_budget(self._counts(), spec.max_failed_files)
                if exceeded is not None:
                    return await self._fail(*exceeded)
            try:
                # Credentials are read again for every scan (rotated Secrets).
                store = await self.env.stores.store(spec.storage.profile)
                self.summary.store = store
                self._failure_events = 0
                tally = await self.intake.scan(store, spec)
            except (StorageError, JobConfigError) as exc:
                code = getattr(exc, "code", "storage_error")
                lasting = not isinstance(exc, (StorageUnavailable, AccessDenied))
                if isinstance(exc, AccessDenied):
                    self.env.stores.forget(spec.storage.profile)  # rotated? read it again
                if spec.mode == "Batch" and lasting:
                    return await self._fail(_reason(code), str(exc))
                waits += 1
                await self._blocked(_reason(code), str(exc), policy.delay(waits))
                continue
            except Exception as exc:  # a bug or a surprise: say so, and try again
                log.exception("%s: the scan failed", self.key)
                waits += 1
                await self._blocked(
                    "ScanFailed", f"{type(exc).__name__}: {exc}", policy.delay(waits)
                )
                continue
            if self.blocked is not None:
                await self.reporter.event("Normal", "Recovered", f"{self.blocked[0]} resolved")
            if first:
                # After the first scan rather than beside it: reading many transcripts
                # would slow the listing that finds new work (after a restart, too).
                self._seeder = asyncio.create_task(
                    self.summary.seed(
                        Planner(store, page_size=self.env.page_size),
                        spec,
                        since=self.created,
                        before=self._began,
                        chunk=CHUNK,
                    )
                )
                if self.analytics is not None:
                    self.analytics.open_after(self._seeded)
            self.blocked, first, waits = None, False, 0
            self._notice.set()
            if spec.mode == "Batch":
                if tally.pending == 0 and self.env.dispatcher.load(self.key).open == 0:
                    verdict = final_verdict(self._counts(), spec.max_failed_files)
                    if verdict is not None:
                        await self._seeded()
                        await self._write_summary(spec, final=True)
                        return await self._fail(*verdict)
                    return await self._succeed(spec)
                await self._wait_idle()
            else:
                await self._write_summary(spec, final=False)
                await self._sleep(spec.poll_interval_seconds)

    def _counts(self) -> Counts:
        return self.tracker.counts(self.env.dispatcher.load(self.key).running)

    async def _blocked(self, reason: str, message: str, delay: float) -> None:
        """The job cannot go on right now: a condition, an Event, then wait and retry."""
        if self.blocked is None or self.blocked[0] != reason:
            await self.reporter.event("Warning", reason, f"{message}; trying again")
        self.blocked = (reason, message)
        await self.publish()
        await self._sleep(delay)

    async def _seeded(self) -> None:
        if self._seeder is not None:
            await asyncio.gather(self._seeder, return_exceptions=True)
        await self.summary.drain()

    # -- outcomes and the summary ----------------------------------------------

    def _on_outcome(self, outcome: Outcome) -> None:
        result, item = outcome.result, outcome.item
        self.tracker.record(result, item.request.input_uri, self.env.wall(), item.tag)
        if not outcome.recorded:
            # Not dispatched again while its input stays the same: no loop burning the GPU.
            self.intake.not_recorded(item.key, item.etag)
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
        if result.alerts:
            if self.analytics is not None:
                self.analytics.alerted()
            metrics.count_category_matches(result.alerts)
            text = f"{item.request.input_uri}: {', '.join(result.alerts)} → {result.output_uri}"
            self.summary.background(self.reporter.event("Warning", "CategoryAlert", text))
        if result.status == "skipped":
            self.intake.found_current(item.key, item.etag)
        self.summary.add_soon("json", parse_s3_uri(item.request.output_uri), item.request.input_uri)

    # -- notified keys -------------------------------------------------------------

    def _takes_notified(self, spec: JobSpec) -> bool:
        """Whether notified keys may be queued now: watching, not suspended, not blocked."""
        return (
            spec.mode == "Watch"
            and not spec.suspend
            and self.phase == "Watching"
            and self.blocked is None
        )

    async def _notified_loop(self) -> None:
        """Queue notified keys as they come, beside the scans; until the job can take
        them they wait (a scan will have listed them by then, or they are queued after)."""
        while True:
            await self._notice.wait()
            self._notice.clear()
            while self._notified:
                try:
                    spec = self.spec()
                except ValidationError:
                    break
                if not self._takes_notified(spec):
                    break
                keys = self._notified.take(NOTIFIED_BATCH)
                try:
                    store = await self.env.stores.store(spec.storage.profile)
                    await self.intake.notified(store, spec, keys)
                except Exception as exc:  # the next scan finds them and reports the trouble
                    log.warning("%s: notified keys left to a scan: %s", self.key, exc)
                    metrics.NOTIFIED.labels(self.key, "deferred").inc(len(keys))
                    self.wake()

    # -- waiting ---------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or less when the spec changed since this loop turn began."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _wait_idle(self) -> None:
        """Until the job's items are all done, or its spec changed (suspend, priority)."""
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
            processor=self.env.dispatcher.processor_state(),
            environment=self.env.dispatcher.environment_trouble(self.key),
            unrecorded=len(self.intake.unrecorded),
        )

    async def publish(self) -> None:
        await self._announce_processor()
        obs = self.observation()
        metrics.BACKLOG.labels(self.key).set(obs.counts.pending + obs.counts.in_flight)
        metrics.BACKLOG_OLDEST.labels(self.key).set(
            self.env.dispatcher.oldest_open_seconds(self.key)
        )
        await self.reporter.publish(obs, self.env.wall())
        self.status = self.reporter.previous

    async def _announce_processor(self) -> None:
        """An Event on this job when the shared processor gate flipped since the last look."""
        news = self._gate_news.news(active=self.phase in ("Running", "Watching"))
        if news is not None:
            await self.reporter.event(*news)

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
        if final and self.analytics is not None:
            await self.analytics.finish()

    async def _succeed(self, spec: JobSpec) -> bool:
        await self._seeded()
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
        """Deliver the alerts still in the outbox; with ttlSecondsAfterFinished, delete the
        job object (its outputs stay) when that time has passed."""
        settled = [self.analytics.settled()] if self.analytics is not None else []
        await asyncio.gather(self._expire(), *settled)

    async def _expire(self) -> None:
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
