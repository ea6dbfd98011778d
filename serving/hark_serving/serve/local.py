"""Running the `hark` application outside Kubernetes: what `hark serve` does.

Starts a local Ray instance (or joins the cluster at `ray_address`), starts
Serve's HTTP proxy on `host:port`, deploys the application and keeps it up
until `stop` is set; then deletes it and shuts down what it started.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import ray
from ray import serve

from hark_serving.serve.app import APP_NAME, ROUTE_PREFIX, build_app
from hark_serving.serve.priority import local_worker_niceness
from hark_serving.serve.proxy_guard import IMPORT_PATH as PROXY_IMPORT_PATH
from hark_serving.serve.proxy_guard import PROXY_CALLBACK_ENV
from hark_serving.serve.settings import DEPLOYMENT_NAMES, ServeSettings

log = logging.getLogger(__name__)


def local_cpus(settings: ServeSettings) -> int:
    """Logical CPUs for a local Ray: the cores, or what the minimum replicas ask for if more.

    Ray's CPUs are scheduling units; on a two-core laptop the default
    deployment sizes would otherwise leave a replica waiting for a CPU that
    never comes.
    """
    if settings.ray_num_cpus:
        return settings.ray_num_cpus
    wanted: float = sum(
        max(1, getattr(settings, f"{name}_min_replicas")) * getattr(settings, f"{name}_num_cpus")
        for name in DEPLOYMENT_NAMES
    )
    return max(os.cpu_count() or 1, math.ceil(wanted))


def run_until(
    stop: threading.Event,
    settings: ServeSettings,
    args: Mapping[str, Any],
    on_ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Deploy the app built from `args` and serve until `stop` is set."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Admission control in Serve's HTTP proxy, which buffers request bodies in memory.
    os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_IMPORT_PATH)
    local = settings.ray_address is None
    if local:
        local_worker_niceness()
        ray.init(
            address="local",
            num_cpus=local_cpus(settings),
            include_dashboard=False,
            namespace="hark",
            _metrics_export_port=settings.metrics_export_port,
        )
    else:
        ray.init(address=settings.ray_address, namespace="hark")
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_app(args), name=APP_NAME, route_prefix=ROUTE_PREFIX)
        nodes = ray.nodes()  # type: ignore[no-untyped-call]
        ports = sorted({n.get("MetricsExportPort") for n in nodes if n.get("Alive")})
        log.info("Ray exports metrics (the Serve app's included) on port %s", ports)
        on_ready(f"http://{settings.host}:{settings.port}/")
        while not stop.wait(0.5):
            pass
        log.info("stopping")
    finally:
        if local:
            serve.shutdown()  # type: ignore[no-untyped-call]
        else:
            serve.delete(APP_NAME)
        ray.shutdown()
