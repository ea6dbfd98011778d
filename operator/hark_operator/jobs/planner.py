"""What a job still has to do, read from S3 listings.

Inputs under the job's input prefix and outputs under its output prefix are
listed page by page, both in key order, and joined on the input's path
relative to its prefix (docs/architecture.md, "Done, pending, failed"):

- done: `<relative>.json` exists, is newer than the input, or as new (the same
  second) and records the input's ETag (`transcript.outputs.is_current`, one
  HEAD for such a tie);
- failed for good: `<relative>.error.json` the same way;
- pending: anything else. With `overwrite`, an output only counts when it was
  written after the job was created.

An output newer than its input is current because the worker checks the
input's ETag again after writing and transcribes again if it changed; so
timestamps only rule outputs out, and a tie is settled by ETag.

The join streams. An input's expected output keys (`r.error.json`, `r.json`)
are never smaller than `r` itself, and every later input is at least `r`,
so once the input listing has reached `r`, every expected key below `r` can
be settled against the output listing and no later input can want an output
key below `r`. A small heap holds the expected keys not yet settled: for
ordinary names only the latest input's, for names that prefix one another
(`x.mp3`, `x.mp3-copy.mp3`) a few more. Memory stays at about one page per
listing, whatever the size of the prefixes.

One key a bucket notification names is planned without listing
(`Planner.plan_key`): the same filters, key rules and verdict (`plan_item`),
from HEAD requests of the input and its two outputs.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from hark_serving.errors import InvalidUri
from hark_serving.storage.s3 import ObjectInfo, S3Store
from hark_serving.storage.uris import (
    S3Uri,
    as_prefix,
    key_problem,
    matches,
    output_key_problem,
    relative_key,
    safe_relative,
)
from hark_serving.transcript.outputs import is_current, recorded_etag

if TYPE_CHECKING:
    from hark_operator.resource.models import JobSpec

log = logging.getLogger(__name__)

JSON_SUFFIX = ".json"
ERROR_SUFFIX = ".error.json"

ItemState = Literal["pending", "done", "failed"]
# (relative path, input etag) → True when the item is known to be current even
# though the listing says otherwise (the worker found its ETag on the output).
KnownCurrent = Callable[[str, str], bool]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class PlanItem:
    """One input object and what the listings say about it."""

    relative: str
    input: S3Uri
    output_base: S3Uri  # outputs are <output_base>.json, .srt, ..., .error.json
    size: int
    etag: str
    state: ItemState
    preexisting: bool = False  # its result predates the job: nothing was done for it
    # Why the worker would refuse its keys (`uris.key_problem`): failed, never dispatched.
    problem: str | None = None
    has_error_record: bool = False
    written: datetime | None = None  # when the output that settled a done or failed state was

    @property
    def key(self) -> str:
        """The single-flight key: one output base is written by one request at a time."""
        return str(self.output_base)


@dataclass
class ScanTally:
    """Counts of one scan, built as items stream past."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0
    pending_bytes: int = 0

    def add(self, item: PlanItem) -> None:
        self.total += 1
        if item.state == "done":
            self.done += 1
            self.skipped += item.preexisting
        elif item.state == "failed":
            self.failed += 1
        else:
            self.pending += 1
            self.pending_bytes += item.size


@dataclass
class _Open:
    info: ObjectInfo
    json: ObjectInfo | None = None
    error: ObjectInfo | None = None
    remaining: int = 2


@dataclass
class _Peek:
    it: Iterator[tuple[str, ObjectInfo]]
    head: tuple[str, ObjectInfo] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.advance()

    def advance(self) -> None:
        self.head = next(self.it, None)


Joined = tuple[str, ObjectInfo, ObjectInfo | None, ObjectInfo | None]


def merge_join(
    inputs: Iterator[tuple[str, ObjectInfo]], outputs: Iterator[tuple[str, ObjectInfo]]
) -> Iterator[Joined]:
    """(relative, input, json output, error output) for every input; both streams
    must be in key order (S3's UTF-8 byte order equals Python's code point order)."""
    heap: list[tuple[str, int, str, bool]] = []  # (expected key, seq, relative, is_error)
    open_items: dict[str, _Open] = {}
    out = _Peek(outputs)
    seq = 0

    def settle(bound: str | None) -> Iterator[Joined]:
        while heap and (bound is None or heap[0][0] < bound):
            key, _, rel, is_error = heapq.heappop(heap)
            while out.head is not None and out.head[0] < key:
                out.advance()
            # Not consumed on a match: `a.error` + ".json" equals `a` + ".error.json".
            found = out.head[1] if out.head is not None and out.head[0] == key else None
            entry = open_items[rel]
            if is_error:
                entry.error = found
            else:
                entry.json = found
            entry.remaining -= 1
            if entry.remaining == 0:
                del open_items[rel]
                yield rel, entry.info, entry.json, entry.error

    for rel, info in inputs:
        yield from settle(rel)
        if rel in open_items:
            continue  # a listing never repeats a key; be safe all the same
        open_items[rel] = _Open(info)
        seq += 1
        heapq.heappush(heap, (rel + ERROR_SUFFIX, seq, rel, True))
        heapq.heappush(heap, (rel + JSON_SUFFIX, seq, rel, False))
    yield from settle(None)


# (output key, input etag) → whether the output records that etag (a HEAD)
EtagCheck = Callable[[str, str], bool]


def classify(
    source: ObjectInfo,
    json: ObjectInfo | None,
    error: ObjectInfo | None,
    *,
    overwrite: bool = False,
    since: datetime | None = None,
    records: EtagCheck | None = None,
) -> tuple[ItemState, bool]:
    """(state, preexisting) of one input from its outputs' modification times and,
    for an output written in the same second as its input, the ETag it records."""

    def current(out: ObjectInfo | None) -> bool:
        if out is None:
            return False
        if out.last_modified is None or source.last_modified is None:
            return not overwrite
        if out.last_modified < source.last_modified:
            return False
        if out.last_modified == source.last_modified and (
            records is None or not records(out.key, source.clean_etag)
        ):
            return False
        return not (overwrite and since is not None and out.last_modified < since)

    def old(out: ObjectInfo) -> bool:
        return since is not None and out.last_modified is not None and out.last_modified < since

    json_ok, error_ok = current(json), current(error)
    if json_ok and error_ok:
        assert json is not None and error is not None
        # Both current: the later write wins (a success deletes its error file).
        json_ok = (json.last_modified or _EPOCH) >= (error.last_modified or _EPOCH)
        error_ok = not json_ok
    if json_ok:
        assert json is not None
        return "done", old(json)
    if error_ok:
        assert error is not None
        return "failed", old(error)
    return "pending", False


def keys_problem(input_key: str, relative: str, output_prefix_key: str) -> str | None:
    """Why the worker would refuse this input or its outputs: the same checks it makes."""
    problem = key_problem(input_key)
    if problem is not None:
        return f"the input key: {problem}"
    try:
        safe_relative(relative)
    except InvalidUri as exc:
        return f"the input key: {exc.message}"
    return output_key_problem(output_prefix_key + relative)


def input_relative(
    key: str, prefix: str, include: Sequence[str], exclude: Sequence[str]
) -> str | None:
    """The path of `key` under the listed input `prefix` when the object is one of the
    job's inputs; None for folder placeholders, keys elsewhere and names the filters drop."""
    if key.endswith("/") or not key.startswith(prefix):
        return None
    try:
        rel = relative_key(key, prefix)
    except InvalidUri:
        rel = key[len(prefix) :]  # counted, and failed with the reason
    return rel if matches(rel, include, exclude) else None


def plan_item(
    listed: S3Uri,
    out: S3Uri,
    rel: str,
    info: ObjectInfo,
    json: ObjectInfo | None,
    error: ObjectInfo | None,
    *,
    overwrite: bool,
    since: datetime | None,
    records: EtagCheck | None,
    known_current: KnownCurrent | None,
) -> PlanItem:
    """One input with what its outputs say about it: the same verdict for a listed
    input and for one a notification named."""
    problem = keys_problem(info.key, rel, out.key)
    if problem is not None:
        return PlanItem(
            relative=rel,
            input=S3Uri(listed.bucket, info.key),
            output_base=S3Uri(out.bucket, out.key + rel),
            size=info.size,
            etag=info.clean_etag,
            state="failed",
            problem=problem,
            has_error_record=error is not None,
        )
    state, preexisting = classify(
        info, json, error, overwrite=overwrite, since=since, records=records
    )
    settled = json if state == "done" else error if state == "failed" else None
    if (
        state == "pending"
        and known_current is not None
        and not overwrite
        and known_current(rel, info.clean_etag)
    ):
        state = "done"
    return PlanItem(
        relative=rel,
        input=S3Uri(listed.bucket, info.key),
        output_base=out.join(rel),
        size=info.size,
        etag=info.clean_etag,
        state=state,
        preexisting=preexisting,
        written=settled.last_modified if settled is not None else None,
    )


class Planner:
    """Scans one job's prefixes; every call lists afresh (S3 is the source of truth)."""

    def __init__(self, store: S3Store, *, page_size: int = 1000) -> None:
        self.store = store
        self.page_size = page_size

    def _inputs(
        self, uri: S3Uri, include: Sequence[str], exclude: Sequence[str]
    ) -> tuple[S3Uri, str, Iterator[tuple[str, ObjectInfo]]]:
        """(listed prefix, output sub-prefix, relative inputs in key order)."""
        if not uri.is_prefix:
            head = self.store.head(uri)
            if head is not None:
                rel = relative_key(uri.key, uri.key)
                one = ObjectInfo(uri.key, head.size, head.etag, head.last_modified)
                return uri, rel, iter([(rel, one)])  # named explicitly: no pattern applies
            uri = as_prefix(uri)  # `s3://b/folder` without the slash names the folder

        def listing() -> Iterator[tuple[str, ObjectInfo]]:
            for obj in self.store.iter_objects(uri, self.page_size):
                rel = input_relative(obj.key, uri.key, include, exclude)
                if rel is not None:
                    yield rel, obj

        return uri, "", listing()

    def _outputs(self, prefix: S3Uri, narrow: str) -> Iterator[tuple[str, ObjectInfo]]:
        listed = S3Uri(prefix.bucket, prefix.key + narrow)
        for obj in self.store.iter_objects(listed, self.page_size):
            yield obj.key[len(prefix.key) :], obj

    def scan(
        self,
        input_uri: S3Uri,
        output_prefix: S3Uri,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        *,
        overwrite: bool = False,
        since: datetime | None = None,
        known_current: KnownCurrent | None = None,
    ) -> Generator[PlanItem, None, None]:
        """Every matching input with its state, streamed; raises StorageError."""
        out = as_prefix(output_prefix)
        self.store.check_allowed(input_uri)
        self.store.check_allowed(out)
        records = self._records(out)
        listed, narrow, inputs = self._inputs(input_uri, include, exclude)
        for rel, info, json, error in merge_join(inputs, self._outputs(out, narrow)):
            yield plan_item(
                listed, out, rel, info, json, error,
                overwrite=overwrite, since=since, records=records,
                known_current=known_current,
            )  # fmt: skip

    def scan_job(
        self,
        spec: JobSpec,
        *,
        since: datetime | None,
        known_current: KnownCurrent | None = None,
    ) -> Generator[PlanItem, None, None]:
        """`scan` over a job's input, output, filters and overwrite setting."""
        return self.scan(
            spec.input_uri,
            spec.output_prefix,
            spec.input.include,
            spec.input.exclude,
            overwrite=spec.output.overwrite,
            since=since,
            known_current=known_current,
        )

    def _records(self, out: S3Uri) -> EtagCheck:
        def records(key: str, etag: str) -> bool:
            return is_current(recorded_etag(self.store.head_metadata(S3Uri(out.bucket, key))), etag)

        return records

    def plan_key(
        self,
        input_uri: S3Uri,
        output_prefix: S3Uri,
        key: str,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        *,
        overwrite: bool = False,
        since: datetime | None = None,
        known_current: KnownCurrent | None = None,
    ) -> PlanItem | None:
        """The one input `key` (in the input's bucket) as a scan would see it, from HEAD
        requests instead of listings; None when it is not an input of the job (outside
        the prefix, dropped by the filters, a folder, gone). Raises StorageError."""
        out = as_prefix(output_prefix)
        self.store.check_allowed(input_uri)
        self.store.check_allowed(out)
        listed = input_uri
        if not input_uri.is_prefix:
            named = self.store.head(input_uri)
            if named is not None:  # the job names one object: no other key is an input
                if key != input_uri.key:
                    return None
                one = relative_key(key, key)
                return self._plan_head(listed, out, one, named, overwrite, since, known_current)
            listed = as_prefix(input_uri)
        rel = input_relative(key, listed.key, include, exclude)
        if rel is None:
            return None
        info = self.store.head(S3Uri(listed.bucket, key))
        if info is None:
            return None  # deleted since: nothing to do
        return self._plan_head(listed, out, rel, info, overwrite, since, known_current)

    def _plan_head(
        self,
        listed: S3Uri,
        out: S3Uri,
        rel: str,
        info: ObjectInfo,
        overwrite: bool,
        since: datetime | None,
        known_current: KnownCurrent | None,
    ) -> PlanItem:
        # Input and outputs all from HEAD: their times have the same precision.
        json = error = None
        if keys_problem(info.key, rel, out.key) is None:
            json = self.store.head(S3Uri(out.bucket, out.key + rel + JSON_SUFFIX))
            error = self.store.head(S3Uri(out.bucket, out.key + rel + ERROR_SUFFIX))
        return plan_item(
            listed, out, rel, info, json, error,
            overwrite=overwrite, since=since, records=self._records(out),
            known_current=known_current,
        )  # fmt: skip
