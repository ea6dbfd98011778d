"""Small helpers for tests that talk to the real API server.

``kubernetes`` is imported inside the functions that need it, so importing this
module (and the pytest plugin that imports it) stays cheap.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tests.env.environment import Environment

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """``wait_for`` gave up; an AssertionError so pytest reports it as a test failure."""


def unique_name(hint: str = "t", max_len: int = 63) -> str:
    """A DNS-1123 label (namespace, bucket, object names) unique to this call.

    ``hint`` (e.g. the test's name) is kept readable; a random suffix makes it unique.
    """
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-") or "t"
    suffix = secrets.token_hex(4)
    return f"{base[: max_len - len(suffix) - 1].rstrip('-')}-{suffix}"


def apply_yaml(
    env: Environment,
    text_or_path: str | Path,
    namespace: str | None = None,
    *,
    server_side: bool = True,
    dry_run: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``kubectl apply`` a manifest (YAML text, or a file/directory path).

    Server-side apply by default: it works for objects too large for the client-side
    last-applied annotation (CRDs) and reports field ownership conflicts.
    ``dry_run=True`` adds ``--dry-run=server``: full validation and admission, no write.
    """
    args: list[str | Path] = ["apply"]
    if server_side:
        args += ["--server-side", "--force-conflicts", "--field-manager=hark-tests"]
    if dry_run:
        args.append("--dry-run=server")
    if namespace:
        args += ["--namespace", namespace]
    if isinstance(text_or_path, Path):
        return env.kubectl(*args, "-f", text_or_path, check=check)
    return env.kubectl(*args, "-f", "-", input=text_or_path, check=check)


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.2,
    message: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that value.

    Exceptions from the predicate count as "not yet" (the object may not exist yet);
    the last one is reported if the wait times out.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as exc:  # retried, then reported below
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {message}; last: {last!r}")
        time.sleep(interval)


def get_condition(obj: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    """The ``status.conditions`` entry of ``condition_type``, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == condition_type:
            return dict(cond)
    return None


def wait_for_condition(
    api: ApiClient,
    *,
    group: str,
    version: str,
    plural: str,
    name: str,
    condition_type: str,
    namespace: str | None = None,
    status: str = "True",
    timeout: float = 60.0,
    interval: float = 0.25,
) -> dict[str, Any]:
    """Wait until a custom object's condition has ``status``; return the object."""
    from kubernetes.client import CustomObjectsApi

    objects = CustomObjectsApi(api)

    def current() -> dict[str, Any] | None:
        if namespace is None:
            got = objects.get_cluster_custom_object(group, version, plural, name)
        else:
            got = objects.get_namespaced_custom_object(group, version, namespace, plural, name)
        obj = cast(dict[str, Any], got)
        cond = get_condition(obj, condition_type)
        return obj if cond is not None and cond.get("status") == status else None

    where = f"{namespace}/{name}" if namespace else name
    return wait_for(
        current,
        timeout=timeout,
        interval=interval,
        message=f"{plural}.{group} {where} condition {condition_type}={status}",
    )
