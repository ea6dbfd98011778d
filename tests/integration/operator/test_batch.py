"""A Batch job over a mixed prefix, run by the real operator against the real API server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml

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

MIXED = {
    "in/speech_en.mp3": "speech_en.mp3",
    "in/2024/05/speech_en.ogg": "speech_en.ogg",
    "in/2024/video_en.mp4": "video_en.mp4",
    "in/calls/one_sentence_16k.wav": "one_sentence_16k.wav",
    "in/calls/deep/speech_en_48k.flac": "speech_en_48k.flac",
    "in/broken/broken_not_audio.mp3": "broken_not_audio.mp3",
}


def test_batch_job_over_a_mixed_prefix_succeeds(
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
    upload(s3, bucket, {k: audio_dir / v for k, v in MIXED.items()})
    upload(s3, bucket, {"in/notes.txt": b"not audio", "in/calls/.hidden.mp3": b"x"})
    create_secret(test_env, namespace)
    environ = operator_environ(test_env, namespace, tmp_path, item_server.url)  # type: ignore[attr-defined]

    with kopf_operator(monkeypatch, environ, namespace):
        apply_yaml(
            test_env,
            job_manifest(
                "mixed", bucket, output={"uri": f"s3://{bucket}/out/", "formats": ["srt", "txt"]}
            ),
            namespace=namespace,
        )
        job = wait_phase(test_env, namespace, "mixed", {"Succeeded", "Failed"})
        table = test_env.kubectl("get", "tj", "-n", namespace).stdout

    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["counts"] == {
        "total": 6, "succeeded": 5, "failed": 1, "skipped": 0, "inFlight": 0, "pending": 0
    }  # fmt: skip
    assert status["progress"] == "5/6"
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Complete"]["status"] == "True"
    assert conditions["Progressing"]["status"] == "False"
    assert all(
        {"type", "status", "reason", "message", "lastTransitionTime"} <= set(c)
        for c in conditions.values()
    )
    assert [f["key"] for f in status["recentFailures"]] == [
        f"s3://{bucket}/in/broken/broken_not_audio.mp3"
    ]
    assert status["recentFailures"][0]["reason"] == "unsupported_format"

    out = keys(s3, bucket, "out/")
    for key in MIXED:
        rel = key.removeprefix("in/")
        if "broken" in rel:
            assert f"out/{rel}.error.json" in out and f"out/{rel}.json" not in out
        else:
            assert {f"out/{rel}.json", f"out/{rel}.srt", f"out/{rel}.txt"} <= set(out), rel
    assert not any("notes.txt" in k or ".hidden" in k for k in out)
    one = json.loads(
        s3.get_object(Bucket=bucket, Key="out/2024/05/speech_en.ogg.json")["Body"].read()
    )
    assert one["schema"] == "hark.transcript/v1"

    summary_key = f"out/_hark/{namespace}.mixed/summary.json"
    assert status["summaryUri"] == f"s3://{bucket}/{summary_key}"
    summary = json.loads(s3.get_object(Bucket=bucket, Key=summary_key)["Body"].read())
    assert summary["counts"]["succeeded"] == 5 and summary["files_summarized"] == 5
    assert summary["failures"][0]["code"] == "unsupported_format"
    assert (
        summary["audio_seconds"] == pytest.approx(status["audioSeconds"], abs=0.01)
        and summary["audio_seconds"] > 0
    )

    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "DONE", "FAILED", "AGE"]
    assert row.split()[:4] == ["mixed", "Succeeded", "5/6", "1"]

    events = test_env.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=mixed",
        "-o",
        "json",
    )
    reasons = {e["reason"] for e in json.loads(events.stdout)["items"]}
    assert {"Started", "ItemFailed", "Completed"} <= reasons
