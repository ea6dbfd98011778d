"""A replica gone behind a Serve handle is the processor's fault, never the file's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from ray.exceptions import RayActorError
from ray.serve._private.common import DeploymentID
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

from hark_operator.jobs.faults import blame
from hark_serving.retry import RetryPolicy
from hark_serving.runs.itemspec import ItemError, ItemResult
from hark_serving.serve.errors import Unavailable, status_for
from hark_serving.serve.handles import call_replica

NOW = RetryPolicy(base=0.0, cap=0.0, attempts=3)
# What Ray raises: a replica that died, one picked and then stopped, and a deployment
# deleted (an app delete or a RayService upgrade) while its callers still drain.
GONE = [
    RayActorError(),
    ReplicaUnavailableError("hark#Transcriber#abc"),
    DeploymentUnavailableError(DeploymentID(name="Transcriber", app_name="hark")),
]


def _calls(*outcomes: BaseException | str) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    made: list[int] = []

    async def call() -> str:
        made.append(1)
        outcome = outcomes[len(made) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return made, call


@pytest.mark.parametrize("exc", GONE, ids=lambda e: type(e).__name__)
def test_a_gone_replica_is_tried_again_and_the_answer_kept(exc: BaseException) -> None:
    made, call = _calls(exc, "text")
    answer = asyncio.run(call_replica(call, NOW, describe="a call", gone="no replica"))
    assert answer == "text" and len(made) == 2


@pytest.mark.parametrize("exc", GONE, ids=lambda e: type(e).__name__)
def test_a_replica_gone_on_every_try_is_unavailable_and_blamed_on_the_processor(
    exc: BaseException,
) -> None:
    made, call = _calls(exc, exc, exc)
    with pytest.raises(Unavailable) as caught:
        asyncio.run(call_replica(call, NOW, describe="a call", gone="no Transcriber"))
    error = caught.value
    assert len(made) == 3
    assert error.code == "unavailable" and error.transient and status_for(error.code) == 503
    assert str(error).startswith(f"no Transcriber ({type(exc).__name__}")
    assert "\n" not in str(error)
    # The operator pauses dispatch for it, and the file keeps its attempts.
    result = ItemResult(
        status="failed",
        input_uri="s3://in/a.wav",
        output_uri="s3://out/a.wav.json",
        error=ItemError(code=error.code, message=str(error)),
        retryable=True,
    )
    assert blame(result) == "processor"


def test_other_errors_are_not_taken_for_a_gone_replica() -> None:
    made, call = _calls(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(call_replica(call, NOW, describe="a call", gone="no replica"))
    assert len(made) == 1
