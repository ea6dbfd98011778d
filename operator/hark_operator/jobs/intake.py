"""How a job's pending inputs reach the dispatcher: by listing, and by notification.

    scan       lists both prefixes (planner) and queues every pending input; the
               reconciliation, which finds everything whatever was missed
    notified   plans the keys a bucket notification named, one HEAD per object
               (`Planner.plan_key`: the same filters, key rules and verdict), and
               queues those pending; no listing

Both skip what the dispatcher already holds (single flight), fail inputs whose
keys the worker would refuse (once, with the reason), and leave alone a failure
whose error record could not be written until its input changes.

Notified keys wait in `NotifiedKeys`, a bounded buffer: a burst larger than
it (a bulk upload) drops the buffer and asks for a scan instead, which is
cheaper than thousands of HEADs and finds the same inputs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable
from dataclasses import replace
from datetime import datetime

from hark_operator import metrics
from hark_operator.jobs.env import JobEnv
from hark_operator.jobs.planner import PlanItem, Planner, ScanTally
from hark_operator.jobs.progress import NOTICED, JobTracker
from hark_operator.jobs.refused import refuse
from hark_operator.jobs.summary_store import SummaryKeeper
from hark_operator.jobs.work import WorkItem, item_request
from hark_operator.resource.models import JobSpec
from hark_serving.storage.s3 import S3Store

log = logging.getLogger(__name__)

CHUNK = 256  # plan items fetched from the listing thread at a time
KNOWN_CURRENT_LIMIT = 100_000
NOTIFIED_LIMIT = 1000  # notified keys waiting per job; past that, a scan instead
NOTIFIED_BATCH = 16  # notified keys planned at once (HEADs on the storage threads)


def _take(gen: Generator[PlanItem, None, None], n: int) -> list[PlanItem]:
    return list(itertools.islice(gen, n))


class NotifiedKeys:
    """Keys waiting to be planned, in arrival order, each once, at most `limit`."""

    def __init__(self, limit: int = NOTIFIED_LIMIT) -> None:
        self.limit = limit
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, keys: Iterable[str]) -> int:
        """Queue `keys`; when they do not fit the buffer is emptied and the number of keys
        dropped is returned (0 otherwise): the caller scans instead, and a listing finds
        every one of them."""
        for key in keys:
            self._keys[key] = None
        if len(self._keys) <= self.limit:
            return 0
        return self.clear()

    def take(self, n: int) -> list[str]:
        taken = list(itertools.islice(self._keys, n))
        for key in taken:
            del self._keys[key]
        return taken

    def clear(self) -> int:
        n = len(self._keys)
        self._keys.clear()
        return n

    def __len__(self) -> int:
        return len(self._keys)


class Intake:
    def __init__(
        self,
        job: str,
        env: JobEnv,
        tracker: JobTracker,
        summary: SummaryKeeper,
        *,
        created: datetime | None,
    ) -> None:
        self.job = job
        self.env = env
        self.tracker = tracker
        self.summary = summary
        self.created = created
        self.known: OrderedDict[str, str] = OrderedDict()  # output base → etag found current
        # output base → input etag of failures whose error record could not be written
        self.unrecorded: OrderedDict[str, str] = OrderedDict()
        self.refused: set[str] = set()  # inputs whose keys the worker refuses, reported
        self.alerts_prefix: str | None = None  # the job's alert outbox, once analytics start

    # -- what outcomes teach -----------------------------------------------------

    def found_current(self, key: str, etag: str) -> None:
        """The worker skipped `key`: its output records `etag` whatever the listing says."""
        _remember(self.known, key, etag)

    def not_recorded(self, key: str, etag: str) -> None:
        """A failure without its error record: not dispatched again until the input changes."""
        _remember(self.unrecorded, key, etag)

    # -- by listing ----------------------------------------------------------------

    async def scan(self, store: S3Store, spec: JobSpec) -> ScanTally:
        started = time.perf_counter()
        planner = Planner(store, page_size=self.env.page_size)
        gen = planner.scan_job(spec, since=self.created, known_current=self._known_current(spec))
        self.tracker.begin_scan()
        tag = self.tracker.scan_number
        try:
            while chunk := await self.env.stores.run(_take, gen, CHUNK):
                for item in chunk:
                    item = self._unless_unrecorded(item)
                    self.tracker.scanned(item)
                    await self._queue(spec, item, tag)
        except BaseException:
            self.tracker.abandon_scan()
            gen.close()
            raise
        tally = self.tracker.end_scan(self.env.wall())
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        metrics.SCANS.labels(self.job).inc()
        log.debug("%s: scanned %d inputs, %d pending", self.job, tally.total, tally.pending)
        return tally

    # -- by notification -----------------------------------------------------------

    async def notified(self, store: S3Store, spec: JobSpec, keys: list[str]) -> None:
        """Plan the notified `keys` (in the input's bucket) and queue those pending;
        raises StorageError when the store cannot answer."""
        planner = Planner(store, page_size=self.env.page_size)
        known = self._known_current(spec)

        def plan(key: str) -> PlanItem | None:
            return planner.plan_key(
                spec.input_uri,
                spec.output_prefix,
                key,
                spec.input.include,
                spec.input.exclude,
                overwrite=spec.output.overwrite,
                since=self.created,
                known_current=known,
            )

        items = await asyncio.gather(*(self.env.stores.run(plan, key) for key in keys))
        for planned in items:
            if planned is None:
                metrics.NOTIFIED.labels(self.job, "ignored").inc()
                continue
            item = self._unless_unrecorded(planned)
            queued = await self._queue(spec, item, NOTICED)
            if queued:
                self.tracker.noticed(str(item.input))
            metrics.NOTIFIED.labels(self.job, "dispatched" if queued else "current").inc()

    # -- both ----------------------------------------------------------------------

    def _known_current(self, spec: JobSpec) -> Callable[[str, str], bool]:
        out = spec.output_prefix
        return lambda rel, etag: self.known.get(str(out.join(rel))) == etag

    def _unless_unrecorded(self, item: PlanItem) -> PlanItem:
        if item.state == "pending" and self.unrecorded.get(item.key) == item.etag:
            return replace(item, state="failed")  # see `not_recorded`
        return item

    async def _queue(self, spec: JobSpec, item: PlanItem, tag: int) -> bool:
        """Hand a pending item to the dispatcher; True when it was queued now."""
        if item.problem is not None:
            await self._refuse(item)
            return False
        if item.state != "pending" or self.env.dispatcher.busy(item.key):
            return False
        request = item_request(spec, item, self.job, self.alerts_prefix)
        work = WorkItem(item.key, request, item.size, item.etag, tag)
        return await self.env.dispatcher.submit(self.job, work)

    async def _refuse(self, item: PlanItem) -> None:
        """An input whose keys the worker would refuse: failed with the reason, once."""
        if item.key in self.refused:
            return
        self.refused.add(item.key)
        failure = await refuse(item, self.job, self.env.dispatcher.recorder, self.env.wall())
        self.tracker.seed_failures([failure])
        self.summary.tally.add_failure(failure.key, failure.reason, failure.message)


def _remember(memory: OrderedDict[str, str], key: str, etag: str) -> None:
    memory[key] = etag
    while len(memory) > KNOWN_CURRENT_LIMIT:
        memory.popitem(last=False)
