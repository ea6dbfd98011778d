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
from tests.env.kube import apply_yaml, wait_for
from tests.fixtures.calls import synthetic_call

from .conftest import (
    create_secret,
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


def test_a_watch_job_writes_a_report_per_day_of_completion_and_rewrites_it_as_calls_finish(
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
    upload(s3, bucket, {"in/2026-11-30/alice/c1.wav": call})
    create_secret(test_env, namespace)
    url: str = item_server.url  # type: ignore[attr-defined]
    environ = operator_environ(test_env, namespace, tmp_path, url, HARK_REPORT_INTERVAL_SECONDS="1")
    manifest = job_manifest(
        "daily", bucket, mode="Watch", pollIntervalSeconds=1,
        options={"channels": "split", "roles": ["agent", "customer"]}, analytics=ANALYTICS,
    )  # fmt: skip
    folder = f"out/_hark/{namespace}.daily"

    def completed(key: str) -> str:
        """The UTC day on which a transcript was completed."""
        doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return str(doc["created_at"])[:10]

    def report_files(day: str) -> list[str] | None:
        report = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{folder}/{day}/report.json")["Body"].read()
        )
        return sorted(r["file"] for r in report["rows"])

    with kopf_operator(monkeypatch, environ, namespace):
        apply_yaml(test_env, manifest, namespace=namespace)
        first = wait_for(
            lambda: completed("out/2026-11-30/alice/c1.wav.json"), timeout=240, message="c1"
        )
        assert wait_for(lambda: report_files(first), timeout=60, message="the day's report") == [
            "2026-11-30/alice/c1.wav"
        ]
        upload(s3, bucket, {"in/2026-11-30/bob/c2.wav": call})
        second = wait_for(
            lambda: completed("out/2026-11-30/bob/c2.wav.json"), timeout=120, message="c2"
        )
        want = sorted(["2026-11-30/alice/c1.wav"] * (first == second) + ["2026-11-30/bob/c2.wav"])
        wait_for(lambda: report_files(second) == want, timeout=60, message="the report rewritten")

    # One folder per day, no report of the whole drop folder; links lead back up to out/.
    reports = [k for k in keys(s3, bucket, f"{folder}/") if not k.endswith("summary.json")]
    days = sorted({first, second})
    assert reports == sorted(
        f"{folder}/{d}/{name}" for d in days for name in ("calls.csv", "report.html", "report.json")
    )
    body = s3.get_object(Bucket=bucket, Key=f"{folder}/{second}/calls.csv")["Body"].read()
    rows = list(csv.DictReader(body.decode().splitlines()))
    assert [(r["file"], r["alerts"]) for r in rows] == [(f, "long-silence") for f in want]
    html = s3.get_object(Bucket=bucket, Key=f"{folder}/{second}/report.html")["Body"].read()
    assert '<a href="../../../2026-11-30/bob/c2.wav.json">' in html.decode()
