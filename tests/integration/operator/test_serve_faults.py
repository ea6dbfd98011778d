"""Faults the input did not cause, against the real Serve app `hark` (local Ray Serve,
tiny model, the app's default settings) and the operator's default retry settings.

Writes are counted with MinIO bucket versioning: every transcript must have
exactly one version, and no file may get an error record.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.env.environment import Environment
from tests.env.kube import WaitTimeout, apply_yaml, wait_for
from tests.fixtures import audio
from tests.integration.serve.conftest import app_args, wait_ready

from .conftest import (
    create_secret,
    get_job,
    job_manifest,
    json_versions,
    keys,
    kopf_operator,
    operator_environ,
    serve_profiles,
    upload,
    wait_phase,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

FILES = 12
# The outage test's job: long enough that the app goes down mid-job however fast the
# replicas run (12 files once finished in the second it took to see two outputs).
OUTAGE_FILES = 48
OUTAGE_SECONDS = 90  # the Serve app down mid-job, as long as a head pod restart
# The operator's own defaults (the fixtures' environment shortens them for other tests).
DEFAULT_RETRY = {"HARK_RETRY_BASE_SECONDS": "2", "HARK_RETRY_MAX_SECONDS": "300"}


class App:
    """The `hark` Serve application, taken down and brought back at will."""

    def __init__(self, url: str, args: dict[str, Any]) -> None:
        self.url, self.args = url, args

    def up(self) -> None:
        from ray import serve

        from hark_serving.serve.app import APP_NAME, ROUTE_PREFIX, build_app

        serve.run(build_app(self.args), name=APP_NAME, route_prefix=ROUTE_PREFIX)
        wait_ready(self.url)

    def down(self) -> None:
        """Take the app away as a head pod restart does: its replicas die at once.

        A graceful `serve.delete` is not that. It drains each Worker's requests for up
        to the Worker's graceful shutdown timeout (600 s), while the Transcriber those
        requests wait on is stopping too, so the delete can outlast any test.

        The Transcribers go first, and the rest only once their deployment is deleted:
        the Workers' requests in flight meet a deleted Transcriber deployment, whose
        handles Ray fails at once, as in an app delete or a RayService upgrade. That
        is the app's fault, not the files': no file may fail for it.
        """
        from ray import serve

        from hark_serving.serve.app import APP_NAME

        serve.delete(APP_NAME, _blocking=False)
        self.kill("Transcriber")

        def transcribers_deleted() -> bool:
            app = serve.status().applications.get(APP_NAME)
            return app is None or "Transcriber" not in app.deployments

        wait_for(transcribers_deleted, timeout=120, message="the Transcriber deployment deleted")
        self.kill()
        wait_for(
            lambda: APP_NAME not in serve.status().applications,
            timeout=120,
            message=f"the Serve app {APP_NAME!r} deleted",
        )

    @staticmethod
    def kill(deployment: str = "") -> None:
        """Kill the replicas of one deployment of the app (of all of them when "")."""
        import ray

        from hark_serving.serve.app import APP_NAME

        prefix = f"SERVE_REPLICA::{APP_NAME}#{deployment}{'#' if deployment else ''}"
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if actor["name"].startswith(prefix):
                with contextlib.suppress(ValueError):  # already gone
                    ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]))


def condition(job: dict[str, Any], type_: str) -> dict[str, Any]:
    conds = (job.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_), {})


def assert_each_file_written_once(
    s3: S3Client, bucket: str, job: dict[str, Any], files: int = FILES
) -> None:
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["counts"]["succeeded"] == files and status["counts"]["failed"] == 0, status
    assert [k for k in keys(s3, bucket, "out/") if k.endswith(".error.json")] == []
    versions = json_versions(s3, bucket)
    assert len(versions) == files, versions  # nothing lost
    assert set(versions.values()) == {1}, versions  # nothing written twice


@pytest.mark.timeout(600)  # a 90 s outage, then the backoff it built up
def test_the_serve_app_down_mid_job_then_back_loses_and_repeats_nothing(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    versioned: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from hark_operator import metrics

    bucket = versioned
    speech = audio_dir / "one_sentence_16k.wav"
    upload(s3, bucket, {f"in/{i:02d}.wav": speech for i in range(OUTAGE_FILES)})
    create_secret(test_env, namespace)
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    environ = operator_environ(test_env, namespace, tmp_path, serve_url, **DEFAULT_RETRY)
    app.up()
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(test_env, job_manifest("outage", bucket, maxAttempts=1), namespace=namespace)
            wait_for(lambda: len(json_versions(s3, bucket)) >= 2, timeout=180, message="2 outputs")
            app.down()  # a RayService upgrade, a head pod restart: nobody answers /v1/items
            down_at = time.monotonic()
            seen: list[dict[str, Any]] = []

            def paused_now() -> dict[str, Any] | None:
                seen[:] = [get_job(test_env, namespace, "outage")]
                return (
                    seen[0]
                    if condition(seen[0], "ProcessorAvailable").get("status") == "False"
                    else None
                )

            try:
                paused = wait_for(paused_now, timeout=120, message="dispatch paused")
            except WaitTimeout as exc:  # say how the job stood instead
                raise AssertionError(
                    f"{exc}; the job's status: {seen and seen[0].get('status')}"
                ) from None
            gauge_while_down = metrics.PROCESSOR_AVAILABLE._value.get()
            written_while_down = len(json_versions(s3, bucket))
            # Down for as long as a head pod restart takes, while the backoff grows.
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            app.up()
            job = wait_phase(test_env, namespace, "outage", {"Succeeded", "Failed"}, timeout=300)
    finally:
        app.down()
    assert written_while_down < OUTAGE_FILES, "the outage came too late to test anything"
    assert paused["status"]["phase"] == "Running"
    assert condition(paused, "ProcessorAvailable")["reason"] == "ProcessorUnreachable"
    assert gauge_while_down == 0
    assert condition(job, "ProcessorAvailable")["status"] == "True"
    assert_each_file_written_once(s3, bucket, job, OUTAGE_FILES)


def test_requests_the_proxy_never_answers_go_back_to_the_queue(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    versioned: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A request that reaches Ray's proxy while no Ingress replica is alive waits there
    for one; when the app is deleted meanwhile, the proxy never answers it. The
    operator's stall check (its default 30 s) must take such tries back."""
    bucket, files = versioned, 2
    upload(
        s3, bucket, {f"in/{i:02d}.wav": audio_dir / "one_sentence_16k.wav" for i in range(files)}
    )
    create_secret(test_env, namespace)
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    environ = operator_environ(test_env, namespace, tmp_path, serve_url, **DEFAULT_RETRY)
    app.up()
    try:
        # Serve takes seconds to replace a dead Ingress; the job's requests wait for it.
        app.kill("Ingress")
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(test_env, job_manifest("held", bucket, maxAttempts=1), namespace=namespace)
            wait_for(
                lambda: (
                    get_job(test_env, namespace, "held")["status"]["counts"]["inFlight"] == files
                ),
                timeout=60,
                message="both files in flight",
            )
            app.down()  # deleted under them: the proxy will not answer those two
            lost = wait_for(
                lambda: (
                    (j := get_job(test_env, namespace, "held"))
                    and condition(j, "ProcessorAvailable").get("status") == "False"
                    and j
                ),
                timeout=120,
                message="the lost tries taken back",
            )
            app.up()
            job = wait_phase(test_env, namespace, "held", {"Succeeded", "Failed"}, timeout=300)
    finally:
        app.down()
    paused = condition(lost, "ProcessorAvailable")
    assert paused["reason"] == "ProcessorUnreachable", paused
    # Either way the app's loss is seen and the tries come back: mostly Ray's proxy never
    # answers the held requests and the stall check finds no app; sometimes (1 CI run in
    # 4 here) it answers them 404 once the app's route is gone.
    stalled = "no app deployed" in paused["message"]
    answered_404 = "/v1/items answered 404" in paused["message"]
    assert stalled or answered_404, paused
    assert lost["status"]["counts"]["failed"] == 0
    assert condition(job, "ProcessorAvailable")["status"] == "True"
    assert_each_file_written_once(s3, bucket, job, files)


def test_a_wrong_operator_token_pauses_until_its_secret_is_fixed(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    versioned: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = versioned
    upload(
        s3, bucket, {f"in/{i:02d}.wav": audio_dir / "one_sentence_16k.wav" for i in range(FILES)}
    )
    upload(s3, bucket, {"in/zz-broken.wav": audio_dir / "broken_header_only.wav"})
    create_secret(test_env, namespace)
    test_env.kubectl(
        "create", "secret", "generic", "serve-token", "-n", namespace,
        "--from-literal=token=not-the-token",
    )  # fmt: skip
    profiles = serve_profiles(test_env, tmp_path, bucket)
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(profiles), items_token="s3cret-token"),
    )
    environ = operator_environ(
        test_env,
        namespace,
        tmp_path,
        serve_url,
        HARK_ITEMS_TOKEN_SECRET="serve-token",
        **DEFAULT_RETRY,
    )
    app.up()
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(test_env, job_manifest("token", bucket, maxAttempts=1), namespace=namespace)
            refused = wait_for(
                lambda: (
                    (j := get_job(test_env, namespace, "token"))
                    and condition(j, "ProcessorAvailable").get("reason") == "ProcessorRefused"
                    and j
                ),
                timeout=120,
                message="dispatch paused on 401",
            )
            events = test_env.kubectl(
                "get", "events", "-n", namespace, "-o", "json",
                "--field-selector", "involvedObject.name=token",
            )  # fmt: skip
            fixed = test_env.kubectl(
                "create", "secret", "generic", "serve-token", "-n", namespace,
                "--from-literal=token=s3cret-token", "--dry-run=client", "-o", "yaml",
            )  # fmt: skip
            apply_yaml(test_env, fixed.stdout, namespace=namespace)
            job = wait_phase(test_env, namespace, "token", {"Succeeded", "Failed"}, timeout=300)
    finally:
        app.down()
    assert refused["status"]["phase"] == "Running"
    assert refused["status"]["counts"]["failed"] == 0
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert "ProcessorRefused" in reasons, reasons
    # The broken file is the only error record, and it is the file's own.
    status = job["status"]
    assert status["counts"]["failed"] == 1, status
    errors = [k for k in keys(s3, bucket, "out/") if k.endswith(".error.json")]
    assert errors == ["out/zz-broken.wav.error.json"]
    doc = json.loads(s3.get_object(Bucket=bucket, Key=errors[0])["Body"].read())
    assert doc["code"] == "empty_audio" and doc["source"]["uri"].endswith("zz-broken.wav"), doc
    versions = json_versions(s3, bucket)
    assert len(versions) == FILES and set(versions.values()) == {1}, versions


def test_a_batch_job_in_which_every_file_fails_is_not_succeeded(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    broken = audio_dir / "broken_header_only.wav"
    upload(s3, bucket, {f"in/{i}.wav": broken for i in range(3)})
    create_secret(test_env, namespace)
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    environ = operator_environ(test_env, namespace, tmp_path, serve_url)
    app.up()
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(test_env, job_manifest("allbad", bucket), namespace=namespace)
            job = wait_phase(test_env, namespace, "allbad", {"Succeeded", "Failed"}, timeout=180)
    finally:
        app.down()
    status = job["status"]
    assert status["phase"] == "Failed", status
    assert status["counts"]["failed"] == 3 and status["counts"]["succeeded"] == 0
    assert condition(job, "Failed")["reason"] == "AllFilesFailed"
    assert len([k for k in keys(s3, bucket, "out/") if k.endswith(".error.json")]) == 3


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/items", json=body, timeout=600)


def test_one_flight_per_output_whoever_sends_the_requests(
    test_env: Environment,
    versioned: str,
    s3: S3Client,
    tiny_model_dir: Path,
    serve_url: str,
    tmp_path: Path,
) -> None:
    """Six senders at once (two operators, a retry after a timeout, HTTP clients): the
    real app transcribes the output once, and every sender learns it is taken care of."""
    bucket = versioned
    long = audio.long_speech(tmp_path / "long.wav", 1)
    upload(s3, bucket, {"in/long.wav": long})
    body = {"input_uri": f"s3://{bucket}/in/long.wav", "output_uri": f"s3://{bucket}/out/long.wav"}
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    app.up()
    try:
        start = threading.Barrier(6)

        def send(_: int) -> httpx.Response:
            start.wait()
            return _post(serve_url, body)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(send, range(6)))
        statuses = sorted(
            r.json()["status"] if r.status_code == 200 else r.json()["error"]["code"]
            for r in answers
        )
        # The ones turned away try again later, as the operator does, and find it current.
        again = _post(serve_url, body)
    finally:
        app.down()
    assert statuses.count("succeeded") == 1, statuses
    assert set(statuses) <= {"succeeded", "skipped", "in_progress"}, statuses
    assert again.json()["status"] == "skipped"
    assert json_versions(s3, bucket) == {"out/long.wav.json": 1}
    assert "out/long.wav.hark-lease" not in keys(s3, bucket, "out/")  # released


def test_an_input_re_uploaded_during_its_transcription_ends_with_its_new_content(
    test_env: Environment,
    versioned: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    tmp_path: Path,
) -> None:
    bucket = versioned
    long = audio.long_speech(tmp_path / "long.wav", 1)
    upload(s3, bucket, {"in/x.wav": long})
    body = {"input_uri": f"s3://{bucket}/in/x.wav", "output_uri": f"s3://{bucket}/out/x.wav"}
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    app.up()
    try:
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(_post, serve_url, body)
            # The lease appears once the worker has the item: replace the input then.
            wait_for(
                lambda: "out/x.wav.hark-lease" in keys(s3, bucket, "out/"),
                timeout=120,
                interval=0.05,
                message="the item in flight",
            )
            upload(s3, bucket, {"in/x.wav": audio_dir / "one_sentence_16k.wav"})
            result = answer.result(timeout=600)
        new_etag = s3.head_object(Bucket=bucket, Key="in/x.wav")["ETag"].strip('"')
    finally:
        app.down()
    assert result.status_code == 200, result.text
    assert result.json()["etag"] == new_etag
    doc = json.loads(s3.get_object(Bucket=bucket, Key="out/x.wav.json")["Body"].read())
    assert doc["source"]["etag"] == new_etag
    meta = s3.head_object(Bucket=bucket, Key="out/x.wav.json")["Metadata"]
    assert meta["hark-source-etag"] == new_etag
    assert doc["source"]["duration"] < 30  # the new, short file, not the minute-long one


def test_odd_keys_go_end_to_end_and_the_counts_add_up(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    serve_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Spaces, unicode, `+`, `=` and `&` in keys (`//`, `./` and keys past 1024 bytes,
    which MinIO itself refuses, are covered by the unit tests with AWS's rules)."""
    odd = ["in/a b.wav", "in/ünïcödé/語音 1.wav", "in/a+b=c&d.wav", "in/x%20y.wav"]
    upload(s3, bucket, {k: audio_dir / "one_sentence_16k.wav" for k in odd})
    create_secret(test_env, namespace)
    app = App(
        serve_url,
        app_args(tiny_model_dir, storage_profiles=str(serve_profiles(test_env, tmp_path, bucket))),
    )
    environ = operator_environ(test_env, namespace, tmp_path, serve_url)
    app.up()
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(test_env, job_manifest("odd", bucket), namespace=namespace)
            job = wait_phase(test_env, namespace, "odd", {"Succeeded", "Failed"}, timeout=180)
    finally:
        app.down()
    counts = job["status"]["counts"]
    assert job["status"]["phase"] == "Succeeded", job["status"]
    assert (counts["total"], counts["succeeded"], counts["failed"]) == (4, 4, 0)
    out = set(keys(s3, bucket, "out/"))
    assert {"out/" + k[len("in/") :] + ".json" for k in odd} <= out
    doc = json.loads(s3.get_object(Bucket=bucket, Key="out/ünïcödé/語音 1.wav.json")["Body"].read())
    assert doc["source"]["uri"] == f"s3://{bucket}/in/ünïcödé/語音 1.wav"
