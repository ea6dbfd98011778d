"""Sending items to the processor: bounded, prioritised, fair, retried, single-flight.

One dispatcher serves every job of an operator. Each job brings a queue of
items; the dispatcher starts an item when

- fewer than `max_in_flight` items run in total and fewer than the job's
  `parallelism` run for that job, and
- no job of a higher priority has an item ready; among jobs of equal priority
  the one served least recently goes first (round robin), so a big job cannot
  starve a small one.

An item key (its output base) is either free or owned by exactly one queue
entry, running call or backoff wait, from `submit` until its final outcome,
so the same output is never worked on twice at once.

What happens after a failed try depends on whose fault it was (`faults.blame`):

- the input's (and the result is retryable): tried again after a backoff until
  the job's `max_attempts`; the last failure is handed to the `FailureRecorder`
  (which writes `.error.json` when the worker did not) before the outcome is
  reported;
- the processor's (unreachable, refusing the credential, no replica): the item
  goes back to the front of its queue with its attempt unspent and the `Gate`
  pauses dispatch for every job until a probe gets through;
- the environment's (object store outage, throttling, expired credentials):
  the item waits a backoff and tries again with its attempt unspent, for as
  long as it takes.

Every backoff is the one `RetryPolicy` (exponential, full jitter, capped).

A try can also be lost without an answer: Ray's proxy never answers a request
that waited for a replica of an app deleted meanwhile (a RayService upgrade, an
app delete), so it would hold its slot until the item timeout (an hour), and
with every slot held nothing would even notice the app is gone. So while tries
are in flight and none has answered for `stall_check` seconds, the dispatcher
asks whether an app is still deployed at all (`Processor.deployed`, no model
needed). When none is, the tries in flight are lost: each ends as
`processor_unavailable`, which pauses dispatch and keeps the file's attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hark_operator import metrics
from hark_operator.errors import ProcessorUnavailable
from hark_operator.jobs.faults import blame
from hark_operator.jobs.gate import Gate, GateState, probe_policy
from hark_operator.jobs.work import FailureRecorder, Outcome, Processor, Sink, WorkItem
from hark_serving.retry import RetryPolicy
from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult

__all__ = ["Dispatcher", "JobLoad", "Outcome", "Processor", "RetryPolicy", "WorkItem"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    item: WorkItem
    attempt: int = 1  # the try in which the input may be at fault, 1-based
    waits: int = 0  # tries lost to the environment in a row (their backoff's exponent)


@dataclass(frozen=True)
class JobLoad:
    queued: int  # ready to start
    waiting: int  # in backoff before another try
    running: int

    @property
    def open(self) -> int:
        return self.queued + self.waiting + self.running


class _Signal:
    """Wakes every waiter when something changed; waiters re-check their predicate."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._event.wait()


@dataclass
class _Job:
    key: str
    priority: int
    parallelism: int
    max_attempts: int
    sink: Sink
    queue_limit: int
    suspended: bool = False
    ready: deque[_Entry] = field(default_factory=deque)
    waiting: list[tuple[float, int, _Entry]] = field(default_factory=list)
    # (code, message) of the last try the environment failed; None after a result.
    environment: tuple[str, str] | None = None
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    served: int = 0
    changed: _Signal = field(default_factory=_Signal)
    opened: dict[str, float] = field(default_factory=dict)  # item key → clock at submit

    def load(self) -> JobLoad:
        return JobLoad(len(self.ready), len(self.waiting), len(self.running))


def _failed(req: ItemRequest, code: str, message: str) -> ItemResult:
    """A try that got no result, as a retryable failed result."""
    return ItemResult(
        status="failed",
        input_uri=req.input_uri,
        output_uri=f"{req.output_uri}.json",
        error=ItemError(code=code, message=message),
        retryable=True,
    )


class Dispatcher:
    def __init__(
        self,
        processor: Processor,
        *,
        max_in_flight: int,
        item_timeout: float,
        backoff: RetryPolicy | None = None,
        recorder: FailureRecorder | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        stall_check: float = 30.0,
    ) -> None:
        self.processor = processor
        self.max_in_flight = max_in_flight
        self.item_timeout = item_timeout
        self.stall_check = stall_check
        self.backoff = backoff or RetryPolicy(base=2.0, cap=300.0, attempts=None)
        self.recorder = recorder
        self.clock = clock
        self.rng = rng or random.Random()
        self.gate = Gate(probe_policy(self.backoff), clock=clock, rng=self.rng)
        self._answers = 0  # results the processor gave (its sign of life, for timeouts)
        self._jobs: dict[str, _Job] = {}
        self._owners: dict[str, str] = {}  # item key → job key
        self._running = 0
        self._serial = itertools.count(1)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._heard = clock()  # when a try last ended, answered or not
        self._lost: dict[str, asyncio.Future[str]] = {}  # item key → set when its try is lost

    # -- jobs ------------------------------------------------------------------

    def register(
        self,
        job: str,
        *,
        priority: int = 0,
        parallelism: int = 1,
        max_attempts: int = 3,
        sink: Sink,
        queue_limit: int | None = None,
    ) -> None:
        if job in self._jobs:
            raise ValueError(f"job {job} is already registered")
        limit = queue_limit if queue_limit is not None else max(64, 4 * parallelism)
        self._jobs[job] = _Job(job, priority, parallelism, max_attempts, sink, limit)
        metrics.JOB_LAST_PROGRESS.labels(job).set(time.time())

    def configure(
        self,
        job: str,
        *,
        priority: int | None = None,
        parallelism: int | None = None,
        max_attempts: int | None = None,
        suspended: bool | None = None,
    ) -> None:
        j = self._jobs[job]
        if priority is not None:
            j.priority = priority
        if parallelism is not None:
            j.parallelism = parallelism
        if max_attempts is not None:
            j.max_attempts = max_attempts
        if suspended is not None:
            j.suspended = suspended
        self._wake.set()

    async def unregister(self, job: str) -> None:
        """Stop the job's dispatching: queued items are dropped, running calls cancelled."""
        j = self._jobs.pop(job, None)
        if j is None:
            return
        tasks = list(j.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for entry in j.ready:
            self._owners.pop(entry.item.key, None)
        for _, _, entry in j.waiting:
            self._owners.pop(entry.item.key, None)
        j.ready.clear()
        j.waiting.clear()
        metrics.IN_FLIGHT.set(self._running)
        j.changed.fire()
        self._wake.set()

    def registered(self, job: str) -> bool:
        return job in self._jobs

    def load(self, job: str) -> JobLoad:
        j = self._jobs.get(job)
        return j.load() if j else JobLoad(0, 0, 0)

    def oldest_open_seconds(self, job: str) -> float:
        """How long the job's oldest open item has been open (0 when none is)."""
        j = self._jobs.get(job)
        if j is None or not j.opened:
            return 0.0
        return max(0.0, self.clock() - min(j.opened.values()))

    @property
    def running(self) -> int:
        return self._running

    def busy(self, key: str) -> bool:
        return key in self._owners

    def processor_state(self) -> GateState:
        """Whether the processor takes work (the gate every job shares)."""
        return self.gate.state

    def environment_trouble(self, job: str) -> tuple[str, str] | None:
        """(code, message) of the job's last try lost to storage or credentials, if unresolved."""
        j = self._jobs.get(job)
        return j.environment if j else None

    # -- items -----------------------------------------------------------------

    async def submit(self, job: str, item: WorkItem) -> bool:
        """Queue `item`; False when its key is already queued, waiting or running.

        Waits while the job's queue is full, so a scan of a huge prefix advances
        only as fast as items are taken.
        """
        j = self._jobs[job]
        await j.changed.wait_for(
            lambda: job not in self._jobs or len(j.ready) + len(j.waiting) < j.queue_limit
        )
        if job not in self._jobs or item.key in self._owners:
            return False
        self._owners[item.key] = job
        j.opened[item.key] = self.clock()
        j.ready.append(_Entry(item))
        self._wake.set()
        return True

    async def idle(self, job: str, timeout: float | None = None) -> bool:
        """Wait until the job has nothing queued, waiting or running; False on timeout."""
        j = self._jobs.get(job)
        if j is None:
            return True

        def done() -> bool:
            return j.load().open == 0 or job not in self._jobs

        try:
            await asyncio.wait_for(j.changed.wait_for(done), timeout)
        except TimeoutError:
            return False
        return True

    # -- the loop --------------------------------------------------------------

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="hark-dispatcher")
        deployed = getattr(self.processor, "deployed", None)
        if self._watch_task is None and deployed is not None:
            self._watch_task = asyncio.create_task(self._watch(deployed), name="hark-stall-check")

    async def close(self) -> None:
        for job in list(self._jobs):
            await self.unregister(job)
        for task in (self._loop_task, self._watch_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._loop_task = self._watch_task = None

    async def _watch(self, deployed: Callable[[], Awaitable[bool]]) -> None:
        """Every `stall_check` s: tries in flight, no answer meanwhile, and no app? Lost."""
        while True:
            await asyncio.sleep(self.stall_check)
            if not self._lost or self.clock() - self._heard < self.stall_check:
                continue
            try:
                if await deployed():
                    continue
            except Exception as exc:  # no verdict: keep waiting for the answers
                log.warning("could not ask whether the Serve app is deployed: %s", exc)
                continue
            why = (
                f"no answer for {self.clock() - self._heard:.0f}s and no app deployed at the "
                "processor's URL: the request was lost with it"
            )
            log.warning("%d tries in flight are lost: %s", len(self._lost), why)
            for lost in self._lost.values():
                if not lost.done():
                    lost.set_result(why)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            timeout = self._promote_due()
            self._launch()
            probe = self.gate.seconds_to_probe()
            if probe is not None:
                timeout = probe if timeout is None else min(timeout, probe)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _promote_due(self) -> float | None:
        """Move retries whose backoff has passed to the front; seconds to the next one."""
        now = self.clock()
        next_due: float | None = None
        for j in self._jobs.values():
            while j.waiting and j.waiting[0][0] <= now:
                _, _, entry = heapq.heappop(j.waiting)
                j.ready.appendleft(entry)
            if j.waiting:
                due = j.waiting[0][0] - now
                next_due = due if next_due is None else min(next_due, due)
        return next_due

    def _pick(self) -> _Job | None:
        best: _Job | None = None
        for j in self._jobs.values():
            if j.suspended or not j.ready or len(j.running) >= j.parallelism:
                continue
            if best is None or (j.priority, -j.served) > (best.priority, -best.served):
                best = j
        return best

    def _launch(self) -> None:
        while self._running < self.max_in_flight and self.gate.may_send():
            j = self._pick()
            if j is None:
                return
            entry = j.ready.popleft()
            probe = self.gate.sent()
            j.served = next(self._serial)
            self._running += 1
            metrics.IN_FLIGHT.set(self._running)
            j.running[entry.item.key] = asyncio.create_task(
                self._run(j, entry, probe), name=f"hark-item {entry.item.key}"
            )
            j.changed.fire()

    async def _call(self, item: WorkItem, attempt: int) -> ItemResult:
        req = item.request.model_copy(update={"attempt": attempt})
        lost = self._lost[item.key] = asyncio.get_running_loop().create_future()
        call = asyncio.ensure_future(
            asyncio.wait_for(self.processor.process(req), self.item_timeout)
        )
        try:
            await asyncio.wait((call, lost), return_when=asyncio.FIRST_COMPLETED)
            if not call.done():  # the watchdog found no app: nothing will answer this try
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
                return _failed(req, "processor_unavailable", lost.result())
            return call.result()
        except TimeoutError:
            return _failed(req, "timeout", f"no result within {self.item_timeout:.0f}s")
        except ProcessorUnavailable as exc:
            return _failed(req, exc.code, str(exc))
        except Exception as exc:  # a client bug must not lose the item: retry, then record
            log.exception("%s: processing raised", item.key)
            return _failed(req, "internal", f"{type(exc).__name__}: {exc}")
        finally:
            if not call.done():  # this try was cancelled (its job deleted): so is its call
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
            del self._lost[item.key]
            self._heard = self.clock()

    async def _processor_ready(self) -> bool:
        """After a timeout: was the pool up (the file's fault) or still scaling (not)?"""
        ready = getattr(self.processor, "ready", None)
        if ready is None:
            return True  # an in-process processor is always there
        try:
            return bool(await asyncio.wait_for(ready(), 30))
        except Exception:
            return False

    def _wait(self, j: _Job, entry: _Entry, delay: float) -> None:
        heapq.heappush(j.waiting, (self.clock() + delay, next(self._serial), entry))

    async def _run(self, j: _Job, entry: _Entry, probe: bool) -> None:
        item, attempt = entry.item, entry.attempt
        released, resolved = True, False
        answers = self._answers
        try:
            result = await self._call(item, attempt)
            code = result.error.code if result.error else "?"
            worked = self._answers > answers
            if code == "timeout" and not worked:
                worked = await self._processor_ready()
            who = None if result.status != "failed" else blame(result, processor_worked=worked)
            if who == "processor":
                self.gate.failed(code, result.error.message if result.error else "", probe=probe)
                resolved = True
                metrics.PROCESSOR_AVAILABLE.set(0)
                if j.key in self._jobs:
                    log.info("%s: the processor cannot take work (%s); paused", item.key, code)
                    j.ready.appendleft(entry)  # first in line when the gate opens
                    released = False
                return
            self.gate.answered(probe=probe)
            resolved = True
            metrics.PROCESSOR_AVAILABLE.set(1)
            if who == "environment":
                j.environment = (code, result.error.message if result.error else "")
                if j.key in self._jobs:
                    delay = self.backoff.delay(entry.waits + 1, self.rng.random())
                    log.info("%s: %s; again in %.1fs (attempt unspent)", item.key, code, delay)
                    metrics.ITEMS.labels(j.key, "retried").inc()
                    self._wait(j, _Entry(item, attempt, entry.waits + 1), delay)
                    released = False
                return
            self._answers += 1
            j.environment = None
            if who == "input" and result.retryable and attempt < j.max_attempts:
                if j.key in self._jobs:
                    delay = self.backoff.delay(attempt, self.rng.random())
                    log.info(
                        "%s: try %d failed (%s), again in %.1fs", item.key, attempt, code, delay
                    )
                    metrics.ITEMS.labels(j.key, "retried").inc()
                    self._wait(j, _Entry(item, attempt + 1), delay)
                    released = False
                return
            recorded = True
            if result.status == "failed" and self.recorder is not None:
                try:
                    await self.recorder.record(j.key, item, result, attempt)
                except Exception as exc:
                    log.exception("%s: could not record the failure", item.key)
                    recorded = False
                    result = result.model_copy(
                        update={
                            "error": ItemError(
                                code="error_record_not_written",
                                message=f"{code}: {result.error.message if result.error else ''}"
                                f"; and its error record could not be written: {exc}",
                            )
                        }
                    )
            metrics.ITEMS.labels(j.key, result.status).inc()
            metrics.JOB_LAST_PROGRESS.labels(j.key).set(time.time())
            if j.key in self._jobs:
                try:
                    j.sink(Outcome(j.key, item, result, attempt, recorded))
                except Exception:
                    log.exception("%s: the job could not take its outcome", item.key)
        finally:
            if probe and not resolved:  # cancelled: let another item probe
                self.gate.probing = False
            self._running -= 1
            metrics.IN_FLIGHT.set(self._running)
            j.running.pop(item.key, None)
            if released:
                j.opened.pop(item.key, None)
            if released and self._owners.get(item.key) == j.key:
                del self._owners[item.key]
            self._wake.set()
            j.changed.fire()
