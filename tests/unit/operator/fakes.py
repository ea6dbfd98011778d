"""In-memory stand-ins for the operator's unit tests: an S3 store and an item worker."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from hark_operator.errors import ProcessorUnavailable
from hark_serving.errors import AccessDenied, BucketNotAllowed, ObjectNotFound, StorageUnavailable
from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult
from hark_serving.storage.s3 import ObjectInfo
from hark_serving.storage.uris import S3Uri, parse_s3_uri

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


@dataclass
class _Obj:
    data: bytes
    metadata: dict[str, str]
    modified: datetime

    @property
    def etag(self) -> str:
        return '"' + hashlib.md5(self.data).hexdigest() + '"'


@dataclass
class FakeStore:
    """Keys in byte order, pages of `page_size`, one second of clock per write."""

    allowed_buckets: frozenset[str] = frozenset()
    objects: dict[tuple[str, str], _Obj] = field(default_factory=dict)
    now: datetime = EPOCH
    list_pages: int = 0
    unavailable: int = 0  # the next N calls fail with StorageUnavailable
    denied: int = 0  # the next N listings fail with AccessDenied (expired credentials)
    refuse_suffix: str = ""  # writes of keys ending so are refused (a bucket policy)
    puts: Counter[str] = field(default_factory=Counter)
    gets: int = 0
    read_delay: float = 0.0  # seconds each get_bytes takes (a slow store, a far region)

    def _tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def _maybe_fail(self, uri: object) -> None:
        if self.unavailable > 0:
            self.unavailable -= 1
            raise StorageUnavailable("injected", subject=str(uri))

    def check_allowed(self, uri: S3Uri) -> None:
        if self.allowed_buckets and uri.bucket not in self.allowed_buckets:
            raise BucketNotAllowed("not allowed", subject=str(uri))

    def put(self, uri: str, data: bytes = b"audio", metadata: dict[str, str] | None = None) -> None:
        u = parse_s3_uri(uri)
        self.put_bytes(u, data, "application/octet-stream", metadata)

    def iter_objects(self, prefix: S3Uri, page_size: int = 1000) -> Iterator[ObjectInfo]:
        self.check_allowed(prefix)
        if self.denied > 0:
            self.denied -= 1
            raise AccessDenied("the credentials expired", subject=str(prefix))
        keys = sorted(
            k for (b, k) in self.objects if b == prefix.bucket and k.startswith(prefix.key)
        )
        for start in range(0, max(len(keys), 1), page_size):
            self._maybe_fail(prefix)
            self.list_pages += 1
            for key in keys[start : start + page_size]:
                obj = self.objects.get((prefix.bucket, key))
                if obj is not None:
                    yield ObjectInfo(key, len(obj.data), obj.etag, obj.modified)

    def head(self, uri: S3Uri) -> ObjectInfo | None:
        self._maybe_fail(uri)
        obj = self.objects.get((uri.bucket, uri.key))
        return None if obj is None else ObjectInfo(uri.key, len(obj.data), obj.etag, obj.modified)

    def head_metadata(self, uri: S3Uri) -> dict[str, str] | None:
        obj = self.objects.get((uri.bucket, uri.key))
        return None if obj is None else dict(obj.metadata)

    def get_bytes(self, uri: S3Uri) -> bytes:
        self._maybe_fail(uri)
        self.gets += 1
        if self.read_delay:
            time.sleep(self.read_delay)
        obj = self.objects.get((uri.bucket, uri.key))
        if obj is None:
            raise ObjectNotFound("no such object", subject=str(uri))
        return obj.data

    def put_bytes(
        self,
        uri: S3Uri,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> None:
        self._maybe_fail(uri)
        if self.refuse_suffix and uri.key.endswith(self.refuse_suffix):
            raise AccessDenied("the bucket policy demands encryption headers", subject=str(uri))
        self.puts[str(uri)] += 1
        self.objects[(uri.bucket, uri.key)] = _Obj(data, dict(metadata or {}), self._tick())

    def delete(self, uri: S3Uri) -> None:
        self.objects.pop((uri.bucket, uri.key), None)

    def keys(self, bucket: str) -> list[str]:
        return sorted(k for (b, k) in self.objects if b == bucket)


def transcript(duration: float = 2.0, language: str = "en") -> dict[str, object]:
    return {
        "schema": "hark.transcript/v1",
        "source": {"duration": duration},
        "summary": {
            "speech_seconds": duration / 2,
            "languages": {language: duration / 2},
            "emotions": {"NEUTRAL": duration / 2},
            "events": {"Speech": 1},
            "flags": [],
        },
    }


@dataclass
class FakeWorker:
    """Does what a Serve worker does to a FakeStore: outputs (JSON last) or `.error.json`.

    Inputs whose bytes are b"broken" fail for good; `flaky[key]` makes the next
    N calls for an input fail retryably; `hang` keeps calls waiting until set.
    """

    store: FakeStore
    delay: float = 0.0
    flaky: Counter[str] = field(default_factory=Counter)
    unreachable: Counter[str] = field(default_factory=Counter)
    crashes: Counter[str] = field(default_factory=Counter)  # failures the input may cause
    down: int = 0  # the next N calls, whatever the input, find no processor
    hang: asyncio.Event | None = None
    calls: list[ItemRequest] = field(default_factory=list)
    active: Counter[str] = field(default_factory=Counter)  # per job, right now
    peak: Counter[str] = field(default_factory=Counter)  # per job, ever
    peak_total: int = 0
    in_flight_keys: set[str] = field(default_factory=set)
    overlaps: int = 0  # the same output worked on twice at once
    closed: bool = False

    async def process(self, req: ItemRequest) -> ItemResult:
        job = req.job or ""
        self.calls.append(req)
        if req.output_uri in self.in_flight_keys:
            self.overlaps += 1
        self.in_flight_keys.add(req.output_uri)
        self.active[job] += 1
        self.peak[job] = max(self.peak[job], self.active[job])
        self.peak_total = max(self.peak_total, sum(self.active.values()))
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.hang is not None:
                await self.hang.wait()
            if self.down > 0:
                self.down -= 1
                raise ProcessorUnavailable("connection refused")
            if self.unreachable[req.input_uri] > 0:
                self.unreachable[req.input_uri] -= 1
                raise ProcessorUnavailable("connection reset")
            if self.crashes[req.input_uri] > 0:
                self.crashes[req.input_uri] -= 1
                return ItemResult(
                    status="failed",
                    input_uri=req.input_uri,
                    output_uri=req.output_uri + ".json",
                    error=ItemError(code="internal", message="the decoder crashed"),
                    retryable=True,
                )
            if self.flaky[req.input_uri] > 0:
                self.flaky[req.input_uri] -= 1
                return ItemResult(
                    status="failed",
                    input_uri=req.input_uri,
                    output_uri=req.output_uri + ".json",
                    error=ItemError(code="storage_unavailable", message="flaky"),
                    retryable=True,
                )
            return self._run(req)
        finally:
            self.active[job] -= 1
            self.in_flight_keys.discard(req.output_uri)

    def _run(self, req: ItemRequest) -> ItemResult:
        src, out = parse_s3_uri(req.input_uri), parse_s3_uri(req.output_uri)
        head = self.store.head(src)
        if head is None:
            return ItemResult(
                status="failed",
                input_uri=req.input_uri,
                output_uri=req.output_uri + ".json",
                error=ItemError(code="not_found", message="gone"),
            )
        etag = head.clean_etag
        current = self.store.head_metadata(S3Uri(out.bucket, out.key + ".json"))
        if not req.overwrite and current is not None and current.get("hark-source-etag") == etag:
            return ItemResult(
                status="skipped",
                input_uri=req.input_uri,
                output_uri=req.output_uri + ".json",
                etag=etag,
            )
        data = self.store.get_bytes(src)
        if data == b"broken":
            doc = {"code": "corrupt_audio", "message": "cannot decode", "attempts": req.attempt}
            with contextlib.suppress(AccessDenied):  # as the worker: logged, reported below
                self.store.put_bytes(
                    S3Uri(out.bucket, out.key + ".error.json"),
                    json.dumps(doc).encode(),
                    "application/json",
                    {"hark-source-etag": etag},
                )
            return ItemResult(
                status="failed",
                input_uri=req.input_uri,
                output_uri=req.output_uri + ".json",
                etag=etag,
                error=ItemError(code="corrupt_audio", message="cannot decode"),
            )
        for fmt in [f for f in req.formats if f != "json"] + ["json"]:
            body = json.dumps(transcript()).encode() if fmt == "json" else b"text"
            self.store.put_bytes(
                S3Uri(out.bucket, f"{out.key}.{fmt}"),
                body,
                "text/plain",
                {"hark-source-etag": etag},
            )
        self.store.delete(S3Uri(out.bucket, out.key + ".error.json"))
        return ItemResult(
            status="succeeded",
            input_uri=req.input_uri,
            output_uri=req.output_uri + ".json",
            etag=etag,
            audio_seconds=2.0,
        )

    async def aclose(self) -> None:
        self.closed = True


class FakeStores:
    """`clients.storage.Stores` over one FakeStore (every profile maps to it)."""

    def __init__(self, store: FakeStore) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.fake = store
        self.forgotten = 0
        self._pool = ThreadPoolExecutor(max_workers=2)

    async def store(self, profile: str | None, namespace: str | None = None) -> FakeStore:
        from hark_operator.errors import JobConfigError

        if profile == "missing":
            raise JobConfigError("unknown storage profile 'missing'")
        return self.fake

    def forget(self, profile: str | None) -> None:
        self.forgotten += 1

    async def run(self, fn, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False)


@dataclass
class Events:
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    async def event(self, type_: str, reason: str, message: str) -> None:
        self.seen.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.seen]
