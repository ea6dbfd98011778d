"""Keeping a job's summary current while it runs: transcripts and error files are read
in the background (a few at a time), their totals added to the tally (and each
transcript handed to `on_transcript`, once), and the summary document written back
to S3 when it changed."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from datetime import datetime
from typing import Any, Literal

from hark_operator.clients.storage import Stores, read_json, write_json
from hark_operator.jobs.planner import PlanItem, Planner
from hark_operator.jobs.summary import SummaryTally
from hark_operator.resource.models import FailureRecord, JobSpec
from hark_serving.errors import StorageError
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import S3Uri

log = logging.getLogger(__name__)

Kind = Literal["json", "error"]
READERS = 4


def _take(gen: Generator[PlanItem, None, None], n: int) -> list[PlanItem]:
    return list(itertools.islice(gen, n))


def earlier(item: PlanItem, before: datetime | None) -> bool:
    """Whether the output that settled `item` was written before `before`."""
    return before is None or item.written is None or item.written < before


class SummaryKeeper:
    def __init__(
        self,
        stores: Stores,
        *,
        on_failure: Callable[[FailureRecord], None] | None = None,
        readers: int = READERS,
        name: str = "",
    ) -> None:
        self.stores = stores
        self.on_failure = on_failure
        self.name = name
        self.tally = SummaryTally()
        self.store: S3Store | None = None
        # Each transcript read, handed on (the QA report keeps its calls).
        self.on_transcript: Callable[[S3Uri, dict[str, Any]], Awaitable[None]] | None = None
        self._queue: asyncio.Queue[tuple[Kind, S3Uri, str]] = asyncio.Queue(maxsize=64)
        self._readers = readers
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._written = -1

    def start(self, store: S3Store) -> None:
        self.store = store
        self._tasks = [asyncio.create_task(self._read()) for _ in range(self._readers)]

    async def close(self) -> None:
        for task in [*self._tasks, *self._pending]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._pending, return_exceptions=True)

    async def seed(
        self,
        planner: Planner,
        spec: JobSpec,
        *,
        since: datetime | None,
        before: datetime | None = None,
        chunk: int = 256,
    ) -> None:
        """Queue the outputs that existed already (a listing of their own, in the background,
        so reading many transcripts never holds up dispatching new uploads): those written
        before `before`; the job's outcomes bring what it writes from then on."""
        gen = planner.scan_job(spec, since=since)
        try:
            while items := await self.stores.run(_take, gen, chunk):
                for item in items:
                    if earlier(item, before) and item.state != "pending" and item.problem is None:
                        kind: Kind = "json" if item.state == "done" else "error"
                        await self.add(kind, item.output_base, str(item.input))
        except Exception as exc:  # the summary misses earlier outputs; the job goes on
            log.warning("%s: earlier outputs left out of the summary: %s", self.name, exc)
        finally:
            gen.close()

    async def add(self, kind: Kind, base: S3Uri, source: str) -> None:
        """Queue the output of `base` for reading; waits while the queue is full."""
        await self._queue.put((kind, base, source))

    def add_soon(self, kind: Kind, base: S3Uri, source: str) -> None:
        """The same, from synchronous code (an outcome callback)."""
        try:
            self._queue.put_nowait((kind, base, source))
        except asyncio.QueueFull:
            self.background(self._queue.put((kind, base, source)))

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Until everything queued so far has been read."""
        while True:
            await self._queue.join()
            if not self._pending:
                return
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _read(self) -> None:
        while True:
            kind, base, source = await self._queue.get()
            try:
                await self._read_one(kind, base, source)
            except Exception as exc:  # the summary misses one file; the job goes on
                log.warning("%s: could not read %s for the summary: %s", self.name, base, exc)
            finally:
                self._queue.task_done()

    async def _read_one(self, kind: Kind, base: S3Uri, source: str) -> None:
        if self.store is None:
            return
        suffix = ".json" if kind == "json" else ".error.json"
        doc = await self.stores.run(read_json, self.store, S3Uri(base.bucket, base.key + suffix))
        if doc is None:
            return
        if kind == "json":
            self.tally.add_transcript(doc)
            if self.on_transcript is not None:
                await self.on_transcript(base, doc)
            return
        code, message = str(doc.get("code", "failed")), str(doc.get("message", ""))
        self.tally.add_failure(source, code, message)
        if self.on_failure is not None:
            self.on_failure(FailureRecord(key=source, reason=code, message=message[:512]))

    async def write(self, target: S3Uri, doc: dict[str, Any], *, force: bool = False) -> bool:
        """Write the summary if it changed since the last write; False if it could not."""
        if not force and self.tally.version == self._written:
            return True
        if self.store is None:
            return False
        try:
            await self.stores.run(write_json, self.store, target, doc)
        except StorageError as exc:
            log.warning("%s: summary not written: %s", self.name, exc)
            return False
        self._written = self.tally.version
        return True
