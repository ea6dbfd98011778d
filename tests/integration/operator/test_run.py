"""`hark run -f job.yaml`: the same manifest, on one machine, without a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.env.environment import Environment

from .conftest import REPO, job_manifest, keys, upload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def test_hark_run_executes_a_job_manifest_in_process(
    test_env: Environment,
    bucket: str,
    s3: S3Client,
    audio_dir: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    upload(s3, bucket, {
        "in/x/speech_en.ogg": audio_dir / "speech_en.ogg",
        "in/one.wav": audio_dir / "one_sentence_16k.wav",
        "in/bad.mp3": audio_dir / "broken_not_audio.mp3",
    })  # fmt: skip
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        job_manifest("local", bucket, output={"uri": f"s3://{bucket}/out/", "formats": ["txt"]})
    )
    env = test_env.env()
    env.update(
        HARK_MODEL=str(tiny_model_dir), HARK_DEVICE="cpu", HARK_THREADS="1",
        HARK_S3_ENDPOINT_URL=test_env.s3_endpoint, HARK_S3_ADDRESSING_STYLE="path",
    )  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "hark_serving.cli.main", "run", "-f", str(manifest), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr  # one file failed
    assert "Succeeded: 2/3 transcribed" in run.stderr, run.stderr
    assert "bad.mp3: unsupported_format" in run.stderr
    out = set(keys(s3, bucket, "out/"))
    assert {
        "out/x/speech_en.ogg.json",
        "out/x/speech_en.ogg.txt",
        "out/one.wav.json",
        "out/bad.mp3.error.json",
    } <= out
    summary = json.loads(
        s3.get_object(Bucket=bucket, Key="out/_hark/default.local/summary.json")["Body"].read()
    )
    assert summary["counts"]["succeeded"] == 2 and summary["counts"]["failed"] == 1

    again = subprocess.run(
        [sys.executable, "-m", "hark_serving.cli.main", "run", "-f", str(manifest), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "2/3 transcribed (2 already current)" in again.stderr, again.stderr


def test_hark_run_names_the_bad_field(tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: hark.dev/v1alpha1\nkind: TranscriptionJob\nmetadata: {name: j}\n"
        "spec:\n  input: {uri: 'http://x/'}\n  output: {uri: s3://out-b/q/}\n  mode: Watch\n"
        "  ttlSecondsAfterFinished: 3\n  options: {language: fr}\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "hark_serving.cli.main", "run", "-f", str(manifest)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "spec.input.uri" in run.stderr and "spec.options.language" in run.stderr, run.stderr
