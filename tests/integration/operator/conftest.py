"""Fixtures for the operator against the real API server, MinIO and a local model.

The operator runs in-process (`kopf.testing.KopfRunner`) or as `hark operator`
subprocesses; items go to a real HTTP server for `/v1/items` (itemserver.py).
Settings reach the operator the way they do in a pod: `HARK_*` variables.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.env.environment import Environment
from tests.env.kube import apply_yaml, wait_for

from .itemserver import ItemServer, profiles_for

if TYPE_CHECKING:
    from kopf.testing import KopfRunner
    from mypy_boto3_s3 import S3Client

REPO = Path(__file__).resolve().parents[3]
CRDS = REPO / "charts" / "hark" / "crds"
SECRET = "hark-s3-test"


@pytest.fixture(scope="session")
def hark_crds(test_env: Environment) -> Path:
    """The chart's CRDs (TranscriptionJob and kopf's peering), applied once."""
    apply_yaml(test_env, CRDS)
    test_env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", CRDS)
    return CRDS


@pytest.fixture(scope="session")
def item_server(test_env: Environment, tiny_model_dir: Path) -> Iterator[ItemServer]:
    profiles = profiles_for(test_env.s3_endpoint, test_env.s3_access_key, test_env.s3_secret_key)
    server = ItemServer(tiny_model_dir, profiles)
    server.url = f"http://127.0.0.1:{server.serve()}"  # type: ignore[attr-defined]
    yield server
    server.stop()


def profiles_yaml(test_env: Environment, endpoint: str | None = None) -> str:
    return yaml.safe_dump(
        {
            "default": "minio",
            "profiles": {
                "minio": {
                    "endpointUrl": endpoint or test_env.s3_endpoint,
                    "region": test_env.s3_region,
                    "addressingStyle": "path",
                    "credentialsSecret": SECRET,
                }
            },
        }
    )


def create_secret(test_env: Environment, namespace: str) -> None:
    test_env.kubectl(
        "create", "secret", "generic", SECRET, "-n", namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={test_env.s3_access_key}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={test_env.s3_secret_key}",
    )  # fmt: skip


def operator_environ(
    test_env: Environment, namespace: str, tmp_path: Path, serve_url: str, **extra: str
) -> dict[str, str]:
    """The HARK_* settings of an operator watching `namespace` (also its own namespace)."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(profiles_yaml(test_env, extra.pop("endpoint", None)))
    env = {
        "KUBECONFIG": str(test_env.kubeconfig),
        "HARK_NAMESPACES": namespace,
        "HARK_OPERATOR_NAMESPACE": namespace,
        "HARK_STORAGE_PROFILES": str(profiles),
        "HARK_SERVE_URL": serve_url,
        "HARK_STATUS_INTERVAL_SECONDS": "0.3",
        "HARK_RETRY_BASE_SECONDS": "0.2",
        "HARK_RETRY_MAX_SECONDS": "1",
        "HARK_SCALE_INTERVAL_SECONDS": "0.5",
        "HARK_METRICS_PORT": "0",
        "HARK_HEALTH_PORT": "0",
        "HARK_STANDALONE": "true",
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def kopf_operator(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], namespace: str
) -> Iterator[KopfRunner]:
    """The real operator, in this process, until the block ends."""
    from kopf.testing import KopfRunner

    for k, v in environ.items():
        monkeypatch.setenv(k, v)
    args = ["run", "--standalone", "--namespace", namespace, "-m", "hark_operator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.exception
    gc.collect()  # anything the operator left open is reported by the test that ran it


def job_manifest(name: str, bucket: str, **spec: Any) -> str:
    body: dict[str, Any] = {
        "input": {"uri": f"s3://{bucket}/in/"},
        "output": {"uri": f"s3://{bucket}/out/"},
        "parallelism": 2,
    }
    body.update(spec)
    return json.dumps(
        {
            "apiVersion": "hark.dev/v1alpha1",
            "kind": "TranscriptionJob",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def get_job(test_env: Environment, namespace: str, name: str) -> dict[str, Any]:
    out = test_env.kubectl("get", "tj", name, "-n", namespace, "-o", "json")
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def wait_phase(
    test_env: Environment, namespace: str, name: str, phases: set[str], timeout: float = 120
) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        job = get_job(test_env, namespace, name)
        return job if (job.get("status") or {}).get("phase") in phases else None

    return wait_for(ready, timeout=timeout, interval=0.3, message=f"{name} in {phases}")


def upload(s3: S3Client, bucket: str, files: dict[str, Path | bytes]) -> None:
    for key, src in files.items():
        body = src if isinstance(src, bytes) else src.read_bytes()
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def keys(s3: S3Client, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def hark_env(environ: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(environ)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def serve_url(ray_local: Any) -> Iterator[str]:
    """Serve's proxy: the one already running in this session, or a new one."""
    from ray import serve
    from ray.serve.context import _get_global_client

    try:
        client = _get_global_client()
    except Exception:  # not started yet: no client
        client = None
    if client is not None:
        yield f"http://127.0.0.1:{client.http_config.port}"
        return
    serve.start(http_options={"host": "127.0.0.1", "port": _free_port()})
    try:
        yield f"http://127.0.0.1:{_get_global_client().http_config.port}"
    finally:
        serve.shutdown()


def serve_profiles(test_env: Environment, tmp_path: Path, *buckets: str) -> Path:
    """The Serve app's storage profiles: MinIO, keys from files as mounted from a Secret,
    reading and writing `buckets` (the app refuses a profile that names none)."""
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "AWS_ACCESS_KEY_ID").write_text(test_env.s3_access_key)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(test_env.s3_secret_key)
    profiles = tmp_path / "serve-profiles.yaml"
    profiles.write_text(
        yaml.safe_dump(
            {
                "default": "minio",
                "profiles": {
                    "minio": {
                        "endpointUrl": test_env.s3_endpoint,
                        "region": test_env.s3_region,
                        "addressingStyle": "path",
                        "writeBuckets": list(buckets),
                        "credentialsDir": str(creds),
                    }
                },
            }
        )
    )
    return profiles


def json_versions(s3: S3Client, bucket: str) -> Counter[str]:
    versions: Counter[str] = Counter()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="out/"):
        for v in page.get("Versions", []):
            if v["Key"].endswith(".wav.json"):
                versions[v["Key"]] += 1
    return versions


def purge_versions(s3: S3Client, bucket: str) -> None:
    """A versioned bucket keeps deleted objects; remove every version for the teardown."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        doomed += [
            {"Key": m["Key"], "VersionId": m["VersionId"]} for m in page.get("DeleteMarkers", [])
        ]
        if doomed:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})


@pytest.fixture
def versioned(s3: S3Client, bucket: str) -> Iterator[str]:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    yield bucket
    purge_versions(s3, bucket)
