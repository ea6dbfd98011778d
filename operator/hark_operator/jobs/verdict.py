"""When a Batch job has failed: its failure budget, as Kubernetes Jobs have one.

`spec.maxFailedFiles` plays the part of a Job's `maxFailedIndexes`: once more
files than that have failed, the job stops dispatching and reads `Failed`
(reason `FailureBudgetExceeded`). Without a budget the job runs to the end and
reads `Failed` only when every file it looked at failed (`AllFilesFailed`), so
a job that did nothing never reads `Succeeded`. Files that were current
already count as succeeded. Watch jobs report failures and go on.
"""

from __future__ import annotations

from hark_operator.resource.models import Counts


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
