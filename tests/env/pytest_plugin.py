"""Fixtures for the real test environment (registered in tests/conftest.py).

Importing this module starts nothing and imports no heavy library: servers start the
first time a test requests ``test_env`` (or a fixture built on it), once per session.

- ``test_env``   (session)  etcd + kube-apiserver + MinIO + KubeRay CRDs; an
  ``Environment`` (kubeconfig, api_url, s3_*, tools, env(), kubectl(), helm()).
  With ``HARK_TEST_ENV=DIR`` (set by sourcing DIR/env.sh of ``python -m tests.env up``)
  the running environment is reused instead.
- ``kube_api``   (session)  ``kubernetes.client.ApiClient`` for the admin user.
- ``namespace``  (function) a fresh namespace name.
- ``s3``         (session)  boto3 S3 client for MinIO; ``bucket`` (function) a fresh
  bucket, emptied and deleted afterwards.
- ``ray_local``  (session)  a local Ray instance (num_cpus=4, no dashboard).
- ``kubeconform_schemas`` (session) the ``-schema-location`` of JSON schemas exported
  from the API server (built-in kinds + installed CRDs), for offline kubeconform.

A missing tool fails the test with the command that builds it; nothing is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.env.build import ToolsMissingError, tools_or_fail
from tests.env.environment import Environment
from tests.env.kube import unique_name
from tests.env.services import http_ok

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

REUSE_VAR = "HARK_TEST_ENV"


def _reuse(path: str) -> Environment:
    """The environment of a running ``up`` that HARK_TEST_ENV points at (checked live)."""
    import ssl

    try:
        env = Environment.load(Path(path))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{REUSE_VAR}={path}: no running environment there ({exc})") from exc
    ctx = ssl.create_default_context(cafile=str(env.ca_file))
    if not http_ok(f"{env.api_url}/livez", ctx) or not http_ok(
        f"{env.s3_endpoint}/minio/health/live"
    ):
        raise RuntimeError(
            f"{REUSE_VAR}={path}: the environment there is not answering; restart "
            "`python -m tests.env up` or unset the variable"
        )
    return env


@pytest.fixture(scope="session")
def test_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    """The real control plane + MinIO for this session."""
    reuse = os.environ.get(REUSE_VAR)
    if reuse:
        yield _reuse(reuse)
        return
    from tests.env.cluster import Cluster
    from tests.env.services import StartupError

    # pytest.fail outside the except blocks: the bare message, no chained traceback.
    problem = ""
    try:
        tools = tools_or_fail()
    except ToolsMissingError as exc:  # an error for every test that needs it, never a skip
        problem = str(exc)
    if problem:
        pytest.fail(problem, pytrace=False)
    cluster = Cluster(tmp_path_factory.mktemp("hark-env"), tools)
    try:
        env = cluster.start()
    except StartupError as exc:  # the message carries the failing server's log tail
        problem = str(exc)
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield env
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kube_api(test_env: Environment) -> Iterator[ApiClient]:
    """An ApiClient with the admin client certificate from the kubeconfig."""
    from kubernetes import config

    client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(test_env.kubeconfig)
    )
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def namespace(test_env: Environment, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test. Deletion is best-effort: without a
    namespace controller it stays Terminating, which no other test can see."""
    name = unique_name(request.node.name, max_len=50)
    test_env.kubectl("create", "namespace", name)
    yield name
    test_env.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def s3(test_env: Environment) -> S3Client:
    """A boto3 S3 client for MinIO (path-style addressing: no wildcard DNS here)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    client: S3Client = session.client(
        "s3",
        endpoint_url=test_env.s3_endpoint,
        aws_access_key_id=test_env.s3_access_key,
        aws_secret_access_key=test_env.s3_secret_key,
        region_name=test_env.s3_region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )
    return client


def empty_bucket(s3: S3Client, name: str) -> None:
    """Delete every object and pending multipart upload of ``name``."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys: list[ObjectIdentifierTypeDef] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    for uploads in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for upload in uploads.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])


@pytest.fixture
def bucket(s3: S3Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new bucket named after the test; emptied and removed afterwards."""
    name = unique_name(request.node.name, max_len=48)
    s3.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3, name)
    s3.delete_bucket(Bucket=name)


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """A local Ray instance shared by the session; yields ``ray.init``'s context."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from CI
        import ray

        context = ray.init(
            address="local",  # never attach to a cluster named by RAY_ADDRESS
            num_cpus=4,
            include_dashboard=False,
            namespace="hark-tests",
            object_store_memory=2 * 2**30,
            # Replicas export their metrics every second (Ray's least), not every 10 s,
            # so tests that read them wait less.
            _system_config={"metrics_report_interval_ms": 1000},
        )
        try:
            yield context
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def kubeconform_schemas(test_env: Environment, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``-schema-location`` for kubeconform: the API server's own schemas, offline.

    Exported once per session, so CRDs a test installs later are not included.
    """
    from tests.env.schemas import export_schemas

    return export_schemas(test_env, tmp_path_factory.mktemp("kubeconform-schemas"))
