"""End to end: the operator dispatches a job to the real Serve application `hark`
(local Ray Serve, tiny model), which reads and writes MinIO itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml
from tests.integration.serve.conftest import app_args, deploy

from .conftest import (
    create_secret,
    job_manifest,
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


def test_a_batch_job_runs_on_the_serve_application(
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
    profiles = serve_profiles(test_env, tmp_path, bucket)
    upload(s3, bucket, {
        "in/a/speech_en.mp3": audio_dir / "speech_en.mp3",
        "in/one_sentence_16k.wav": audio_dir / "one_sentence_16k.wav",
        "in/call_stereo_8k.wav": audio_dir / "call_stereo_8k.wav",
        "in/broken_truncated.wav": audio_dir / "broken_header_only.wav",
    })  # fmt: skip
    create_secret(test_env, namespace)
    environ = operator_environ(test_env, namespace, tmp_path, serve_url)
    manifest = job_manifest(
        "serve", bucket, options={"channels": "split", "timestamps": "word"},
        output={"uri": f"s3://{bucket}/out/", "formats": ["vtt"]},
    )  # fmt: skip
    with (
        deploy(serve_url, app_args(tiny_model_dir, storage_profiles=str(profiles))),
        kopf_operator(monkeypatch, environ, namespace),
    ):
        apply_yaml(test_env, manifest, namespace=namespace)
        job = wait_phase(test_env, namespace, "serve", {"Succeeded", "Failed"}, timeout=180)
    status = job["status"]
    assert status["phase"] == "Succeeded", status
    assert status["counts"]["succeeded"] == 3 and status["counts"]["failed"] == 1
    out = set(keys(s3, bucket, "out/"))
    assert {
        "out/a/speech_en.mp3.json",
        "out/a/speech_en.mp3.vtt",
        "out/call_stereo_8k.wav.json",
    } <= out
    assert "out/broken_truncated.wav.error.json" in out
    call = json.loads(
        s3.get_object(Bucket=bucket, Key="out/call_stereo_8k.wav.json")["Body"].read()
    )
    assert call["options"]["channels"] == "split" and {s["channel"] for s in call["segments"]} == {
        0,
        1,
    }
    meta = s3.head_object(Bucket=bucket, Key="out/one_sentence_16k.wav.json")["Metadata"]
    etag = s3.head_object(Bucket=bucket, Key="in/one_sentence_16k.wav")["ETag"].strip('"')
    assert meta["hark-source-etag"] == etag
