"""The Kubernetes API calls the operator makes, as async methods.

The official client is synchronous; calls run on a small private thread pool
so that a slow API server never blocks the event loop (or the kopf reactor
that shares it). Status writes are merge patches of the `status` subresource,
optionally guarded by a resourceVersion (409 Conflict when the object moved).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import partial
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hark_operator.resource.models import GROUP, PLURAL, VERSION, ObjectRef

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
COMPONENT = "hark-operator"

__all__ = ["ApiException", "KubeClient", "ObjectRef", "is_conflict", "is_not_found"]


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In a pod: the ServiceAccount; elsewhere: KUBECONFIG or ~/.kube/config."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    # The client library reads KUBECONFIG once, when it is imported; read it now, so
    # the process's environment at start-up is what counts.
    kubeconfig = kubeconfig or os.environ.get("KUBECONFIG") or None
    api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return api


class KubeClient:
    def __init__(self, api: client.ApiClient | None = None, *, threads: int = 4) -> None:
        self.api = api or load_api_client()
        self.objects = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hark-kube")

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.api.close()  # type: ignore[no-untyped-call]

    # -- TranscriptionJobs -----------------------------------------------------

    async def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self._call(
            self.objects.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
        return obj

    async def patch_job_status(
        self,
        namespace: str,
        name: str,
        status: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        obj: dict[str, Any] = await self._call(
            self.objects.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            _content_type=MERGE_PATCH,
        )
        return obj

    async def delete_job(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Delete the job object (its outputs stay); only that incarnation when `uid` is set."""
        body = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid) if uid else None,
            propagation_policy="Background",
        )
        try:
            await self._call(
                self.objects.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body=body,
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or a newer object by that name
                raise

    # -- Events ----------------------------------------------------------------

    async def post_event(self, ref: ObjectRef, type_: str, reason: str, message: str) -> None:
        now = datetime.now(timezone.utc)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{ref.name}."),
            involved_object=client.V1ObjectReference(
                api_version=ref.api_version,
                kind=ref.kind,
                name=ref.name,
                namespace=ref.namespace,
                uid=ref.uid,
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            source=client.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        await self._call(self.core.create_namespaced_event, ref.namespace, event)

    # -- Secrets (the operator's own namespace only) ---------------------------

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        secret = await self._call(self.core.read_namespaced_secret, name, namespace)
        data = secret.data or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    # -- any custom object (RayService, peering) -------------------------------

    async def get_object(
        self, group: str, version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any]:
        if namespace is None:
            obj: dict[str, Any] = await self._call(
                self.objects.get_cluster_custom_object, group, version, plural, name
            )
        else:
            obj = await self._call(
                self.objects.get_namespaced_custom_object, group, version, namespace, plural, name
            )
        return obj

    async def patch_object(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
    ) -> dict[str, Any]:
        obj: dict[str, Any] = await self._call(
            self.objects.patch_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            name,
            patch,
            _content_type=MERGE_PATCH,
        )
        return obj

    async def create_object(
        self, group: str, version: str, plural: str, namespace: str | None, body: dict[str, Any]
    ) -> None:
        """Create, or leave alone what already exists."""
        try:
            if namespace is None:
                await self._call(
                    self.objects.create_cluster_custom_object, group, version, plural, body
                )
            else:
                await self._call(
                    self.objects.create_namespaced_custom_object,
                    group,
                    version,
                    namespace,
                    plural,
                    body,
                )
        except ApiException as exc:
            if exc.status != 409:
                raise
