"""The QA report of a job with `analytics` (calls.csv, report.json, report.html), written
beside its summary when the job succeeds; a report that cannot be written is an Event,
never a failed job."""

from __future__ import annotations

import functools
import logging

from hark_operator.clients.storage import Stores
from hark_operator.jobs.reporter import Reporter
from hark_operator.resource.models import JobSpec
from hark_serving.analytics.report import MetadataPattern
from hark_serving.errors import InvalidOption, StorageError
from hark_serving.runs.qa import write_job_report
from hark_serving.storage.s3 import S3Store

log = logging.getLogger(__name__)


async def write_qa_report(
    spec: JobSpec, job: str, store: S3Store, stores: Stores, reporter: Reporter
) -> None:
    """Write the report of `job` (`<namespace>.<name>`) under the job's output prefix."""
    assert spec.analytics is not None
    pattern = spec.analytics.metadata.pattern
    try:
        write = functools.partial(
            write_job_report,
            rules=spec.analytics.rules(),
            pattern=MetadataPattern.parse(pattern) if pattern else None,
        )
        await stores.run(write, store, spec.output_prefix, job)
    except (StorageError, InvalidOption) as exc:
        log.warning("%s: QA report not written: %s", job, exc)
        await reporter.event("Warning", "ReportNotWritten", str(exc))
