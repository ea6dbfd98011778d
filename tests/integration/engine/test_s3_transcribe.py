"""`hark transcribe` with S3 inputs and outputs on a real MinIO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hark_serving.cli.main import app
from hark_serving.transcript.schema import validate_result
from tests.env.environment import Environment

pytestmark = pytest.mark.integration


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["transcribe", *args, "--quiet"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


def test_an_s3_prefix_is_transcribed_into_an_s3_prefix_keeping_relative_keys(
    s3_env: Environment, s3: Any, bucket: str, audio_dir: Path, tiny_model_dir: Path
) -> None:
    s3.upload_file(str(audio_dir / "one_sentence_16k.wav"), bucket, "in/p/a.wav")
    s3.upload_file(str(audio_dir / "speech_en.mp3"), bucket, "in/p/deep/er/b.mp3")
    s3.upload_file(str(audio_dir / "broken_not_audio.mp3"), bucket, "in/p/bad.mp3")
    s3.put_object(Bucket=bucket, Key="in/p/readme.txt", Body=b"not audio")

    code, text = cli(
        f"s3://{bucket}/in/p/", "--out", f"s3://{bucket}/out/q/", "--formats", "json,vtt",
        "--model", str(tiny_model_dir),
    )  # fmt: skip
    assert code == 1, text  # the broken file fails the run, at the end
    assert keys(s3, bucket, "out/") == [
        "out/q/a.wav.json", "out/q/a.wav.vtt", "out/q/bad.mp3.error.json",
        "out/q/deep/er/b.mp3.json", "out/q/deep/er/b.mp3.vtt",
    ]  # fmt: skip
    head = s3.head_object(Bucket=bucket, Key="in/p/deep/er/b.mp3")
    out = s3.head_object(Bucket=bucket, Key="out/q/deep/er/b.mp3.json")
    doc = json.loads(s3.get_object(Bucket=bucket, Key="out/q/deep/er/b.mp3.json")["Body"].read())
    validate_result(doc)
    assert doc["source"]["uri"] == f"s3://{bucket}/in/p/deep/er/b.mp3"
    assert doc["source"]["etag"] == head["ETag"].strip('"')
    assert out["Metadata"]["hark-source-etag"] == head["ETag"].strip('"')
    assert out["ContentType"].startswith("application/json")
    error = json.loads(s3.get_object(Bucket=bucket, Key="out/q/bad.mp3.error.json")["Body"].read())
    assert error["code"] == "unsupported_format"

    # A second run finds everything current and transcribes nothing.
    code, text = cli(
        f"s3://{bucket}/in/p/", "--out", f"s3://{bucket}/out/q/", "--formats", "json,vtt",
        "--model", str(tiny_model_dir),
    )  # fmt: skip
    assert "1 to transcribe, 2 already current" in text  # only the broken file is retried


def test_a_local_folder_can_go_to_s3_and_an_s3_object_to_a_local_folder(
    s3_env: Environment, s3: Any, bucket: str, audio_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    code, text = cli(
        str(audio_dir / "speech_ko_16k.wav"),
        "--out",
        f"s3://{bucket}/o/",
        "--model",
        str(tiny_model_dir),
    )
    assert code == 0, text
    assert keys(s3, bucket) == ["o/speech_ko_16k.wav.json"]
    s3.upload_file(str(audio_dir / "speech_en.webm"), bucket, "x/y.webm")
    code, text = cli(
        f"s3://{bucket}/x/y.webm", "--out", str(tmp_path), "--model", str(tiny_model_dir)
    )
    assert code == 0, text
    assert json.loads((tmp_path / "y.webm.json").read_text())["source"]["format"] == "webm"


def test_an_unreachable_object_store_is_a_clear_error_that_names_it(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    monkeypatch.setenv("HARK_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, text = cli("s3://calls/in/", "--out", str(tmp_path), "--model", str(tiny_model_dir))
    assert code == 4  # the documented "object store unreachable" code: a retry can succeed
    assert "s3://calls/in/" in text and "cannot reach the object store" in text
    assert list(tmp_path.iterdir()) == []


def test_a_bucket_outside_the_allow_list_is_refused_before_any_work(
    s3_env: Environment,
    bucket: str,
    tmp_path: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HARK_ALLOWED_BUCKETS", "some-other-bucket")
    code, text = cli(f"s3://{bucket}/in/", "--out", str(tmp_path), "--model", str(tiny_model_dir))
    assert code == 2 and "not in the allowed buckets of storage profile 'default'" in text
