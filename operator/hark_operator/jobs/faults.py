"""Whose fault a failed try was: the input's, or the world around it.

Only a try in which the file itself may be at fault counts towards a job's
`maxAttempts` and may end in an error record. Everything else (the processor
unreachable or refusing the operator's credential, an overloaded or starting
Serve app, an object store outage, throttling, expired or missing
credentials) leaves the file pending: it is tried again after a backoff, as
often as it takes, and never becomes an error record.

    blame(result) ─► "input"        counts an attempt; the last one is recorded
                 ├─► "processor"    the Serve app cannot take work: pause all dispatch
                 └─► "environment"  storage, credentials, throttling: this item waits

A code this table does not know counts as the input's, so a new failure mode
cannot loop forever: it is bounded by `maxAttempts`.
"""

from __future__ import annotations

from typing import Literal

from hark_serving.runs.itemspec import ItemResult

Blame = Literal["input", "processor", "environment"]

# The processor itself: no Worker or Transcriber can take the item now.
PROCESSOR_CODES = frozenset(
    {
        "processor_unavailable",  # no answer: connection refused, reset, DNS
        "processor_refused",  # 401/403/404 without a result: token or URL wrong
        "unauthorized",
        "model_unavailable",  # the Transcriber is (re)loading or scaled to zero
        "unavailable",  # no Worker/Transcriber replica finished it
        "overloaded",
    }
)
# Around the processor: the object store, credentials, the bucket policy.
ENVIRONMENT_CODES = frozenset(
    {
        "storage_unavailable",
        "storage_error",
        "access_denied",  # expired or rotated credentials, a bucket policy
        "bucket_not_allowed",  # the profile changed under a running job
        "invalid_config",
        "throttled",
        "in_progress",  # another request holds the output's lease
        "source_changed",  # the input was re-uploaded while it was transcribed
    }
)
# A try that hit the item timeout: the file's fault only when the processor was
# demonstrably working meanwhile (see `Dispatcher`); otherwise the pool was
# scaling or stuck.
TIMEOUT = "timeout"


def blame(result: ItemResult, *, processor_worked: bool = False) -> Blame:
    """Who caused a failed result. `processor_worked`: another item succeeded during the try."""
    code = result.error.code if result.error is not None else "internal"
    if code in PROCESSOR_CODES:
        return "processor"
    if code in ENVIRONMENT_CODES:
        return "environment"
    if code == TIMEOUT:
        return "input" if processor_worked else "environment"
    return "input"
