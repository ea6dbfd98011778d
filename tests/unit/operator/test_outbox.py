"""The alert outbox's plain decisions: which record goes out, and when the next pass comes."""

from __future__ import annotations

import pytest

from hark_operator.jobs.outbox import ORPHAN_SECONDS, PassResult, disposition, next_pass, under
from hark_serving.retry import RetryPolicy
from hark_serving.storage.uris import S3Uri

POLICY = RetryPolicy(base=2.0, cap=300.0, attempts=None, jitter=0.0)


@pytest.mark.parametrize(
    ("exists", "age", "expected"),
    [
        (True, 0.0, "deliver"),  # the transcript is written: the item is done
        (True, 10 * ORPHAN_SECONDS, "deliver"),
        (False, 5.0, "wait"),  # the worker is between the record and the transcript
        (False, ORPHAN_SECONDS - 1, "wait"),
        (False, ORPHAN_SECONDS, "drop"),  # the item never finished
    ],
)
def test_a_record_goes_out_once_its_transcript_exists(
    exists: bool, age: float, expected: str
) -> None:
    assert disposition(exists, age) == expected


def test_after_failed_deliveries_the_backoff_alone_decides_the_next_pass() -> None:
    failed = PassResult(delivered=1, undelivered=2, error="ConnectError")
    assert next_pass(failed, 1, POLICY) == (2.0, False)
    assert next_pass(failed, 3, POLICY) == (8.0, False)
    assert next_pass(failed, 30, POLICY) == (300.0, False)


def test_records_waiting_for_their_transcripts_are_looked_at_when_an_item_finishes() -> None:
    assert next_pass(PassResult(waiting=1), 0, POLICY) == (300.0, True)


def test_an_empty_outbox_waits_for_the_next_alert() -> None:
    done = PassResult(delivered=3)
    assert done.left == 0
    assert next_pass(done, 0, POLICY) == (None, True)
    assert PassResult(waiting=1, undelivered=2).left == 3


def test_a_record_may_only_name_a_transcript_under_the_jobs_output() -> None:
    out = S3Uri("calls-out", "qa/")
    assert under(S3Uri("calls-out", "qa/2026/a.wav.json"), out)
    assert not under(S3Uri("calls-out", "other/a.wav.json"), out)
    assert not under(S3Uri("elsewhere", "qa/a.wav.json"), out)
