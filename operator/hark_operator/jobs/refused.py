"""Inputs whose keys the worker would refuse (`uris.key_problem`): never dispatched,
counted in `total` as failed, named with the reason in the status and the job
summary, and given an error record where its key can be written."""

from __future__ import annotations

import logging
from datetime import datetime

from hark_operator.jobs.planner import PlanItem
from hark_operator.jobs.work import FailureRecorder, WorkItem
from hark_operator.resource.models import FailureRecord
from hark_serving.errors import InvalidUri
from hark_serving.runs.itemspec import ItemError, ItemRequest, ItemResult
from hark_serving.storage.uris import output_key_problem

log = logging.getLogger(__name__)


async def refuse(
    item: PlanItem, job: str, recorder: FailureRecorder | None, now: datetime
) -> FailureRecord:
    """Record why `item` cannot be processed; the failure to show in the job's status."""
    message = f"{item.problem}; rename the object"
    failure = FailureRecord(key=str(item.input), reason=InvalidUri.code, message=message, time=now)
    if item.has_error_record or recorder is None or output_key_problem(item.output_base.key):
        return failure  # nowhere to write one (or already there): status and summary name it
    request = ItemRequest(input_uri=str(item.input), output_uri=str(item.output_base), job=job)
    result = ItemResult(
        status="failed",
        input_uri=request.input_uri,
        output_uri=request.output_uri + ".json",
        error=ItemError(code=InvalidUri.code, message=message),
    )
    try:
        await recorder.record(job, WorkItem(item.key, request, etag=item.etag), result, 1)
    except Exception as exc:
        log.warning("%s: no error record for a refused key: %s", item.input, exc)
    return failure
