"""The elastic chain on a real autoscaling Ray cluster: a backlog raises the GPU floor,
Ray's autoscaler launches GPU nodes, replicas start and drain the backlog, the floor
returns to zero, the nodes are terminated, and a second backlog brings them back.
Nothing is lost and each output is written once (MinIO bucket versioning counts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml
from tests.env.ray_autoscaling import (
    AutoscalingRay,
    Sampler,
    deploy_serve_config,
    transcriber_state,
    wait_serve_running,
)
from tests.integration.operator.conftest import (
    create_secret,
    job_manifest,
    kopf_operator,
    operator_environ,
    upload,
    wait_phase,
)
from tests.integration.operator.test_resilience import json_versions, purge_versions

from .conftest import elastic_serve_config, serve_profiles

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.integration, pytest.mark.elastic, pytest.mark.timeout(900)]

MAX_NODES = 2


def floor(cluster: AutoscalingRay) -> int:
    return transcriber_state(cluster)[1]


def test_gpu_nodes_follow_the_backlog_to_zero_and_back(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    elastic_ray: AutoscalingRay,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    profiles = serve_profiles(test_env, tmp_path, bucket)
    deploy_serve_config(elastic_ray, elastic_serve_config(elastic_ray, tiny_model_dir, profiles))
    wait_serve_running(elastic_ray, "hark")
    assert elastic_ray.gpu_nodes() == 0 and floor(elastic_ray) == 0
    create_secret(test_env, namespace)
    environ = operator_environ(
        test_env, namespace, tmp_path, f"http://127.0.0.1:{elastic_ray.serve_port}",
        HARK_SCALER="serve-api", HARK_RAY_DASHBOARD_URL=elastic_ray.dashboard_url,
        HARK_ITEMS_PER_REPLICA="2", HARK_SCALE_MIN_REPLICAS="0",
        HARK_SCALE_MAX_REPLICAS=str(MAX_NODES), HARK_SCALE_DOWN_DELAY_SECONDS="3",
        HARK_SCALE_INTERVAL_SECONDS="0.5",
    )  # fmt: skip
    wav = audio_dir / "one_sentence_16k.wav"
    bursts = {"first": 10, "second": 6}
    try:
        with kopf_operator(monkeypatch, environ, namespace), Sampler(elastic_ray) as sampler:
            for name, count in bursts.items():
                upload(s3, bucket, {f"in/{name}/{i:02d}.wav": wav for i in range(count)})
                start = sampler.wait(lambda s: True, 30, "a sample").t
                apply_yaml(
                    test_env,
                    job_manifest(
                        name,
                        bucket,
                        input={"uri": f"s3://{bucket}/in/{name}/"},
                        output={"uri": f"s3://{bucket}/out/{name}/"},
                        parallelism=4,
                    ),
                    namespace=namespace,
                )
                job = wait_phase(test_env, namespace, name, {"Succeeded", "Failed"}, timeout=400)
                assert job["status"]["phase"] == "Succeeded", job["status"]
                assert job["status"]["counts"]["succeeded"] == count, job["status"]
                # The floor returns to zero after the delay, and the autoscaler then
                # terminates the idle GPU nodes.
                sampler.wait(lambda s: s.gpu_nodes == 0 and s.replicas == 0, 240, "no GPU node")
                assert floor(elastic_ray) == 0
                burst = sampler.since(start)
                assert burst[0].gpu_nodes == 0, burst[0]  # each burst starts from no GPU node
                peak = max(s.gpu_nodes for s in burst)
                assert 1 <= peak <= MAX_NODES, [(s.gpu_nodes, s.replicas) for s in burst]
                assert max(s.replicas for s in burst) >= 1
                assert max(s.floor for s in burst) == MAX_NODES  # 10 or 6 items, 2 per replica
        # Every input has exactly one transcript: none lost, none written twice.
        versions = json_versions(s3, bucket)
        expected = {
            f"out/{name}/{i:02d}.wav.json" for name, count in bursts.items() for i in range(count)
        }
        assert set(versions) == expected
        assert all(n == 1 for n in versions.values()), versions
        assert elastic_ray.gpu_nodes() == 0
    finally:
        purge_versions(s3, bucket)
