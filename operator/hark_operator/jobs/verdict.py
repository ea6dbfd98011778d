"""When a Batch job has failed: its failure budget, as Kubernetes Jobs have one.

`spec.maxFailedFiles` plays the part of a Job's `maxFailedIndexes`: once more
files than that have failed, the job stops dispatching and reads `Failed`
(reason `FailureBudgetExceeded`). Without a budget the job runs to the end and
reads `Failed` only when every file it looked at failed (`AllFilesFailed`), so
a job that did nothing never reads `Succeeded`. Files that were current
already count as succeeded. Watch jobs report failures and go on.

A job's runner that fails outside its scan (the scan's own failures are
conditions and retries inside the runner) is started again by the daemon
after a backoff. A Batch job gives up after `RUNNER_RETRIES` starts; a Watch
job never does, since it has no end to reach: it keeps trying, at most
`RUNNER_RETRY_CAP` seconds apart. Each failure is an Event, and the job's
status says it: `Pending` with `Progressing=False`, reason `RunnerFailed`,
until the runner starts again (`Failed` for a Batch job that gave up).
"""

from __future__ import annotations

from hark_operator.resource.models import Counts
from hark_serving.retry import RetryPolicy

RUNNER_RETRIES = 20
RUNNER_RETRY_CAP = 300.0
_RUNNER_POLICY = RetryPolicy(base=10.0, cap=RUNNER_RETRY_CAP, attempts=None, jitter=0.5)


def runner_retry(mode: str, retry: int, rand: float | None = None) -> float | None:
    """Seconds until a failed runner starts again (`retry`: failures so far, 0-based),
    or None when the job should stop trying (a Batch job, past `RUNNER_RETRIES`)."""
    if mode != "Watch" and retry >= RUNNER_RETRIES:
        return None
    return _RUNNER_POLICY.delay(retry + 1, rand)


def over_budget(counts: Counts, budget: int | None) -> tuple[str, str] | None:
    """(reason, message) once the failed files exceed the budget; None while within it."""
    if budget is not None and counts.failed > budget:
        return (
            "FailureBudgetExceeded",
            f"{counts.failed} files failed, more than maxFailedFiles={budget}; "
            "dispatching stopped (each failure has its .error.json)",
        )
    return None


def final_verdict(counts: Counts, budget: int | None) -> tuple[str, str] | None:
    """(reason, message) when a Batch job that has nothing left to do has failed."""
    exceeded = over_budget(counts, budget)
    if exceeded is not None:
        return exceeded
    if budget is None and counts.failed > 0 and counts.succeeded == 0:
        return (
            "AllFilesFailed",
            f"all {counts.failed} files failed; see recentFailures and their .error.json",
        )
    return None
