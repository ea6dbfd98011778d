"""One flight per output across processes: a lease object beside the outputs.

Before an item is transcribed, its worker creates `<output base>.hark-lease`
with a conditional PUT (`If-None-Match: *`), which S3 and MinIO apply
atomically: of two requests for the same output, from two operator replicas,
a retry after a timeout or any HTTP client, on any Worker replica, exactly one
creates it. The other gets `OutputBusy` (code `in_progress`, transient): the
operator tries again later without spending an attempt and then finds the
output current; an HTTP client gets 409.

The lease names its owner and an expiry. The holder renews it while it works
(a conditional PUT on the ETag it holds) and deletes it when done. A holder
that died leaves a lease that expires; the next request takes it over with a
conditional PUT on the stale lease's ETag, so two takers cannot both win.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from hark_serving.errors import HarkError, StorageError
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import S3Uri

log = logging.getLogger(__name__)

LEASE_SUFFIX = ".hark-lease"
LEASE_SECONDS = 60.0  # a holder renews every third of this; a dead one blocks this long


class OutputBusy(StorageError):
    """Another request is working on the same output right now."""

    code = "in_progress"
    transient = True


@dataclass(frozen=True)
class Lease:
    uri: S3Uri
    owner: str
    etag: str


def lease_uri(output: S3Uri) -> S3Uri:
    return S3Uri(output.bucket, output.key + LEASE_SUFFIX)


def _body(owner: str, expires: float) -> bytes:
    return json.dumps({"owner": owner, "expires": round(expires, 3)}).encode()


def acquire(
    store: S3Store,
    output: S3Uri,
    *,
    seconds: float = LEASE_SECONDS,
    clock: Callable[[], float] = time.time,
) -> Lease:
    """The lease of `output`, or `OutputBusy` while someone else holds a live one."""
    uri, owner = lease_uri(output), uuid.uuid4().hex
    for _ in range(3):  # lost races with a release or a takeover: look again
        etag = store.put_conditional(uri, _body(owner, clock() + seconds))
        if etag is not None:
            return Lease(uri, owner, etag)
        held = store.get_with_etag(uri)
        if held is None:
            continue  # released meanwhile
        data, stale = held
        try:
            expires = float(json.loads(data)["expires"])
        except (ValueError, KeyError, TypeError):
            expires = 0.0  # unreadable: treat as expired
        if expires > clock():
            raise OutputBusy(
                "another request is transcribing this output; try again later",
                subject=str(output),
            )
        etag = store.put_conditional(uri, _body(owner, clock() + seconds), if_match=stale)
        if etag is not None:
            return Lease(uri, owner, etag)
    raise OutputBusy("the output's lease is contended; try again later", subject=str(output))


def renew(
    store: S3Store,
    lease: Lease,
    *,
    seconds: float = LEASE_SECONDS,
    clock: Callable[[], float] = time.time,
) -> Lease | None:
    """The renewed lease, or None when it was lost (expired and taken over)."""
    etag = store.put_conditional(
        lease.uri, _body(lease.owner, clock() + seconds), if_match=lease.etag
    )
    return None if etag is None else Lease(lease.uri, lease.owner, etag)


def release(store: S3Store, lease: Lease) -> None:
    """Delete the lease if it is still ours (best effort: an expired lease is harmless)."""
    try:
        held = store.get_with_etag(lease.uri)
        if held is not None and held[1] == lease.etag:
            store.delete(lease.uri)
    except HarkError:
        pass


class Holding:
    """A lease held until `close()`, renewed on a daemon thread meanwhile (so it works
    the same around blocking code and around awaits).

    The thread holds the `Holding` only weakly: one dropped without `close()` (its
    request died between taking the lease and using it) stops being renewed, and
    its lease expires, instead of blocking the output for as long as the process
    lives.
    """

    def __init__(self, store: S3Store, output: S3Uri, *, seconds: float = LEASE_SECONDS) -> None:
        self.store, self.seconds = store, seconds
        self.lease: Lease | None = acquire(store, output, seconds=seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_renew_while_held,
            args=(weakref.ref(self), self._stop, seconds / 3),
            name="hark-lease",
            daemon=True,
        )
        self._thread.start()

    def renew_once(self) -> bool:
        """Renew the lease now; False once it is lost (expired and taken over)."""
        lease = self.lease
        if lease is None:
            return False
        try:
            self.lease = renew(self.store, lease, seconds=self.seconds)
        except HarkError as exc:  # keep trying: the lease is good until it expires
            log.warning("%s: lease not renewed: %s", lease.uri, exc)
        if self.lease is None:
            log.warning("%s: lease lost (expired and taken over)", lease.uri)
            return False
        return True

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.lease is not None:
            release(self.store, self.lease)
            self.lease = None

    def __enter__(self) -> Holding:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _renew_while_held(held: weakref.ref[Holding], stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        holding = held()
        if holding is None:
            log.warning("a lease was dropped unreleased; it expires unrenewed")
            return
        if not holding.renew_once():
            return
        del holding  # hold it only while renewing
