"""The console's jobs view: TranscriptionJobs as plain rows, read with get/list only.

`job_row` turns one custom object into what the page shows (pure); `JobLister`
lists the objects of the configured namespaces with the Kubernetes client and
the pod's own ServiceAccount (or `KUBECONFIG` outside a cluster). It only ever
reads: the chart grants the Serve pods get/list/watch on `transcriptionjobs`
and nothing else, so a bug here cannot change a job.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from hark_serving.serve.errors import ServeError

log = logging.getLogger(__name__)

GROUP = "hark.dev"
VERSION = "v1alpha1"
PLURAL = "transcriptionjobs"
ALL_NAMESPACES = "*"
COUNT_KEYS = ("total", "succeeded", "failed", "skipped", "inFlight", "pending")
# The job's QA report sits beside its summary (`<output prefix>_hark/<ns>.<job>/`).
REPORT_NAME = "report.html"


class JobsForbidden(ServeError):
    code = "access_denied"


class JobsUnavailable(ServeError):
    code = "unavailable"
    transient = True


def parse_namespaces(value: str) -> tuple[str, ...]:
    """`a, b` → ("a", "b"); `*` anywhere means every namespace; empty: the view is off."""
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    return (ALL_NAMESPACES,) if ALL_NAMESPACES in names else names


def report_uri(summary_uri: str | None) -> str | None:
    if not summary_uri or "/" not in summary_uri:
        return None
    return summary_uri.rsplit("/", 1)[0] + "/" + REPORT_NAME


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def job_row(obj: dict[str, Any]) -> dict[str, Any]:
    """One TranscriptionJob → the fields the jobs view shows; missing status reads as empty."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    counts = status.get("counts") or {}
    failures = [
        {
            "key": str(f.get("key", "")),
            "reason": str(f.get("reason", "")),
            "message": str(f.get("message", "")),
            "time": f.get("time"),
        }
        for f in status.get("recentFailures") or []
        if isinstance(f, dict)
    ]
    ready = next(
        (c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type")),
        None,
    )
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "created": meta.get("creationTimestamp"),
        "mode": spec.get("mode"),
        "input": (spec.get("input") or {}).get("uri"),
        "output": (spec.get("output") or {}).get("uri"),
        "phase": status.get("phase") or "Pending",
        "progress": status.get("progress"),
        "counts": {k: _int(counts.get(k)) for k in COUNT_KEYS},
        "audio_seconds": status.get("audioSeconds") or 0,
        "started": status.get("startTime"),
        "completed": status.get("completionTime"),
        "summary_uri": status.get("summaryUri"),
        "report_uri": report_uri(status.get("summaryUri")),
        "condition": {"type": ready.get("type"), "message": ready.get("message", "")}
        if ready
        else None,
        "recent_failures": failures,
    }


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first (RFC 3339 timestamps sort as text), then by namespace and name."""
    rows = sorted(rows, key=lambda r: (r["namespace"], r["name"]))
    return sorted(rows, key=lambda r: r["created"] or "", reverse=True)


class JobLister:
    """Lists TranscriptionJobs of `namespaces` through the Kubernetes API (read-only)."""

    def __init__(self, namespaces: tuple[str, ...]) -> None:
        self.namespaces = namespaces
        self._api: Any = None
        self._lock = threading.Lock()

    def _custom_objects(self) -> Any:
        with self._lock:
            if self._api is None:
                # Imported here: only an Ingress with the jobs view on needs the client.
                from kubernetes import client, config

                try:
                    config.load_incluster_config()  # type: ignore[no-untyped-call]
                except config.ConfigException:
                    config.load_kube_config()  # type: ignore[no-untyped-call]
                self._api = client.CustomObjectsApi()
            return self._api

    def _list(self) -> list[dict[str, Any]]:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException
        from urllib3.exceptions import HTTPError

        try:
            api = self._custom_objects()
        except ConfigException as exc:
            raise JobsUnavailable(
                f"no Kubernetes credentials for the jobs view ({exc}); run in a pod with a "
                "ServiceAccount token, or set KUBECONFIG"
            ) from None
        objects: list[dict[str, Any]] = []
        for ns in self.namespaces:
            try:
                if ns == ALL_NAMESPACES:
                    doc = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
                else:
                    doc = api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
            except ApiException as exc:
                where = "the cluster" if ns == ALL_NAMESPACES else f"namespace {ns}"
                if exc.status in (401, 403):
                    raise JobsForbidden(
                        f"the Serve pods may not list transcriptionjobs in {where}; grant "
                        "get/list on them (chart value console.jobs) or change "
                        "HARK_CONSOLE_JOBS_NAMESPACES"
                    ) from None
                if exc.status == 404:
                    raise JobsUnavailable(
                        "the TranscriptionJob CRD is not installed; install the chart's CRDs"
                    ) from None
                raise JobsUnavailable(
                    f"the Kubernetes API answered {exc.status} listing {where}"
                ) from None
            except (OSError, HTTPError) as exc:
                raise JobsUnavailable(f"the Kubernetes API is unreachable ({exc})") from None
            objects.extend(doc.get("items") or [])
        return objects

    async def rows(self) -> list[dict[str, Any]]:
        objects = await asyncio.to_thread(self._list)
        return sort_rows([job_row(o) for o in objects])
