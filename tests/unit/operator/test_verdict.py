"""A job's failure budget and what happens when its runner keeps failing."""

from __future__ import annotations

from hark_operator.jobs.verdict import RUNNER_RETRIES, RUNNER_RETRY_CAP, runner_retry
from hark_operator.resource.models import Counts


def test_a_watch_runner_is_started_again_however_often_it_failed() -> None:
    delays = [runner_retry("Watch", n, rand=0.0) for n in range(RUNNER_RETRIES * 5)]
    assert all(d is not None and 0 < d <= RUNNER_RETRY_CAP for d in delays)
    assert delays[0] < delays[3] and delays[-1] == RUNNER_RETRY_CAP  # backs off, capped


def test_a_batch_runner_that_keeps_failing_stops_after_its_retries() -> None:
    assert runner_retry("Batch", RUNNER_RETRIES - 1) is not None
    assert runner_retry("Batch", RUNNER_RETRIES) is None


def test_the_failure_budget_and_the_all_failed_verdict() -> None:
    from hark_operator.jobs.verdict import final_verdict, over_budget

    assert over_budget(Counts(total=5, failed=2), 2) is None
    assert over_budget(Counts(total=5, failed=3), 2)[0] == "FailureBudgetExceeded"  # type: ignore[index]
    assert final_verdict(Counts(total=3, failed=3), None)[0] == "AllFilesFailed"  # type: ignore[index]
    assert final_verdict(Counts(total=3, failed=2, succeeded=1), None) is None
