"""`hark doctor` against the real MinIO: a reachable profile is ok, an unreachable one
fails with its fix."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hark_serving.cli import exits
from hark_serving.cli.main import app
from tests.env.environment import Environment

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_doctor_reaches_each_storage_profile(
    test_env: Environment,
    bucket: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "AWS_ACCESS_KEY_ID").write_text(test_env.s3_access_key)
    (creds / "AWS_SECRET_ACCESS_KEY").write_text(test_env.s3_secret_key)
    common = {"region": test_env.s3_region, "credentialsDir": str(creds)}
    profiles = {
        "default": "minio",
        "profiles": {
            "minio": {"endpointUrl": test_env.s3_endpoint, "allowedBuckets": [bucket], **common},
            "minio-any": {"endpointUrl": test_env.s3_endpoint, **common},
            "gone": {"endpointUrl": f"http://127.0.0.1:{closed_port()}", **common},
            "typo": {
                "endpointUrl": test_env.s3_endpoint,
                "allowedBuckets": [f"{bucket}-typo"],
                **common,
            },
        },
    }
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(profiles))
    monkeypatch.setenv("HARK_STORAGE_PROFILES", str(path))

    result = CliRunner().invoke(
        app, ["doctor", "--json", "--timeout", "3", "--model", str(tiny_model_dir)]
    )
    doc = json.loads(result.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert result.exit_code == exits.FAILURES and doc["ok"] is False

    assert checks["storage profiles"]["status"] == "ok"
    assert f"minio (default): {bucket}" in checks["storage profiles"]["detail"]
    assert checks["s3 minio"]["status"] == "ok" and bucket in checks["s3 minio"]["detail"]
    assert checks["s3 minio-any"]["status"] == "ok"

    gone = checks["s3 gone"]
    assert gone["status"] == "fail" and "cannot connect" in gone["detail"]
    assert "HARK_S3_ENDPOINT_URL or the profile's endpointUrl" in gone["fix"]
    typo = checks["s3 typo"]
    assert typo["status"] == "fail" and "no such bucket" in typo["detail"]
    assert "create the bucket" in typo["fix"]
    # Everything that is not about storage is fine, so the failures above are the exit 1.
    assert {n for n, c in checks.items() if c["status"] == "fail"} == {"s3 gone", "s3 typo"}
