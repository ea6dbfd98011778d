"""Alerts of a TranscriptionJob to the operator's webhook, at least once, through the job's
outbox in S3: the real operator, API server, MinIO and item server, and a real HTTP
receiver on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hark_serving.analytics.alerts import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    idempotency_key,
    verify,
)
from tests.env.environment import Environment
from tests.env.kube import apply_yaml, wait_for
from tests.fixtures.calls import synthetic_call
from tests.unit.analytics.test_alerts import Receiver, free_port

from .conftest import (
    create_secret,
    get_job,
    job_manifest,
    keys,
    kopf_operator,
    operator_environ,
    upload,
    wait_phase,
)
from .itemserver import ItemServer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

SECRET = "alert-signing-secret"
ANALYTICS = {
    "categories": [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 5}}]},
        {
            "name": "customer-interrupts",
            "all": [{"interruption": {"role": "customer", "min_count": 1}}],
        },
    ]
}
OPTIONS = {"channels": "split", "roles": ["agent", "customer"]}


def webhook_environ(
    test_env: Environment, namespace: str, tmp_path: Path, item_server: ItemServer, port: int
) -> dict[str, str]:
    return operator_environ(
        test_env,
        namespace,
        tmp_path,
        item_server.url,  # type: ignore[attr-defined]
        HARK_WEBHOOK_URL=f"http://127.0.0.1:{port}/hark/alerts",
        HARK_WEBHOOK_SECRET=SECRET,
    )


def outbox(s3: S3Client, bucket: str, namespace: str, job: str) -> list[str]:
    return keys(s3, bucket, f"out/_hark/{namespace}.{job}/alerts/")


def expected_key(s3: S3Client, bucket: str, key: str) -> str:
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    return idempotency_key(f"s3://{bucket}/{key}", etag, ["long-silence"])


def delivered(receiver: Receiver) -> dict[str, dict[str, Any]]:
    """The alerts the receiver answered 200 (its last answers), by idempotency key."""
    return {h[IDEMPOTENCY_HEADER]: json.loads(body) for h, body in receiver.requests}


def events(test_env: Environment, namespace: str, job: str, reason: str) -> list[dict[str, Any]]:
    out = test_env.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={job}",
        "-o", "json",
    )  # fmt: skip
    return [e for e in json.loads(out.stdout)["items"] if e["reason"] == reason]


def test_an_alert_goes_to_the_webhook_signed_after_a_failed_try_and_leaves_the_outbox(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    versioned: str,
    s3: S3Client,
    item_server: ItemServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bucket = versioned
    upload(s3, bucket, {"in/2026-11-30/alice/c1.wav": synthetic_call().path})
    create_secret(test_env, namespace)
    receiver = Receiver(free_port(), [503])  # the first answer fails; tried again
    environ = webhook_environ(
        test_env, namespace, tmp_path, item_server, receiver.server.server_port
    )
    manifest = job_manifest("alerts", bucket, options=OPTIONS, analytics=ANALYTICS)
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            apply_yaml(test_env, manifest, namespace=namespace)
            job = wait_phase(test_env, namespace, "alerts", {"Succeeded", "Failed"}, timeout=240)
            wait_for(
                lambda: len(receiver.requests) >= 2 and not outbox(s3, bucket, namespace, "alerts"),
                timeout=60,
                message="the alert delivered and its record deleted",
            )
    finally:
        receiver.stop()
    assert job["status"]["phase"] == "Succeeded", job["status"]

    key = expected_key(s3, bucket, "in/2026-11-30/alice/c1.wav")
    assert len(receiver.requests) == 2  # the 503, then the 200
    for headers, body in receiver.requests:
        assert verify(SECRET, body, headers[SIGNATURE_HEADER])
        assert not verify("another-secret", body, headers[SIGNATURE_HEADER])
        assert (headers[IDEMPOTENCY_HEADER], headers[EVENT_HEADER]) == (key, "category-alert")
    (body,) = {b for _, b in receiver.requests}  # both tries sent the same bytes
    doc = json.loads(body)
    assert doc["type"] == "hark.alert/v1" and doc["idempotency_key"] == key
    assert doc["file"] == f"s3://{bucket}/in/2026-11-30/alice/c1.wav"
    assert doc["transcript"] == f"s3://{bucket}/out/2026-11-30/alice/c1.wav.json"
    assert [c["name"] for c in doc["categories"]] == ["long-silence"]
    assert len(doc["categories"][0]["points"]) == 2

    # The record was written once, before the transcript, and deleted after the 200.
    record = f"out/_hark/{namespace}.alerts/alerts/{key}.json"
    history = s3.list_object_versions(Bucket=bucket, Prefix=record)
    assert len(history.get("Versions", [])) == 1
    assert len(history.get("DeleteMarkers", [])) == 1
    assert len(events(test_env, namespace, "alerts", "CategoryAlert")) == 1


def test_alerts_left_in_the_outbox_while_the_receiver_was_down_are_sent_by_the_next_operator(
    test_env: Environment,
    hark_crds: Path,
    namespace: str,
    bucket: str,
    s3: S3Client,
    item_server: ItemServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    call = synthetic_call().path
    upload(s3, bucket, {"in/a/c1.wav": call, "in/b/c2.wav": call})
    create_secret(test_env, namespace)
    port = free_port()  # nothing listens there yet
    environ = webhook_environ(test_env, namespace, tmp_path, item_server, port)
    manifest = job_manifest("down", bucket, options=OPTIONS, analytics=ANALYTICS)
    with kopf_operator(monkeypatch, environ, namespace):
        apply_yaml(test_env, manifest, namespace=namespace)
        job = wait_phase(test_env, namespace, "down", {"Succeeded", "Failed"}, timeout=240)
        wait_for(
            lambda: events(test_env, namespace, "down", "AlertNotDelivered"),
            timeout=120,
            message="a Warning Event for the alerts not delivered",
        )
    assert job["status"]["phase"] == "Succeeded", job["status"]
    want = {
        expected_key(s3, bucket, "in/a/c1.wav"): f"s3://{bucket}/in/a/c1.wav",
        expected_key(s3, bucket, "in/b/c2.wav"): f"s3://{bucket}/in/b/c2.wav",
    }
    # The operator is gone; the alerts it could not deliver wait in S3.
    assert outbox(s3, bucket, namespace, "down") == sorted(
        f"out/_hark/{namespace}.down/alerts/{k}.json" for k in want
    )
    (warning,) = events(test_env, namespace, "down", "AlertNotDelivered")
    assert warning["type"] == "Warning" and f"127.0.0.1:{port}" in warning["message"]

    receiver = Receiver(port, [])
    try:
        with kopf_operator(monkeypatch, environ, namespace):
            wait_for(
                lambda: len(delivered(receiver)) == 2 and not outbox(s3, bucket, namespace, "down"),
                timeout=120,
                message="both alerts delivered by the new operator",
            )
    finally:
        receiver.stop()
    got = delivered(receiver)
    assert {k: doc["file"] for k, doc in got.items()} == want
    assert all(verify(SECRET, body, h[SIGNATURE_HEADER]) for h, body in receiver.requests)
    assert get_job(test_env, namespace, "down")["status"]["phase"] == "Succeeded"
