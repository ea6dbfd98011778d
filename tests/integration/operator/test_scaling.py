"""The GPU floor on a RayService made from the real KubeRay CRD: up with the backlog,
down to the minimum after the delay, within bounds, only serveConfigV2 touched."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.env.environment import Environment
from tests.env.kube import apply_yaml, wait_for

from .conftest import (
    create_secret,
    job_manifest,
    kopf_operator,
    operator_environ,
    upload,
    wait_phase,
)
from .itemserver import ItemServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

SERVE_CONFIG = {
    "applications": [
        {
            "name": "hark",
            "route_prefix": "/",
            "import_path": "hark_serving.serve.app:build_app",
            "deployments": [
                {"name": "Worker", "num_replicas": 2},
                {
                    "name": "Transcriber",
                    "autoscaling_config": {"min_replicas": 0, "max_replicas": 3},
                },
            ],
        }
    ]
}


def rayservice(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {
            "serveConfigV2": yaml.safe_dump(SERVE_CONFIG, sort_keys=False),
            "rayClusterConfig": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {
                        "spec": {
                            "containers": [{"name": "ray-head", "image": "rayproject/ray:2.60.0"}]
                        }
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "gpu",
                        "replicas": 0,
                        "minReplicas": 0,
                        "maxReplicas": 3,
                        "rayStartParams": {},
                        "template": {
                            "spec": {
                                "containers": [
                                    {"name": "ray-worker", "image": "rayproject/ray:2.60.0"}
                                ]
                            }
                        },
                    }
                ],
            },
        },
    }


def floor(test_env: Environment, namespace: str) -> tuple[int, dict[str, Any]]:
    obj = json.loads(
        test_env.kubectl("get", "rayservice", "hark", "-n", namespace, "-o", "json").stdout
    )
    config = yaml.safe_load(obj["spec"]["serveConfigV2"])
    deployments = {d["name"]: d for d in config["applications"][0]["deployments"]}
    return int(deployments["Transcriber"]["autoscaling_config"]["min_replicas"]), obj


def test_backlog_moves_the_transcriber_floor_on_the_rayservice(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    item_server: ItemServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    apply_yaml(test_env, json.dumps(rayservice("hark")), namespace=namespace)
    before = floor(test_env, namespace)[1]
    upload(s3, bucket, {f"in/{i:02d}.wav": audio_dir / "one_sentence_16k.wav" for i in range(10)})
    create_secret(test_env, namespace)
    monkeypatch.setattr(item_server, "slow_seconds", 0.3)
    environ = operator_environ(
        test_env, namespace, tmp_path, item_server.url,  # type: ignore[attr-defined]
        HARK_SCALER="kuberay", HARK_RAYSERVICE_NAME="hark", HARK_RAYSERVICE_NAMESPACE=namespace,
        HARK_ITEMS_PER_REPLICA="2", HARK_SCALE_MIN_REPLICAS="0", HARK_SCALE_MAX_REPLICAS="3",
        HARK_SCALE_DOWN_DELAY_SECONDS="2", HARK_SCALE_INTERVAL_SECONDS="0.2",
    )  # fmt: skip
    seen: list[int] = []
    with kopf_operator(monkeypatch, environ, namespace):
        apply_yaml(test_env, job_manifest("load", bucket, parallelism=1), namespace=namespace)

        def raised() -> bool:
            seen.append(floor(test_env, namespace)[0])
            return seen[-1] == 3

        wait_for(raised, timeout=60, interval=0.1, message="the floor at the maximum")
        job = wait_phase(test_env, namespace, "load", {"Succeeded"}, timeout=90)
        done = time.monotonic()

        def lowered() -> bool:
            seen.append(floor(test_env, namespace)[0])
            return seen[-1] == 0

        wait_for(lowered, timeout=60, interval=0.1, message="the floor back at the minimum")
        took = time.monotonic() - done
        after = floor(test_env, namespace)[1]
    assert job["status"]["counts"]["succeeded"] == 10
    assert max(seen) == 3  # ceil(10 / 2) = 5, bounded by HARK_SCALE_MAX_REPLICAS
    assert took >= 1.0  # not before the delay (2 s after the last need, which may predate "done")
    # Only the Transcriber's floor changed: the Worker, the worker groups, the rest as they were.
    expected = copy.deepcopy(before["spec"])
    assert yaml.safe_load(after["spec"]["serveConfigV2"]) == yaml.safe_load(
        expected.pop("serveConfigV2")
    )
    assert after["spec"]["rayClusterConfig"] == expected["rayClusterConfig"]
    events = json.loads(
        test_env.kubectl(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            "involvedObject.kind=RayService",
            "-o",
            "json",
        ).stdout
    )["items"]
    messages = [e["message"] for e in events if e["reason"] == "ScaledGpuFloor"]
    downs = [m for m in messages if "→ 2" in m or "→ 1" in m or "→ 0" in m]
    assert any("0 → " in m for m in messages), messages  # scaled up from zero
    assert {"3 → 2", "2 → 1", "1 → 0"} <= {m.split(" (")[0].split("floor ")[1] for m in downs}, (
        messages
    )
