"""A job's alert outbox: every alert its transcripts raise reaches the webhook at least once.

The worker writes `<output prefix>_hark/<namespace>.<job>/alerts/<idempotency key>.json`
(the webhook's JSON body) before the transcript, whose JSON is written last and says
the item is done. `AlertOutbox.run` drains it in passes: it lists the records (oldest
first), delivers each one whose transcript is there with the signed webhook (which
tries again itself, with backoff), and deletes the record after a 2xx. A pass that
meets a receiver it cannot reach stops, and the next one follows after the project's
backoff (`RetryPolicy`); a receiver that refuses one record (a 4xx other than 408,
425, 429) does not hold up the others, and that record is tried again on the next
pass. Nothing lives only in memory: a restarted operator starts with a pass and
delivers what the one before left. A record whose transcript is still missing a day
later belongs to an item that never finished (its input deleted, say) and is dropped.

    record ─► transcript there? ─ no ─► wait (a day at most, then dropped)
                    │ yes
                    ▼
             webhook (tries, backoff) ─ 2xx ─► record deleted
                    │ receiver down              │ refused (4xx)
                    ▼                            ▼
          pass ends, backoff, again      next record; again next pass
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

from hark_operator.clients.storage import Stores
from hark_operator.clients.webhook import AlertWebhook
from hark_operator.jobs.reporter import EventSink
from hark_serving.analytics.alerts import Alert
from hark_serving.errors import InvalidUri, ObjectNotFound, StorageError
from hark_serving.retry import RetryPolicy
from hark_serving.storage.s3 import ObjectInfo, S3Store
from hark_serving.storage.uris import S3Uri, parse_s3_uri

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ORPHAN_SECONDS = 86400.0  # a record whose transcript has not come in a day is dropped

Disposition = Literal["deliver", "wait", "drop"]


def disposition(
    transcript_exists: bool, age_seconds: float, orphan_after: float = ORPHAN_SECONDS
) -> Disposition:
    """What to do with one record: deliver it once its item is done (the transcript's JSON
    is there), wait for that, or drop it when its item never finished."""
    if transcript_exists:
        return "deliver"
    return "drop" if age_seconds >= orphan_after else "wait"


@dataclass(frozen=True)
class PassResult:
    """What one pass over the outbox did."""

    delivered: int = 0
    waiting: int = 0  # records whose transcript is not there yet
    undelivered: int = 0  # records the receiver did not take, or the pass did not reach
    error: str | None = None  # the last reason a record stayed

    @property
    def left(self) -> int:
        return self.waiting + self.undelivered


def next_pass(result: PassResult, failures: int, policy: RetryPolicy) -> tuple[float | None, bool]:
    """(seconds until the next pass, None: only when woken; whether an item's alert may
    wake it sooner). After failures the backoff decides alone, so a busy job does not
    make the webhook try harder; records waiting for their transcripts are looked at
    again when an item finishes, or after the longest backoff."""
    if result.undelivered:
        return policy.delay(failures), False
    if result.waiting:
        return policy.cap, True
    return None, True


def under(uri: S3Uri, prefix: S3Uri) -> bool:
    return uri.bucket == prefix.bucket and uri.key.startswith(prefix.key)


class AlertOutbox:
    def __init__(
        self,
        webhook: AlertWebhook,
        stores: Stores,
        store: Callable[[], S3Store | None],
        prefix: S3Uri,
        output_prefix: S3Uri,
        events: EventSink,
        *,
        policy: RetryPolicy,
        wall: Callable[[], datetime],
        name: str = "",
    ) -> None:
        self.webhook = webhook
        self.stores = stores
        self.store = store
        self.prefix = prefix
        self.output_prefix = output_prefix
        self.events = events
        self.policy = policy
        self.wall = wall
        self.name = name
        self._wake = asyncio.Event()
        self._empty = asyncio.Event()
        self._warned = False

    def wake(self) -> None:
        """An item raised an alert: look at the outbox now (unless backing off)."""
        self._empty.clear()
        self._wake.set()

    async def emptied(self) -> None:
        """Until a pass finds nothing left to deliver."""
        await self._empty.wait()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            result = await self.drain_once()
            failures = failures + 1 if result.undelivered else 0
            if result.left == 0 and not self._wake.is_set():  # no alert came in meanwhile
                self._empty.set()
            elif result.left:
                self._empty.clear()
            await self._announce(result)
            delay, wakeable = next_pass(result, failures, self.policy)
            await self._pause(delay, wakeable)

    async def _pause(self, delay: float | None, wakeable: bool) -> None:
        if not wakeable:
            assert delay is not None
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _announce(self, result: PassResult) -> None:
        """One Warning Event per stretch of failed deliveries; a log line when it ends."""
        if result.undelivered and not self._warned:
            self._warned = True
            await self.events.event(
                "Warning",
                "AlertNotDelivered",
                f"webhook {self.webhook.url}: {result.error}; the alerts stay in "
                f"{self.prefix} and are sent again",
            )
        elif not result.undelivered and self._warned:
            self._warned = False
            log.info("%s: alerts delivered again", self.name)

    async def drain_once(self) -> PassResult:
        """One pass over the outbox."""
        store = self.store()
        if store is None:
            return PassResult(undelivered=1, error="no object store yet")
        try:
            records = await self.stores.run(_records, store, self.prefix)
        except StorageError as exc:
            log.warning("%s: alert outbox not listed: %s", self.name, exc)
            return PassResult(undelivered=1, error=f"the outbox cannot be listed: {exc}")
        delivered = waiting = undelivered = 0
        error: str | None = None
        for index, info in enumerate(records):
            uri = S3Uri(self.prefix.bucket, info.key)
            try:
                alert, exists = await self.stores.run(self._look, store, uri)
            except StorageError as exc:
                return PassResult(delivered, waiting, len(records) - index, str(exc))
            if alert is None:
                continue
            age = (self.wall() - info.last_modified).total_seconds() if info.last_modified else 0.0
            what = disposition(exists, age)
            if what == "wait":
                waiting += 1
                continue
            if what == "drop":
                log.warning("%s: %s: no transcript after a day; alert dropped", self.name, uri)
                await self._delete(store, uri)
                continue
            delivery = await self.webhook.send(alert)
            if delivery.delivered:
                delivered += 1
                log.info("%s: alert for %s delivered (%s)", self.name, alert.uri, alert.key)
                await self._delete(store, uri)
                continue
            error = delivery.error or "not delivered"
            if not delivery.refused:  # unreachable: the records after it would fare the same
                return PassResult(delivered, waiting, undelivered + len(records) - index, error)
            undelivered += 1
        return PassResult(delivered, waiting, undelivered, error)

    def _look(self, store: S3Store, uri: S3Uri) -> tuple[Alert | None, bool]:
        """The record's alert (None when it is gone or unreadable, which deletes it) and
        whether its transcript exists."""
        try:
            data = store.get_bytes(uri)
        except ObjectNotFound:
            return None, False
        try:
            alert = Alert.from_payload(json.loads(data))
            transcript = parse_s3_uri(alert.transcript)
        except (InvalidUri, ValueError) as exc:
            log.warning("%s: %s: unreadable alert record, deleted: %s", self.name, uri, exc)
            store.delete(uri)
            return None, False
        if not under(transcript, self.output_prefix):
            log.warning(
                "%s: %s: names a transcript outside the job's output; deleted", self.name, uri
            )
            store.delete(uri)
            return None, False
        return alert, store.head(transcript) is not None

    async def _delete(self, store: S3Store, uri: S3Uri) -> None:
        try:
            await self.stores.run(store.delete, uri)
        except StorageError as exc:  # delivered again next pass: the receiver drops repeats
            log.warning("%s: %s not deleted: %s", self.name, uri, exc)


def _records(store: S3Store, prefix: S3Uri) -> list[ObjectInfo]:
    found = [i for i in store.iter_objects(prefix) if i.key.endswith(".json")]
    return sorted(found, key=lambda i: (i.last_modified or EPOCH, i.key))
