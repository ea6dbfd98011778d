"""Object storage for the operator: one S3Store per storage profile, and the few
objects the operator itself reads and writes.

Credentials of a profile that names `credentialsSecret` come from that Secret
in the operator's own namespace (keys `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`), re-read every
`refresh_seconds` so rotated keys are picked up. A job never names a Secret.
boto3 is synchronous: calls run on a private thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from hark_operator.errors import JobConfigError
from hark_operator.jobs.work import WorkItem
from hark_serving.errors import HarkError, InvalidOption, ObjectNotFound, ProfileNotAllowed
from hark_serving.runs.itemspec import ItemResult
from hark_serving.storage.profiles import (
    ACCESS_KEY_FILE,
    SECRET_KEY_FILE,
    SESSION_TOKEN_FILE,
    Credentials,
    StorageProfiles,
)
from hark_serving.storage.s3 import S3Store
from hark_serving.storage.uris import S3Uri, parse_s3_uri
from hark_serving.transcript.error_record import ErrorRecord, render_error_record
from hark_serving.transcript.outputs import is_current, recorded_etag

log = logging.getLogger(__name__)

T = TypeVar("T")
SecretReader = Callable[[str, str], Awaitable[dict[str, str]]]


class Stores:
    def __init__(
        self,
        profiles: StorageProfiles,
        *,
        secrets: SecretReader | None = None,
        namespace: str = "default",
        refresh_seconds: float = 300.0,
        threads: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profiles = profiles
        self.secrets = secrets
        self.namespace = namespace
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._cache: dict[str, tuple[S3Store, float]] = {}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hark-s3")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking storage call off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def store(self, profile: str | None, namespace: str | None = None) -> S3Store:
        """The store of a profile; JobConfigError when the profile or its Secret is wrong,
        or when jobs of `namespace` may not use the profile (checked before any request)."""
        try:
            spec = self.profiles.profile(profile)
            if namespace is not None:
                self.profiles.check_namespace(profile, namespace)
        except (InvalidOption, ProfileNotAllowed) as exc:
            raise JobConfigError(exc.message) from None
        name = profile or self.profiles.spec.default
        cached = self._cache.get(name)
        if cached is not None and (
            spec.credentials_secret is None or self.clock() - cached[1] < self.refresh_seconds
        ):
            return cached[0]
        creds = None
        if spec.credentials_secret and self.secrets is not None:
            creds = await self._credentials(name, spec.credentials_secret)
        store = self.profiles.store(name, credentials=creds)
        self._cache[name] = (store, self.clock())
        return store

    def forget(self, profile: str | None) -> None:
        """Drop the cached store of a profile: its Secret is read again on next use
        (after the store refused the credentials: they may have been rotated)."""
        self._cache.pop(profile or self.profiles.spec.default, None)

    async def _credentials(self, profile: str, secret: str) -> Credentials:
        assert self.secrets is not None
        where = f"Secret {self.namespace}/{secret} of storage profile {profile!r}"
        try:
            data = await self.secrets(self.namespace, secret)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status in (403, 404):
                raise JobConfigError(f"{where} cannot be read ({status})") from exc
            raise
        try:
            return Credentials(
                data[ACCESS_KEY_FILE], data[SECRET_KEY_FILE], data.get(SESSION_TOKEN_FILE)
            )
        except KeyError as exc:
            raise JobConfigError(f"{where} lacks the key {exc.args[0]}") from None


def read_json(store: S3Store, uri: S3Uri) -> dict[str, Any] | None:
    """A JSON object, or None when it is missing or unreadable."""
    try:
        doc = json.loads(store.get_bytes(uri))
    except ObjectNotFound:
        return None
    except ValueError:
        log.warning("%s: not valid JSON; left out of the summary", uri)
        return None
    return doc if isinstance(doc, dict) else None


def write_json(store: S3Store, uri: S3Uri, doc: dict[str, Any]) -> None:
    store.put_bytes(uri, (json.dumps(doc, indent=2) + "\n").encode(), "application/json")


class ErrorRecorder:
    """Writes `<base>.error.json` for an item's last failure when the worker did not.

    The same `hark.error/v1` record, from the same writer, as the worker's, so a
    reader cannot tell who wrote it. A vanished input gets none: there is
    nothing left to report on and the next scan no longer lists it.
    """

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def record(self, job: str, item: WorkItem, result: ItemResult, attempts: int) -> None:
        code = result.error.code if result.error else "failed"
        if code == ObjectNotFound.code:
            return
        store = await self.stores.store(item.request.profile)
        await self.stores.run(self._write, store, job, item, result, attempts)

    @staticmethod
    def _write(store: S3Store, job: str, item: WorkItem, result: ItemResult, attempts: int) -> None:
        base = parse_s3_uri(item.request.output_uri)
        target = S3Uri(base.bucket, base.key + ".error.json")
        try:
            meta = store.head_metadata(target)
        except HarkError:
            meta = None
        if is_current(recorded_etag(meta), item.etag):
            return  # the worker recorded it
        error = result.error
        record = ErrorRecord.of(
            error.code if error else "failed",
            error.message if error else "processing failed",
            uri=item.request.input_uri,
            etag=item.etag,
            attempts=attempts,
            job=job,
        )
        store.put_bytes(target, *render_error_record(record))
