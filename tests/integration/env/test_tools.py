"""The pinned tools are the versions we pinned, and a missing tool fails loudly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.env import versions
from tests.env.build import ToolsMissingError, tools_or_fail
from tests.env.environment import Environment

pytestmark = pytest.mark.integration


def _out(*cmd: str | Path) -> str:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=True)
    return result.stdout + result.stderr


def test_missing_tools_fail_with_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(ToolsMissingError) as err:
        tools_or_fail(tmp_path)
    message = str(err.value)
    assert "python -m tests.env build" in message
    assert f"kube-apiserver {versions.KUBERNETES}" in message
    assert f"etcd {versions.ETCD}" in message


def test_binaries_report_their_pinned_versions() -> None:
    tools = tools_or_fail()
    kubectl = json.loads(_out(tools.kubectl, "version", "--client", "-o", "json"))

    assert kubectl["clientVersion"]["gitVersion"] == versions.KUBERNETES
    assert _out(tools.kube_apiserver, "--version").strip() == f"Kubernetes {versions.KUBERNETES}"
    assert f"etcd Version: {versions.ETCD[1:]}" in _out(tools.etcd, "--version")
    assert versions.HELM in _out(tools.helm, "version", "--short")
    assert versions.KUBECONFORM in _out(tools.kubeconform, "-v")
    minio = _out(tools.minio, "--version")
    assert f"RELEASE.{versions.MINIO_COMMIT_TIME.replace(':', '-')}" in minio
    assert f"commit-id={versions.MINIO[-12:]}" in minio
    crds = sorted(p.name for p in tools.kuberay_crds.glob("*.yaml"))
    assert {"ray.io_rayclusters.yaml", "ray.io_rayjobs.yaml", "ray.io_rayservices.yaml"} <= set(
        crds
    )


def test_api_server_reports_the_pinned_version(test_env: Environment) -> None:
    server = json.loads(test_env.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert server["gitVersion"] == versions.KUBERNETES


def test_env_sh_matches_env(test_env: Environment) -> None:
    script = (test_env.dir / "env.sh").read_text()
    shown = subprocess.run(
        ["bash", "-c", f". {test_env.dir}/env.sh && env -0"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    sourced = dict(item.split("=", 1) for item in shown.split("\0") if "=" in item)
    expected = test_env.env()
    for key in test_env.variables():
        assert sourced[key] == expected[key], key
    assert sourced["PATH"].split(":")[0] == str(test_env.bin_dir)
    assert "export AWS_ENDPOINT_URL=" in script
