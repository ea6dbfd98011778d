"""What one operator process shares: built from settings once, used by every job.

The dispatcher (and its processor), the object stores, the running jobs and
the scaling loop. The kopf handlers only translate between kopf and this; the
same pieces run without kopf in tests.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from hark_operator.clients.kube import KubeClient, is_conflict
from hark_operator.clients.serve import FileToken, SecretToken, ServeProcessor
from hark_operator.clients.storage import ErrorRecorder, Stores
from hark_operator.clients.webhook import AlertWebhook
from hark_operator.jobs.dispatcher import Dispatcher
from hark_operator.jobs.env import JobEnv
from hark_operator.jobs.lifecycle import JobRunner
from hark_operator.jobs.reporter import Conflict, Reporter, runner_failure_status
from hark_operator.jobs.work import Processor
from hark_operator.notifications import DropFolder, NotificationReceiver
from hark_operator.peering import PeeringLeader
from hark_operator.resource.models import API_VERSION, KIND, JobRef, JobSpec, JobStatus, ObjectRef
from hark_operator.scaling.backends import InProcessScaler, NoScaler, Scaler
from hark_operator.scaling.kuberay import KubeRayScaler
from hark_operator.scaling.loop import ScaleLoop
from hark_operator.scaling.policy import Decision
from hark_operator.scaling.serve_api import ServeApiScaler
from hark_operator.settings import OperatorSettings
from hark_serving.errors import ConfigError
from hark_serving.retry import RetryPolicy

log = logging.getLogger(__name__)


class KubeStatus:
    """A job's status subresource as a `reporter.StatusWriter`."""

    def __init__(self, kube: KubeClient, ref: JobRef) -> None:
        self.kube, self.ref = kube, ref

    async def read(self) -> tuple[JobStatus, str | None]:
        obj = await self.kube.get_job(self.ref.namespace, self.ref.name)
        return status_of(obj.get("status")), obj["metadata"].get("resourceVersion")

    async def write(self, status: JobStatus, resource_version: str | None) -> str | None:
        try:
            obj = await self.kube.patch_job_status(
                self.ref.namespace, self.ref.name, status.to_patch(), resource_version
            )
        except Exception as exc:
            if is_conflict(exc):
                raise Conflict(str(exc)) from exc
            raise
        rv: str | None = obj["metadata"].get("resourceVersion")
        return rv


class KubeEvents:
    """Events on one object, as a `reporter.EventSink`."""

    def __init__(self, kube: KubeClient, ref: ObjectRef) -> None:
        self.kube, self.ref = kube, ref

    async def event(self, type_: str, reason: str, message: str) -> None:
        await self.kube.post_event(self.ref, type_, reason, message)


def status_of(raw: Any) -> JobStatus:
    """A stored status as a model; a report is never worth failing over, so junk reads as empty."""
    try:
        return JobStatus.model_validate(raw or {})
    except ValueError:
        log.warning("unreadable status %r; starting from an empty one", raw)
        return JobStatus()


def build_processor(
    settings: OperatorSettings, identity: str, stores: Stores, kube: KubeClient | None = None
) -> Processor:
    if settings.processor == "inprocess":
        from hark_operator.clients.inprocess import InProcessProcessor
        from hark_serving.config import load_settings

        return InProcessProcessor(
            load_settings(), workers=settings.max_in_flight, profiles=stores.profiles
        )
    token_source: SecretToken | FileToken | None = None
    if settings.items_token_secret and kube is not None:
        token_source = SecretToken(
            kube.read_secret, settings.operator_namespace, settings.items_token_secret
        )
    elif settings.items_token_file is not None:
        token_source = FileToken(settings.items_token_file)
    return ServeProcessor(
        settings.serve_url,
        token=settings.items_token_value(),
        timeout=settings.item_timeout_seconds,
        identity=identity,
        token_source=token_source,
    )


def build_scaler(settings: OperatorSettings, kube: KubeClient, processor: Processor) -> Scaler:
    if settings.scaler == "kuberay":
        return KubeRayScaler(
            kube,
            settings.rayservice_namespace or settings.operator_namespace,
            settings.rayservice_name,
            app=settings.serve_app_name,
            deployment=settings.transcriber_deployment,
            max_replicas=settings.scale_max_replicas,
        )
    if settings.scaler == "serve-api":
        assert settings.ray_dashboard_url is not None
        return ServeApiScaler(
            settings.ray_dashboard_url,
            app=settings.serve_app_name,
            deployment=settings.transcriber_deployment,
            max_replicas=settings.scale_max_replicas,
        )
    if settings.scaler == "inprocess":
        set_workers = getattr(processor, "set_workers", None)
        if set_workers is None:
            raise ConfigError("HARK_SCALER=inprocess needs HARK_PROCESSOR=inprocess")
        return InProcessScaler(set_workers, settings.max_in_flight)
    return NoScaler()


class Runtime:
    def __init__(
        self,
        settings: OperatorSettings,
        kube: KubeClient,
        *,
        identity: str,
        priority: int | None = None,
        processor: Processor | None = None,
        scaler: Scaler | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.identity = identity
        self.priority = priority if priority is not None else settings.priority
        if self.priority is None:
            self.priority = random.SystemRandom().randint(1, 1_000_000_000)
        self.stores = Stores(
            settings.profiles(),
            secrets=kube.read_secret,
            namespace=settings.operator_namespace,
            refresh_seconds=settings.credentials_refresh_seconds,
        )
        self.processor = processor or build_processor(settings, identity, self.stores, kube)
        self.dispatcher = Dispatcher(
            self.processor,
            max_in_flight=settings.max_in_flight,
            item_timeout=settings.item_timeout_seconds,
            stall_check=settings.stall_check_seconds,
            backoff=RetryPolicy(
                base=settings.retry_base_seconds, cap=settings.retry_max_seconds, attempts=None
            ),
            recorder=ErrorRecorder(self.stores),
        )
        self.webhook = (
            AlertWebhook(settings.webhook_url, settings.webhook_secret_value())
            if settings.webhook_url
            else None
        )
        self.env = JobEnv(
            self.dispatcher,
            self.stores,
            status_interval=settings.status_interval_seconds,
            retry_cap=settings.retry_max_seconds,
            report_interval=settings.report_interval_seconds,
            webhook=self.webhook,
        )
        self.jobs: dict[str, JobRunner] = {}
        self.scaler = scaler or build_scaler(settings, kube, self.processor)
        self.leader = PeeringLeader(
            kube,
            settings.peering_name,
            identity,
            self.priority,
            namespaces=settings.namespaces,
            standalone=settings.standalone,
        )
        loop_args: dict[str, Any] = {"clock": clock} if clock is not None else {}
        self.scale_loop = ScaleLoop(
            settings.scaling_policy(),
            self.scaler,
            self.backlog,
            interval=settings.scale_interval_seconds,
            announce=self.announce,
            active=self.leader.is_active,
            **loop_args,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.notifications = NotificationReceiver(
            self.drop_folders, self.notify, token=settings.notify_token
        )

    async def start(self) -> None:
        await self.leader.ensure_objects()
        self.dispatcher.start()
        self._tasks.append(asyncio.create_task(self.scale_loop.run(), name="hark-scaler"))
        if self.settings.notify_port:
            await self.notifications.start(self.settings.notify_port)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.notifications.stop()
        await self.dispatcher.close()
        await self.processor.aclose()
        # Only a scaler with an HTTP client of its own (serve-api) has one to close.
        close_scaler = getattr(self.scaler, "aclose", None)
        if close_scaler is not None:
            await close_scaler()
        if self.webhook is not None:
            await self.webhook.aclose()
        self.stores.close()

    def backlog(self) -> float:
        return float(sum(job.backlog() for job in self.jobs.values()))

    def drop_folders(self) -> dict[str, DropFolder]:
        """What each running Watch job watches, for the notification receiver."""
        folders = {}
        for key, job in list(self.jobs.items()):
            try:
                spec = job.spec()
            except ValueError:  # an invalid spec: its runner reports it
                continue
            if spec.mode == "Watch":
                folders[key] = DropFolder(spec.input_uri.bucket, spec.input_uri.key)
        return folders

    def wake(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is not None:
            job.wake()

    def notify(self, key: str, objects: list[str]) -> None:
        """Keys a bucket notification named in the drop folder of job `key`."""
        job = self.jobs.get(key)
        if job is not None:
            job.notify(objects)

    async def announce(self, decision: Decision, backlog: float) -> None:
        """A floor change as an Event: on the RayService, or else on each busy job."""
        message = (
            f"GPU replica floor {decision.previous} → {decision.floor} ({self.scaler.name}): "
            f"backlog {backlog:.0f} items, {self.settings.items_per_replica:g} per replica"
        )
        target = self.scaler.target()
        targets = (
            [target]
            if target is not None
            else [
                ObjectRef(API_VERSION, KIND, j.ref.namespace, j.ref.name, j.ref.uid)
                for j in self.jobs.values()
                if j.backlog() > 0 or decision.floor < decision.previous
            ]
        )
        for ref in targets:
            try:
                await self.kube.post_event(ref, "Normal", "ScaledGpuFloor", message)
            except Exception as exc:
                log.warning("scale event on %s/%s not posted: %s", ref.namespace, ref.name, exc)

    async def run_job(
        self,
        ref: JobRef,
        spec: Callable[[], JobSpec],
        *,
        created: datetime | None,
        generation: Callable[[], int | None],
        status: JobStatus,
        resource_version: str | None,
    ) -> JobStatus:
        """Run one job until it finishes (and its TTL passed) or the task is cancelled."""
        job_ref = ObjectRef(API_VERSION, KIND, ref.namespace, ref.name, ref.uid)
        reporter = Reporter(
            KubeStatus(self.kube, ref), KubeEvents(self.kube, job_ref), status, resource_version
        )

        async def delete() -> None:
            await self.kube.delete_job(ref.namespace, ref.name, ref.uid)

        runner = JobRunner(
            ref,
            spec,
            reporter,
            self.env,
            created=created,
            generation=generation,
            status=status,
            delete=delete,
        )
        self.jobs[ref.key] = runner
        try:
            return await runner.run()
        finally:
            if self.jobs.get(ref.key) is runner:
                del self.jobs[ref.key]

    async def report_runner_failure(
        self, ref: JobRef, error: BaseException, failures: int, retry_in: float | None
    ) -> None:
        """Say in the job's status that its runner failed (see `runner_failure_status`).

        Best effort: the failure is also a kopf Event, and a status that cannot be
        written now is written by the next start.
        """
        status = KubeStatus(self.kube, ref)
        text = f"{type(error).__name__}: {error}"[:1000]
        for _ in range(3):  # a conflict with another writer: read again
            try:
                previous, version = await status.read()
                obj_generation = previous.observed_generation
                new = runner_failure_status(
                    previous, text, failures, retry_in, datetime.now(timezone.utc), obj_generation
                )
                await status.write(new, version)
                return
            except Conflict:
                continue
            except Exception as exc:
                log.warning("%s: could not report the runner's failure: %s", ref.key, exc)
                return
