"""A TranscriptionJob with `analytics`: categories in the transcripts, alert Events on the job and
the QA report, run by the real operator against the real API server, MinIO and an item server."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hark_serving.transcript.schema import validate_result
from tests.env.environment import Environment
from tests.env.kube import apply_yaml
from tests.fixtures.calls import synthetic_call

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

ANALYTICS = {
    "metadata": {"pattern": "{date}/{agent}/{call_id}.wav"},
    "categories": [
        {"name": "long-silence", "alert": True, "all": [{"non_talk": {"min_seconds": 5}}]},
        {"name": "customer-interrupts", "all": [{"interruption": {"role": "customer", "min_count": 1}}]},
        {"name": "never", "alert": True, "all": [{"non_talk": {"min_seconds": 60}}]},
    ]
}  # fmt: skip


def test_a_job_with_analytics_writes_categories_alert_events_and_the_report(
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
    upload(s3, bucket, {"in/2026-11-30/alice/c1.wav": call, "in/2026-11-30/bob/c2.wav": call})
    create_secret(test_env, namespace)
    environ = operator_environ(test_env, namespace, tmp_path, item_server.url)  # type: ignore[attr-defined]
    manifest = job_manifest(
        "qa",
        bucket,
        options={"channels": "split", "roles": ["agent", "customer"]},
        analytics=ANALYTICS,
    )
    with kopf_operator(monkeypatch, environ, namespace):
        apply_yaml(test_env, manifest, namespace=namespace)
        job = wait_phase(test_env, namespace, "qa", {"Succeeded", "Failed"}, timeout=240)
    assert job["status"]["phase"] == "Succeeded", job["status"]

    for key in ("out/2026-11-30/alice/c1.wav.json", "out/2026-11-30/bob/c2.wav.json"):
        doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        validate_result(doc)
        cats = doc["call"]["categories"]
        assert cats["matched"] == ["long-silence", "customer-interrupts"], cats
        assert len(cats["details"]["long-silence"]["points"]) == 2
        assert doc["call"]["roles"] == {"0": "agent", "1": "customer"}

    events = test_env.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=qa", "-o", "json"
    )  # fmt: skip
    alerts = [e for e in json.loads(events.stdout)["items"] if e["reason"] == "CategoryAlert"]
    messages = sorted(e["message"] for e in alerts)
    assert len(messages) == 2, messages
    assert messages[0].startswith(f"s3://{bucket}/in/2026-11-30/alice/c1.wav: long-silence → ")
    assert messages[1].startswith(f"s3://{bucket}/in/2026-11-30/bob/c2.wav: long-silence → ")
    assert all(e["type"] == "Warning" for e in alerts)

    # The QA report beside the job's summary, of every transcript under the output prefix.
    report_dir = f"out/_hark/{namespace}.qa/"
    body = s3.get_object(Bucket=bucket, Key=report_dir + "calls.csv")["Body"].read().decode()
    rows = list(csv.DictReader(body.splitlines()))
    assert [(r["file"], r["agent"], r["categories"], r["alerts"]) for r in rows] == [
        ("2026-11-30/alice/c1.wav", "alice", "long-silence;customer-interrupts", "long-silence"),
        ("2026-11-30/bob/c2.wav", "bob", "long-silence;customer-interrupts", "long-silence"),
    ]
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_dir + "report.json")["Body"].read())
    assert report["calls"] == 2 and set(report["by_agent"]) == {"alice", "bob"}
    html = s3.get_object(Bucket=bucket, Key=report_dir + "report.html")["Body"].read().decode()
    assert '<a href="../../2026-11-30/alice/c1.wav.json">' in html
