"""An autoscaling Ray cluster (Ray's autoscaler, fake multi-node provider) with the `hark`
Serve application on it: the Transcriber asks for one GPU per replica, so each replica
makes the autoscaler launch a GPU-typed worker node, and an idle node goes away."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hark_serving.serve.settings import load_serve_settings
from tests.env.environment import Environment
from tests.env.ray_autoscaling import AutoscalingRay, NodeShape, start_autoscaling_ray
from tests.integration.operator.conftest import hark_crds  # noqa: F401  (a fixture here too)
from tests.integration.serve.conftest import app_args

REPO = Path(__file__).resolve().parents[3]
# Short enough for a test; the rest of the Transcriber's autoscaling is the app's own.
SERVE_DOWNSCALE_DELAY_S = 2.0


@pytest.fixture(scope="module")
def elastic_ray() -> Iterator[AutoscalingRay]:
    """A CPU head plus up to two GPU worker nodes launched on demand (none at start)."""
    path = [str(REPO / "serving"), str(REPO / "operator"), str(REPO)]
    if os.environ.get("PYTHONPATH"):
        path.append(os.environ["PYTHONPATH"])
    cluster = start_autoscaling_ray(NodeShape(), env={"PYTHONPATH": os.pathsep.join(path)})
    try:
        yield cluster
    finally:
        cluster.stop()
    # Every raylet, agent and worker of the head and of the launched nodes is gone.
    assert cluster.processes() == []
    leaked = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _mentions(p, str(cluster.dir))]
    assert leaked == [], leaked


def _mentions(cmdline: Path, text: str) -> bool:
    try:
        return text.encode() in cmdline.read_bytes()
    except OSError:
        return False


def serve_profiles(test_env: Environment, directory: Path, *buckets: str) -> Path:
    """A storage profiles file for the Serve replicas, credentials in files beside it,
    reading and writing `buckets` (the app refuses a profile that names none)."""
    creds = directory / "creds"
    creds.mkdir(parents=True, exist_ok=True)
    (creds / "AWS_ACCESS_KEY_ID").write_text(test_env.s3_access_key)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(test_env.s3_secret_key)
    profiles = directory / "serve-profiles.yaml"
    profile = {
        "endpointUrl": test_env.s3_endpoint,
        "region": test_env.s3_region,
        "addressingStyle": "path",
        "writeBuckets": list(buckets),
        "credentialsDir": str(creds),
    }
    profiles.write_text(yaml.safe_dump({"default": "minio", "profiles": {"minio": profile}}))
    return profiles


def elastic_serve_config(
    cluster: AutoscalingRay, model_dir: Path, profiles: Path, max_replicas: int = 2
) -> dict[str, Any]:
    """The declarative Serve config of `hark` on the cluster, as a RayService holds it.

    The Transcriber takes one GPU per replica and starts from none; the Ingress
    and the Worker stay on the head (one replica each: a second would need a
    node, and the only nodes the autoscaler can add are GPU ones).
    """
    args = app_args(
        model_dir,
        storage_profiles=str(profiles),
        transcriber_num_gpus=1,
        transcriber_num_cpus=0.5,
        transcriber_min_replicas=0,
        transcriber_max_replicas=max_replicas,
        transcriber_downscale_delay_seconds=SERVE_DOWNSCALE_DELAY_S,
    )
    autoscaling = load_serve_settings(args).deployment_options("transcriber")["autoscaling_config"]
    autoscaling["initial_replicas"] = 0  # start with no GPU node at all
    return {
        "proxy_location": "HeadOnly",  # one proxy port per machine: the fake nodes share it
        "http_options": {"host": "127.0.0.1", "port": cluster.serve_port},
        "applications": [
            {
                "name": "hark",
                "route_prefix": "/",
                "import_path": "hark_serving.serve.app:build_app",
                "args": args,
                "deployments": [{"name": "Transcriber", "autoscaling_config": autoscaling}],
            }
        ],
    }
