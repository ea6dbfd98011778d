"""Whose fault a failed try was decides whether it spends an attempt."""

from __future__ import annotations

import pytest

from hark_operator.jobs.faults import blame
from hark_operator.jobs.gate import PROBE_CAP_SECONDS, Gate, probe_policy
from hark_serving.retry import RetryPolicy
from hark_serving.runs.itemspec import ItemError, ItemResult


def failed(code: str) -> ItemResult:
    return ItemResult(
        status="failed",
        input_uri="s3://in/a.wav",
        output_uri="s3://out/a.wav.json",
        error=ItemError(code=code, message="x"),
        retryable=True,
    )


@pytest.mark.parametrize(
    ("code", "who"),
    [
        ("processor_unavailable", "processor"),
        ("processor_refused", "processor"),
        ("model_unavailable", "processor"),
        ("unavailable", "processor"),
        ("storage_unavailable", "environment"),
        ("access_denied", "environment"),
        ("throttled", "environment"),
        ("corrupt_audio", "input"),
        ("internal", "input"),
        ("a_code_added_later", "input"),
    ],
)
def test_each_code_has_its_culprit(code: str, who: str) -> None:
    assert blame(failed(code)) == who


def test_a_timeout_is_the_files_fault_only_while_the_processor_works() -> None:
    assert blame(failed("timeout"), processor_worked=False) == "environment"
    assert blame(failed("timeout"), processor_worked=True) == "input"


def test_the_gate_pauses_probes_once_and_reopens_on_an_answer() -> None:
    now = [100.0]
    gate = Gate(RetryPolicy(base=10, cap=60, jitter=0), clock=lambda: now[0])
    assert gate.may_send() and not gate.sent()
    gate.failed("processor_refused", "401", probe=False)
    assert not gate.available and gate.state.reason == "ProcessorRefused"
    assert not gate.may_send() and gate.seconds_to_probe() == 10
    now[0] += 10
    assert gate.may_send() and gate.sent()  # the probe
    assert not gate.may_send()  # one probe at a time
    gate.failed("processor_unavailable", "refused", probe=True)
    assert gate.state.failures == 2 and gate.seconds_to_probe() == 20
    gate.failed("processor_unavailable", "late answer of an old try", probe=False)
    assert gate.seconds_to_probe() == 20  # the schedule stands
    now[0] += 20
    assert gate.sent()
    gate.answered(probe=True)
    assert gate.available and gate.may_send() and gate.changes == 2


def test_probes_of_a_long_outage_come_at_most_half_a_minute_apart() -> None:
    items = RetryPolicy(base=2, cap=300, attempts=None, jitter=0)
    probes = probe_policy(items)
    assert probes.cap == PROBE_CAP_SECONDS == 30 and probes.base == 2
    assert [probes.delay(n) for n in (1, 4, 5, 12)] == [2, 16, 30, 30]
    assert items.delay(12) == 300  # items keep their own, longer backoff
