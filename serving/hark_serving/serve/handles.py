"""Calls from one deployment to another, and what their failures mean.

A replica behind a Serve handle can be gone for reasons that are never the
request's: it died (scale-down, a node lost: `RayActorError`), it was picked and
then stopped (`ReplicaUnavailableError`), or its whole deployment was deleted or
failed to deploy (`DeploymentUnavailableError`: an app delete or a RayService
upgrade marks the deployment unavailable, and every handle to it then fails at
once, while the callers' own replicas may still be draining their requests).

Each of these is tried again on whichever replica the router picks; when the
tries are spent it is `Unavailable` (503, retried by every client), never an
internal error that would count against the file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

from hark_serving.retry import RetryPolicy, retry_async
from hark_serving.serve.errors import Unavailable

T = TypeVar("T")

REPLICA_GONE: tuple[type[BaseException], ...] = (
    RayActorError,
    ReplicaUnavailableError,
    DeploymentUnavailableError,
)


async def call_replica(
    call: Callable[[], Awaitable[T]], policy: RetryPolicy, *, describe: str, gone: str
) -> T:
    """`await call()`, again per `policy` while its replica is gone; then `Unavailable(gone)`."""
    try:
        return await retry_async(call, policy, retry_on=REPLICA_GONE, describe=describe)
    except REPLICA_GONE as exc:
        detail = (str(exc).strip().splitlines() or [""])[0]  # Ray's texts run to pages
        raise Unavailable(f"{gone} ({type(exc).__name__}{': ' if detail else ''}{detail})") from exc
