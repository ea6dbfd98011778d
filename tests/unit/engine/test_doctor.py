"""`hark doctor`: each check's decision from plain facts, and the command on this machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)
from typer.testing import CliRunner

from hark_serving.cli import exits
from hark_serving.cli.checks import (
    Check,
    check_cuda,
    check_funasr,
    check_hub_not_cached,
    check_model_dir,
    check_profiles,
    check_s3,
    check_s3_model,
    check_torch,
    check_torchaudio,
    classify_s3_error,
    exit_code,
)
from hark_serving.cli.main import app
from hark_serving.engine.devices import TorchCuda
from hark_serving.engine.libraries import Libraries
from hark_serving.storage.profiles import StorageProfile

GOOD = Libraries("2.11.0", None, "2.11.0", None, "1.4.16", None)


def test_working_libraries_are_ok() -> None:
    assert [c.status for c in (check_torch(GOOD), check_torchaudio(GOOD), check_funasr(GOOD))] == [
        "ok",
        "ok",
        "ok",
    ]


def test_a_mismatched_torchaudio_fails_with_the_pip_command_and_funasr_points_at_it() -> None:
    libs = Libraries(
        "2.11.0+cpu", None, "2.11.1", OSError("undefined symbol"), "1.4.16", TypeError("None")
    )
    audio = check_torchaudio(libs)
    assert audio.status == "fail"
    assert audio.detail.startswith("torchaudio 2.11.1 cannot load with torch 2.11.0+cpu")
    assert audio.fix.endswith(
        "pip install torchaudio==2.11.0 --index-url https://download.pytorch.org/whl/cpu"
    )
    funasr = check_funasr(libs)
    assert funasr.status == "fail" and funasr.fix == "fix torchaudio first (funasr imports it)"


def test_missing_torch_fails_everything_after_it_with_the_install_command() -> None:
    libs = Libraries(None)
    assert check_torch(libs).status == "fail" and "pip install" in check_torch(libs).fix
    assert check_torchaudio(libs).fix == "fix torch first"
    assert check_cuda(False, None).status == "warn"


def test_cuda_checks() -> None:
    assert check_cuda(False, TorchCuda("2.11.0+cpu", None, False)).status == "ok"
    unused = check_cuda(True, TorchCuda("2.11.0+cpu", None, False))
    assert unused.status == "warn" and "CPU-only build" in unused.detail
    assert unused.fix.startswith("install a CUDA build: pip install torch==2.11.0")
    working = check_cuda(True, TorchCuda("2.11.0+cu128", "12.8", True), ["NVIDIA L4"])
    assert working == Check("cuda", "ok", "CUDA 12.8: NVIDIA L4")


def test_model_checks() -> None:
    assert check_model_dir("/m", "/m", None).status == "ok"
    missing = check_model_dir("/m", "/m", "/m: not a SenseVoiceSmall model directory; a layout")
    assert missing == Check(
        "model", "fail", "/m: not a SenseVoiceSmall model directory", "a layout"
    )
    assert check_hub_not_cached("iic/SenseVoiceSmall", "ModelScope", "/c").status == "warn"
    assert check_s3_model("s3://b/m/", ["config.yaml", "model.pt", "am.mvn"], None).status == "ok"
    partial = check_s3_model("s3://b/m/", ["config.yaml"], None)
    assert partial.status == "fail" and "missing model.pt" in partial.detail


def test_profile_and_s3_checks() -> None:
    profiles = {
        "minio": StorageProfile(endpoint_url="http://m:9000", allowed_buckets=("in", "out")),
        "aws": StorageProfile(),
    }
    ok = check_profiles("/etc/p.yaml", "minio", profiles, None)
    assert ok.status == "ok" and "minio (default): in, out" in ok.detail and "aws: any" in ok.detail
    bad = check_profiles("/etc/p.yaml", "", None, "storage profiles in /etc/p.yaml are invalid")
    assert bad.status == "fail" and "HARK_STORAGE_PROFILES" in bad.fix

    assert check_s3("minio", "http://m:9000", ["in"], None).status == "ok"
    down = check_s3("minio", "http://m:9000", ["in"], "unreachable", "cannot connect")
    assert down.status == "fail" and "HARK_S3_ENDPOINT_URL" in down.fix
    optional = check_s3("default", None, [], "no_credentials", "no credentials", configured=False)
    assert optional.status == "warn"


def test_s3_errors_are_classified_by_what_fixes_them() -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
            "HeadBucket",
        )

    assert classify_s3_error(NoCredentialsError())[0] == "no_credentials"
    assert classify_s3_error(EndpointConnectionError(endpoint_url="http://x"))[0] == "unreachable"
    assert classify_s3_error(ConnectTimeoutError(endpoint_url="http://x"))[0] == "unreachable"
    assert classify_s3_error(client_error("403", 403))[0] == "denied"
    assert classify_s3_error(client_error("InvalidAccessKeyId", 403))[0] == "denied"
    assert classify_s3_error(client_error("404", 404))[0] == "no_bucket"
    assert classify_s3_error(client_error("SlowDown", 503))[0] == "other"


def test_only_a_failure_fails_the_doctor() -> None:
    assert exit_code([Check("a", "ok", ""), Check("b", "warn", "")]) == 0
    assert exit_code([Check("a", "ok", ""), Check("b", "fail", "")]) == 1


def doctor(*args: str) -> tuple[int, dict[str, Check]]:
    result = CliRunner().invoke(app, ["doctor", "--json", "--no-s3", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    doc = json.loads(result.stdout)
    assert doc["ok"] is (result.exit_code == 0)
    return result.exit_code, {c["name"]: Check(**c) for c in doc["checks"]}


def test_doctor_on_this_machine_with_the_fixture_model(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARK_STORAGE_PROFILES", raising=False)
    code, checks = doctor("--model", str(tiny_model_dir))
    assert code == exits.OK
    assert [checks[n].status for n in ("torch", "torchaudio", "funasr", "settings", "model")] == [
        "ok"
    ] * 5
    assert checks["cuda"].status in ("ok", "warn")  # a warning has its fix
    assert checks["cuda"].status == "ok" or checks["cuda"].fix


def test_doctor_fails_on_a_broken_model_dir_and_bad_profiles(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.pt").unlink()
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("default: nope\nprofiles:\n  minio:\n    endpointUrl: http://m:9000\n")
    monkeypatch.setenv("HARK_STORAGE_PROFILES", str(profiles))
    code, checks = doctor("--model", str(broken))
    assert code == exits.FAILURES
    assert checks["model"].status == "fail" and "missing model.pt" in checks["model"].detail
    assert "HARK_MODEL" in checks["model"].fix
    assert checks["storage profiles"].status == "fail"
    assert "'nope' is not among minio" in checks["storage profiles"].detail


def test_doctor_table_lists_each_check(tiny_model_dir: Path) -> None:
    result = CliRunner().invoke(app, ["doctor", "--no-s3", "--model", str(tiny_model_dir)])
    assert result.exit_code == exits.OK
    for name in ("torch", "torchaudio", "funasr", "cuda", "model", "storage profiles"):
        assert name in result.stdout
