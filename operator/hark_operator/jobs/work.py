"""The unit of work and the contracts around it: what is sent, who processes it,
what comes back. Shared by the dispatcher above and the clients below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hark_serving.runs.itemspec import ItemRequest, ItemResult


@dataclass(frozen=True)
class WorkItem:
    key: str  # single-flight key: the output base URI
    request: ItemRequest
    size: int = 0
    etag: str = ""  # the input's ETag when it was listed
    tag: int = 0  # the caller's bookkeeping: the scan that queued it


@dataclass(frozen=True)
class Outcome:
    job: str
    item: WorkItem
    result: ItemResult
    attempts: int
    recorded: bool = True  # False: a failure whose error record could not be written


Sink = Callable[[Outcome], None]


class Processor(Protocol):
    """Processes one item; raises ProcessorUnavailable when no result came back.

    A processor may also have `async def ready() -> bool` (the Serve app's
    `/readyz`): after a timeout it tells a pool still scaling up from a file
    that takes too long."""

    async def process(self, request: ItemRequest) -> ItemResult: ...

    async def aclose(self) -> None: ...


class FailureRecorder(Protocol):
    """Leaves the trace of an item's last failure (its `.error.json`)."""

    async def record(self, job: str, item: WorkItem, result: ItemResult, attempts: int) -> None: ...
