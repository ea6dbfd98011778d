"""kopf handlers: thin shells between kopf and the job core.

- startup: read settings, configure kopf (where it keeps its own state), build
  the runtime; cleanup: stop it.
- a daemon per TranscriptionJob runs the job (`lifecycle.JobRunner`) while
  the object exists; kopf stops it when the object is deleted or when
  peering pauses this replica, and starts it again after a restart.
- a spec change wakes the job so suspend and priority take effect at once.

kopf keeps handler progress and the last handled spec in `status.kopf`
(never in annotations, which would otherwise grow with every handler run),
and the CRD's status schema preserves that field.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import kopf

from hark_operator.clients.kube import KubeClient
from hark_operator.jobs.verdict import runner_retry
from hark_operator.resource.models import GROUP, PLURAL, VERSION, JobRef, JobSpec, parse_time
from hark_operator.runtime import Runtime, status_of
from hark_operator.settings import load_operator_settings

FINALIZER = "hark.dev/operator"

if TYPE_CHECKING:
    from typing import TypeAlias

    Logger: TypeAlias = logging.Logger | logging.LoggerAdapter[Any]


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """Where kopf keeps its state and what it posts; the same for every replica."""
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffbase")
    settings.persistence.finalizer = FINALIZER
    # Job Events come from the reporter; kopf's own go out for warnings and errors only.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod, the ServiceAccount; elsewhere the kubeconfig that KUBECONFIG names now.

    kopf's default login goes through the Kubernetes client library, which fixes
    the kubeconfig path when it is first imported; reading the environment at
    login keeps an operator started in-process (`hark run`, tests) on the
    cluster it was pointed at.
    """
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, logger: Logger, **_: Any) -> None:
    configure_kopf(settings)
    config = load_operator_settings()
    settings.peering.lifetime = config.peering_lifetime_seconds
    identity = memo.get("identity") or "hark-operator"
    # The scaler's leadership check must use the priority kopf peers with.
    runtime = Runtime(config, KubeClient(), identity=identity, priority=settings.peering.priority)
    await runtime.start()
    memo.runtime = runtime
    logger.info(
        "hark operator %s: processor %s, scaler %s, up to %d items in flight",
        identity,
        config.processor,
        config.scaler,
        config.max_in_flight,
    )


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.stop()
        runtime.kube.close()


@kopf.on.probe(id="jobs")
def jobs_probe(memo: Any, **_: Any) -> int:
    runtime: Runtime | None = memo.get("runtime")
    return len(runtime.jobs) if runtime is not None else 0


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def spec_changed(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    memo.runtime.wake(f"{namespace}/{name}")


@kopf.daemon(GROUP, VERSION, PLURAL, id="job", cancellation_timeout=30.0)
async def job_daemon(
    name: str,
    namespace: str | None,
    uid: str,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: Any,
    logger: Logger,
    retry: int,
    **_: Any,
) -> None:
    runtime: Runtime = memo.runtime
    ref = JobRef(namespace=namespace or "default", name=name, uid=uid)

    def spec() -> JobSpec:
        return JobSpec.model_validate(dict(body.get("spec") or {}))

    meta = body.get("metadata") or {}

    async def until_stopped() -> None:
        await stopped.wait()

    stop = asyncio.create_task(until_stopped())
    run = asyncio.create_task(
        runtime.run_job(
            ref,
            spec,
            created=parse_time(meta.get("creationTimestamp")),
            generation=lambda: (body.get("metadata") or {}).get("generation"),
            status=status_of(body.get("status")),
            resource_version=meta.get("resourceVersion"),
        )
    )
    try:
        await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (run, stop):
            task.cancel()
        results = await asyncio.gather(run, stop, return_exceptions=True)
    error = results[0]
    if stopped:
        logger.info("stopped (%s); items in flight were abandoned", stopped.reason)
    elif isinstance(error, Exception):
        try:
            mode = spec().mode
        except Exception:  # a spec the models refuse: the runner reports it; stop
            mode = "Batch"
        delay = runner_retry(mode, retry)
        await runtime.report_runner_failure(ref, error, retry + 1, delay)
        if delay is None:  # a Batch job's runner failing again and again: a bug, not weather
            raise kopf.PermanentError(f"job runner failed {retry + 1} times: {error}") from error
        raise kopf.TemporaryError(
            f"job runner failed ({retry + 1} times): {error}; starting it again in {delay:.0f}s",
            delay=delay,
        ) from error
    else:
        logger.info("job %s is done", ref.key)
