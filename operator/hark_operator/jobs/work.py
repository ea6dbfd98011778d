"""The unit of work and the contracts around it: what is sent, who processes it,
what comes back. Shared by the dispatcher above and the clients below."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hark_serving.runs.itemspec import ItemRequest, ItemResult

if TYPE_CHECKING:
    from hark_operator.jobs.planner import PlanItem
    from hark_operator.resource.models import JobSpec


@dataclass(frozen=True)
class WorkItem:
    key: str  # single-flight key: the output base URI
    request: ItemRequest
    size: int = 0
    etag: str = ""  # the input's ETag when it was listed
    tag: int = 0  # the caller's bookkeeping: the scan that queued it


def item_request(
    spec: JobSpec, item: PlanItem, job: str, alerts_prefix: str | None = None
) -> ItemRequest:
    """What is sent for one input of job `job` (`namespace/name`)."""
    return ItemRequest(
        input_uri=str(item.input),
        output_uri=str(item.output_base),
        formats=spec.formats(),
        options=spec.options.transcribe_options(),
        job=job,
        profile=spec.storage.profile,
        overwrite=spec.output.overwrite,
        max_segment_seconds=spec.options.vad.max_segment_seconds,
        categories=spec.analytics.categories if spec.analytics else None,
        alerts_prefix=alerts_prefix,
    )


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
    that takes too long; and `async def deployed() -> bool` (False only when no
    app is there at all): with tries in flight and no answers, it tells tries
    lost with a deleted app from slow ones."""

    async def process(self, request: ItemRequest) -> ItemResult: ...

    async def aclose(self) -> None: ...


class FailureRecorder(Protocol):
    """Leaves the trace of an item's last failure (its `.error.json`)."""

    async def record(self, job: str, item: WorkItem, result: ItemResult, attempts: int) -> None: ...
