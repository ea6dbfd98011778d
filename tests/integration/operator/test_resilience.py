"""Surviving what goes wrong: a killed operator, a lost replica, an object store outage,
and status writes that conflict. Nothing is lost, nothing is transcribed twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.env import services
from tests.env.environment import Environment
from tests.env.kube import WaitTimeout, apply_yaml, wait_for

from .conftest import (
    REPO,
    create_secret,
    get_job,
    hark_env,
    job_manifest,
    json_versions,
    keys,
    kopf_operator,
    operator_environ,
    purge_versions,
    serve_profiles,
    upload,
    wait_phase,
)
from .itemserver import ItemServer, profiles_for

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def start_operator(environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "hark_serving.cli.main", "operator"],
            cwd=REPO,
            env=hark_env(environ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_killed_operator_restarts_and_finishes_without_repeating_work(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    tmp_path: Path,
) -> None:
    """SIGKILL the operator mid-job, with the real Serve app behind it."""
    from tests.integration.serve.conftest import app_args, deploy

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    files = {f"in/{i:02d}.wav": audio_dir / "one_sentence_16k.wav" for i in range(12)}
    upload(s3, bucket, files)
    create_secret(test_env, namespace)
    health, metrics = services.free_port(), services.free_port()
    environ = operator_environ(
        test_env, namespace, tmp_path, serve_url,
        HARK_HEALTH_PORT=str(health), HARK_METRICS_PORT=str(metrics),
        HARK_RETRY_BASE_SECONDS="2", HARK_RETRY_MAX_SECONDS="300",  # the defaults
    )  # fmt: skip
    log = tmp_path / "operator.log"
    app = deploy(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    app.__enter__()
    first = start_operator(environ, log)
    try:
        apply_yaml(test_env, job_manifest("crash", bucket, parallelism=3), namespace=namespace)
        wait_for(lambda: len(json_versions(s3, bucket)) >= 3, timeout=90, message="three outputs")
        # The pod's probes and Prometheus see a working operator.
        assert httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=5).status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        assert f'hark_operator_items_total{{job="{namespace}/crash",result="succeeded"}}' in scraped
        assert (
            "hark_operator_backlog_items{" in scraped
            and "hark_operator_replicas_desired" in scraped
        )
        first.send_signal(signal.SIGKILL)  # no cleanup, no goodbye: requests stay in flight
        first.wait(timeout=10)
        done_at_kill = len(json_versions(s3, bucket))
        second = start_operator(environ, log)
        try:
            try:
                job = wait_phase(test_env, namespace, "crash", {"Succeeded", "Failed"}, timeout=120)
            except WaitTimeout:
                pytest.fail(f"no end after the restart; operator log:\n{log.read_text()[-6000:]}")
        finally:
            stop(second)
        versions = json_versions(s3, bucket)
    finally:
        stop(first)
        app.__exit__(None, None, None)
        purge_versions(s3, bucket)
    assert done_at_kill < 12, "the kill came too late to test anything"
    status = job["status"]
    assert status["phase"] == "Succeeded", log.read_text()[-3000:]
    assert status["counts"]["succeeded"] == 12 and status["counts"]["failed"] == 0
    assert len(versions) == 12, versions  # nothing lost
    assert set(versions.values()) == {1}, versions  # nothing written twice


def test_a_replica_lost_mid_item_is_retried_elsewhere(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    one = audio_dir / "one_sentence_16k.wav"
    upload(s3, bucket, {f"in/{i}.wav": one for i in range(4)})
    create_secret(test_env, namespace)
    port = services.free_port()
    doomed = f"s3://{bucket}/in/2.wav"
    log = (tmp_path / "replica.log").open("wb")
    replica = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.operator.itemserver", "--port", str(port),
         "--model", str(tiny_model_dir), "--endpoint", test_env.s3_endpoint, "--die-on", doomed],
        cwd=REPO, env=test_env.env(), stdout=subprocess.PIPE, stderr=log,
    )  # fmt: skip
    replacement: ItemServer | None = None
    try:
        assert replica.stdout is not None
        assert replica.stdout.readline() == b"ready\n", (tmp_path / "replica.log").read_text()[
            -2000:
        ]
        environ = operator_environ(
            test_env, namespace, tmp_path, f"http://127.0.0.1:{port}",
            HARK_RETRY_BASE_SECONDS="2", HARK_RETRY_MAX_SECONDS="300",  # the defaults
        )  # fmt: skip
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(
                test_env,
                job_manifest("lost", bucket, parallelism=1, maxAttempts=1),
                namespace=namespace,
            )
            assert replica.wait(timeout=90) == 17  # died in the middle of 2.wav
            assert "out/2.wav.json" not in keys(s3, bucket, "out/")
            profiles = profiles_for(
                test_env.s3_endpoint, test_env.s3_access_key, test_env.s3_secret_key
            )
            replacement = ItemServer(tiny_model_dir, profiles)
            replacement.serve(port)  # a new replica where the old one was
            # The dead replica's lease on 2.wav expires before anyone may take it over.
            job = wait_phase(test_env, namespace, "lost", {"Succeeded", "Failed"}, timeout=240)
    finally:
        if replica.poll() is None:
            replica.kill()
        replica.wait()
        assert replica.stdout is not None
        replica.stdout.close()
        log.close()
        if replacement is not None:
            replacement.stop()
    assert job["status"]["phase"] == "Succeeded"
    assert job["status"]["counts"]["succeeded"] == 4 and job["status"]["counts"]["failed"] == 0
    # Tried again on the new replica (answered in_progress until the dead one's lease
    # expired), then once for real: one transcript, no error record.
    assert replacement.requests[doomed] >= 1
    assert "out/2.wav.error.json" not in keys(s3, bucket, "out/")
    assert {f"out/{i}.wav.json" for i in range(4)} <= set(keys(s3, bucket, "out/"))


@pytest.fixture
def private_minio(test_env: Environment, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A MinIO of this test's own, which it may stop and start again on the same port."""
    port, console = services.free_port(), services.free_port()
    env = dict(os.environ, MINIO_ROOT_USER="outage", MINIO_ROOT_PASSWORD="outage-secret-1",
               MINIO_BROWSER="off", MINIO_UPDATE="off")  # fmt: skip
    argv = [str(test_env.tools.minio), "server", "--quiet", f"--address=127.0.0.1:{port}",
            f"--console-address=127.0.0.1:{console}", str(tmp_path / "minio-data")]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    state: dict[str, Any] = {"url": url, "port": port}

    def start() -> None:
        server = services.Server(
            "minio-outage", argv, tmp_path / "minio.log", env=env, ports=[port]
        )
        server.start()
        services.wait_ready(
            server, lambda: services.http_ok(f"{url}/minio/health/live"), 60, "live"
        )
        state["server"] = server

    state["start"] = start
    start()
    yield state
    state["server"].stop()


def test_an_object_store_outage_is_waited_out(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    audio_dir: Path,
    tiny_model_dir: Path,
    private_minio: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import boto3
    from botocore.config import Config

    url = private_minio["url"]
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=url, aws_access_key_id="outage", aws_secret_access_key="outage-secret-1",
        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip
    s3.create_bucket(Bucket="outage")
    upload(s3, "outage", {f"in/{i}.wav": audio_dir / "one_sentence_16k.wav" for i in range(6)})
    test_env.kubectl(
        "create", "secret", "generic", "hark-s3-test", "-n", namespace,
        "--from-literal=AWS_ACCESS_KEY_ID=outage", "--from-literal=AWS_SECRET_ACCESS_KEY=outage-secret-1",
    )  # fmt: skip
    workers = ItemServer(
        tiny_model_dir, profiles_for(url, "outage", "outage-secret-1"), slow_seconds=0.3
    )
    environ = operator_environ(
        test_env, namespace, tmp_path, f"http://127.0.0.1:{workers.serve()}", endpoint=url,
        HARK_RETRY_BASE_SECONDS="2", HARK_RETRY_MAX_SECONDS="300",  # the defaults
    )  # fmt: skip
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(
                test_env,
                job_manifest("outage", "outage", parallelism=1, maxAttempts=1),
                namespace=namespace,
            )
            wait_for(
                lambda: len(keys(s3, "outage", "out/")) >= 2, timeout=60, message="two outputs"
            )
            private_minio["server"].stop()  # the object store goes away...
            time.sleep(6)
            private_minio["start"]()  # ...and comes back on the same address
            job = wait_phase(test_env, namespace, "outage", {"Succeeded", "Failed"}, timeout=240)
    finally:
        workers.stop()
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["counts"]["succeeded"] == 6 and status["counts"]["failed"] == 0
    assert sum(workers.requests.values()) > 6  # some tries failed during the outage
    assert {f"out/{i}.wav.json" for i in range(6)} <= set(keys(s3, "outage", "out/"))


def test_status_write_conflicts_are_survived(
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
    from hark_operator.clients.kube import KubeClient, is_conflict

    upload(s3, bucket, {f"in/{i}.wav": audio_dir / "one_sentence_16k.wav" for i in range(3)})
    create_secret(test_env, namespace)
    original = KubeClient.patch_job_status
    seen = Counter[str]()

    async def meddling(self: KubeClient, namespace: str, name: str, status: dict[str, Any],
                       resource_version: str | None = None) -> dict[str, Any]:  # fmt: skip
        if seen["writes"] < 4:
            seen["writes"] += 1
            # Someone else writes first: the resourceVersion the operator holds is stale now.
            await self._call(self.objects.patch_namespaced_custom_object, "hark.dev", "v1alpha1",
                             namespace, "transcriptionjobs", name,
                             {"metadata": {"labels": {"touched": str(seen["writes"])}}},
                             _content_type="application/merge-patch+json")  # fmt: skip
        try:
            return await original(self, namespace, name, status, resource_version)
        except Exception as exc:
            if is_conflict(exc):
                seen["conflicts"] += 1
            raise

    monkeypatch.setattr(KubeClient, "patch_job_status", meddling)
    environ = operator_environ(test_env, namespace, tmp_path, item_server.url)  # type: ignore[attr-defined]
    with kopf_operator(monkeypatch, environ, namespace):
        apply_yaml(test_env, job_manifest("contested", bucket), namespace=namespace)
        job = wait_phase(test_env, namespace, "contested", {"Succeeded", "Failed"}, timeout=60)
        job = get_job(test_env, namespace, "contested")
    assert seen["conflicts"] >= 1  # real 409s from the API server
    assert job["status"]["phase"] == "Succeeded" and job["status"]["counts"]["succeeded"] == 3
    assert job["metadata"]["labels"]["touched"] == "4"
