"""The Ingress deployment: the HTTP edge (FastAPI, CPU), forwarding work to Workers.

Routes live in `api.py`; this class is the `Backend` they call. A Worker
replica that dies mid-request (a node lost, a replica killed) is retried on
another: uploads and items are both safe to run twice (items are idempotent
by ETag, and every output object is written whole).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve import metrics as serve_metrics
from ray.serve.handle import DeploymentHandle

from hark_serving.retry import RetryPolicy
from hark_serving.runs.itemspec import ItemRequest
from hark_serving.serve.api import build_api
from hark_serving.serve.context import configure_replica_logging
from hark_serving.serve.handles import call_replica
from hark_serving.serve.messages import (
    ELSEWHERE,
    ItemReply,
    ModelStatus,
    TranscribeReply,
    UploadJob,
)
from hark_serving.serve.metrics import IngressMetrics
from hark_serving.serve.settings import load_serve_settings

log = logging.getLogger(__name__)

# One retry: enough to reach a replacement replica, while an input that crashes its
# Worker (a decoder bug) takes down at most two.
WORKER_RETRY = RetryPolicy(base=1.0, cap=5.0, attempts=2)


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    def __init__(
        self,
        args: dict[str, Any],
        worker: DeploymentHandle[Any],
        transcriber: DeploymentHandle[Any],
    ) -> None:
        configure_replica_logging()
        self.settings = load_serve_settings(args)
        self.worker = worker
        self.transcriber = transcriber
        self.metrics = IngressMetrics(serve_metrics)  # exported on Ray's metrics port
        self.node_id = ray.get_runtime_context().get_node_id()

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Called by Serve after `__init__`, once the handles exist."""
        return build_api(self, self.settings, self.metrics)

    async def _call_worker(self, method: str, *args: Any) -> Any:
        async def call() -> Any:
            return await getattr(self.worker, method).remote(*args)

        return await call_replica(
            call,
            WORKER_RETRY,
            describe=f"Worker.{method}",
            gone="the Worker handling the request went away; try again",
        )

    async def transcribe(self, job: UploadJob) -> TranscribeReply:
        # By path first: a Worker on this node decodes the spool file where it lies.
        job = replace(job, node=self.node_id)
        reply: TranscribeReply = await self._call_worker("transcribe", job)
        if reply.failure is not None and reply.failure.code == ELSEWHERE and job.path:
            # The Worker runs on another node: the bytes must travel (bounded by admission).
            data = await asyncio.to_thread(Path(job.path).read_bytes)
            reply = await self._call_worker("transcribe", replace(job, path=None, data=data))
        return reply

    async def process_item(self, req: ItemRequest, rid: str) -> ItemReply:
        reply: ItemReply = await self._call_worker("process_item", req, rid)
        return reply

    async def model_status(self) -> ModelStatus:
        # Asking a Transcriber scaled to zero would scale it up again: a readiness
        # probe must not keep the pool awake, so look at Serve's status first.
        if await asyncio.to_thread(self._transcribers_running) == 0:
            return ModelStatus(ready=False)
        status: ModelStatus = await self.transcriber.status.remote()
        return status

    @staticmethod
    def _transcribers_running() -> int:
        app = serve.get_replica_context().replica_id.deployment_id.app_name
        try:
            deployment = serve.status().applications[app].deployments["Transcriber"]
        except (KeyError, RuntimeError) as exc:  # no status yet: ask the replicas instead
            log.debug("no Serve status for the Transcriber (%s)", exc)
            return 1
        return sum(n for state, n in deployment.replica_states.items() if state == "RUNNING")
