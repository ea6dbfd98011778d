"""A Ray cluster that grows and shrinks: Ray's own autoscaler with its fake multi-node provider.

`ray start --head --autoscaling-config=...` with `RAY_FAKE_CLUSTER=1` runs the real
autoscaler (the monitor process) against `FakeMultiNodeProvider`, which launches
each worker node as a set of local processes (raylet, agents, workers) and kills
them when the autoscaler terminates the node. Worker nodes of the `gpu` type
declare `GPU: 1`; nothing uses a GPU there (the model runs on CPU), but Ray
schedules, counts and scales them exactly as GPU machines.

This is what `ray.cluster_utils.AutoscalingCluster` does, with three changes the
shared test machine needs: the provider's base config is written here (the wheel
does not ship its `example.yaml`), every port is a free one (two clusters, or a
cluster and a plain `ray.init`, may run side by side) and the cluster is stopped
through its own process group instead of `ray stop --force`, which kills every
Ray process on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.env.services import Server, free_port, http_ok, wait_ready

GPU_NODE_TYPE = "ray.worker.gpu"
HEAD_NODE_TYPE = "ray.head.default"
MB = 2**20


@dataclass
class NodeShape:
    """The autoscaler's view of the cluster: a CPU head and one GPU worker type."""

    head_cpus: float = 2
    head_object_store_mb: int = 150
    gpu_node_cpus: float = 1
    gpu_node_object_store_mb: int = 80
    max_gpu_nodes: int = 2
    idle_timeout_s: float = 6.0

    def config(self, gcs_address: str) -> dict[str, Any]:
        """The cluster config the monitor reads (same keys as a cloud cluster's YAML)."""
        return {
            "cluster_name": "hark-elastic",
            "max_workers": self.max_gpu_nodes,
            "provider": {
                "type": "fake_multinode",
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
                # Worker nodes join this head, not the default port 6379.
                "gcs_address": gcs_address,
            },
            "available_node_types": {
                HEAD_NODE_TYPE: {
                    "resources": {"CPU": self.head_cpus},
                    "node_config": {},
                    "max_workers": 0,
                },
                GPU_NODE_TYPE: {
                    "resources": {
                        "CPU": self.gpu_node_cpus,
                        "GPU": 1,
                        "object_store_memory": self.gpu_node_object_store_mb * MB,
                    },
                    "node_config": {},
                    "min_workers": 0,
                    "max_workers": self.max_gpu_nodes,
                },
            },
            "head_node_type": HEAD_NODE_TYPE,
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": self.idle_timeout_s / 60,
            "auth": {},
            "docker": {},
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
        }


@dataclass
class AutoscalingRay:
    """A running autoscaling cluster; `stop()` ends every process it started."""

    shape: NodeShape
    dir: Path
    server: Server
    gcs_address: str
    dashboard_url: str
    serve_port: int
    _stopped: bool = field(default=False, repr=False)

    def nodes(self) -> list[dict[str, Any]]:
        """Alive nodes as the dashboard's state API lists them."""
        url = f"{self.dashboard_url}/api/v0/nodes?limit=1000&detail=true"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        rows: list[dict[str, Any]] = body["data"]["result"]["result"]
        return [n for n in rows if n.get("state") == "ALIVE"]

    def gpu_nodes(self) -> int:
        """Alive nodes that offer a GPU: the ones the autoscaler launched for replicas."""
        return sum(1 for n in self.nodes() if (n.get("resources_total") or {}).get("GPU", 0) > 0)

    def processes(self) -> list[int]:
        """Pids of processes still in the cluster's process group."""
        pgid = self.server.pid
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
        return pids

    def log_tail(self, name: str = "monitor.log", lines: int = 40) -> str:
        """The tail of a log of the current session (the autoscaler's by default)."""
        logs = sorted(self.dir.glob(f"session_*/logs/{name}"))
        if not logs:
            return f"(no {name})"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.server.stop(timeout=30)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def ray_bin() -> str:
    found = Path(sys.executable).with_name("ray")
    if found.exists():
        return str(found)
    path = shutil.which("ray")
    if path is None:
        raise RuntimeError("the `ray` command is missing: pip install 'ray[serve]' in this venv")
    return path


def start_autoscaling_ray(
    shape: NodeShape | None = None, env: Mapping[str, str] | None = None, timeout: float = 120
) -> AutoscalingRay:
    """Start the head (with its dashboard and autoscaler) and wait until both answer.

    `env` reaches every Ray process of the cluster, worker nodes included (they
    are started by the autoscaler, a child of the head): Serve replicas see it.
    """
    shape = shape or NodeShape()
    # Ray puts unix sockets under the temp dir: keep the path short.
    root = Path(tempfile.mkdtemp(prefix="hark-ray-", dir="/tmp"))
    port, dashboard_port = free_port(), free_port()
    gcs_address = f"127.0.0.1:{port}"
    config = root / "autoscaling.json"
    config.write_text(json.dumps(shape.config(gcs_address)))
    argv = [
        ray_bin(), "start", "--head", "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--temp-dir={root}",
        f"--autoscaling-config={config}",
        f"--num-cpus={shape.head_cpus:g}",
        "--num-gpus=0",
        f"--object-store-memory={shape.head_object_store_mb * MB}",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--ray-client-server-port={free_port()}",
        "--disable-usage-stats",
    ]  # fmt: skip
    full_env = dict(os.environ)
    full_env.pop("RAY_ADDRESS", None)
    full_env.update(
        {
            "RAY_FAKE_CLUSTER": "1",
            "AUTOSCALER_UPDATE_INTERVAL_S": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
            # A loopback-only throwaway cluster: its dashboard and Serve REST API
            # answer without Ray's token, as an in-cluster head does behind its Service.
            "RAY_AUTH_MODE": "disabled",
        }
    )
    full_env.update(env or {})
    server = Server("ray-head", argv, root / "ray-start.log", env=full_env)
    server.start()
    cluster = AutoscalingRay(
        shape=shape,
        dir=root,
        server=server,
        gcs_address=gcs_address,
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        serve_port=free_port(),
    )
    try:
        wait_ready(
            server,
            lambda: http_ok(f"{cluster.dashboard_url}/api/version"),
            timeout,
            "the dashboard answers",
        )
        deadline = time.monotonic() + timeout
        while not list(root.glob("session_*/logs/monitor.log")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the autoscaler did not start; {server.log_tail()}")
            time.sleep(0.2)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def serve_applications(cluster: AutoscalingRay) -> dict[str, Any]:
    """`GET /api/serve/applications/` of the cluster's dashboard."""
    url = f"{cluster.dashboard_url}/api/serve/applications/"
    with urllib.request.urlopen(url, timeout=30) as resp:
        body: dict[str, Any] = json.load(resp)
    return body


def deploy_serve_config(cluster: AutoscalingRay, config: Mapping[str, Any]) -> None:
    """`PUT` a declarative Serve config, as `serve deploy` (and a RayService) does."""
    request = urllib.request.Request(
        f"{cluster.dashboard_url}/api/serve/applications/",
        data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        if resp.status >= 300:
            raise RuntimeError(f"the dashboard refused the Serve config: {resp.status}")


def wait_serve_running(cluster: AutoscalingRay, app: str, timeout: float = 300) -> dict[str, Any]:
    """Wait until `app` is RUNNING; fail at once with Serve's message if it failed."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            status = (serve_applications(cluster).get("applications") or {}).get(app) or {}
        except OSError:
            status = {}
        if status.get("status") == "RUNNING":
            return status
        if status.get("status") == "DEPLOY_FAILED":
            raise RuntimeError(f"Serve app {app} failed: {status.get('message')}")
        time.sleep(0.5)
    raise TimeoutError(f"Serve app {app} not RUNNING after {timeout:.0f}s: {status}")


def transcriber_state(cluster: AutoscalingRay, app: str = "hark") -> tuple[int, int]:
    """RUNNING Transcriber replicas, and the floor (`min_replicas`) of the deployed config."""
    status = (serve_applications(cluster).get("applications") or {}).get(app) or {}
    deployment = (status.get("deployments") or {}).get("Transcriber") or {}
    running = sum(1 for r in deployment.get("replicas") or [] if r.get("state") == "RUNNING")
    config = status.get("deployed_app_config") or {}
    floor = 0
    for d in config.get("deployments") or []:
        if d.get("name") == "Transcriber":
            floor = int((d.get("autoscaling_config") or {}).get("min_replicas") or 0)
    return running, floor


@dataclass
class Sample:
    t: float
    gpu_nodes: int
    replicas: int
    floor: int


class Sampler:
    """Samples GPU nodes and running Transcriber replicas on a thread until stopped."""

    def __init__(self, cluster: AutoscalingRay, interval: float = 0.5) -> None:
        import threading

        self.cluster = cluster
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="elastic-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                nodes = self.cluster.gpu_nodes()
                replicas, floor = transcriber_state(self.cluster)
            except (OSError, KeyError, ValueError):
                pass  # the dashboard was busy; skip this sample
            else:
                self.samples.append(Sample(time.monotonic(), nodes, replicas, floor))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def since(self, t0: float) -> list[Sample]:
        return [s for s in self.samples if s.t >= t0]

    def wait(self, check: Any, timeout: float, what: str) -> Sample:
        """Wait for a sample that passes `check`, newer than the call."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            for s in self.since(start):
                if check(s):
                    return s
            time.sleep(self.interval / 2)
        last = self.samples[-1] if self.samples else None
        raise TimeoutError(f"no sample with {what} after {timeout:.0f}s (last: {last})")
