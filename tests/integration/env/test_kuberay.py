"""The KubeRay CRDs (ray.io/v1) are installed and enforce their schemas."""

from __future__ import annotations

import json

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml

pytestmark = pytest.mark.integration

RAY_SERVICE = {
    "apiVersion": "ray.io/v1",
    "kind": "RayService",
    "metadata": {"name": "hark"},
    "spec": {
        "serveConfigV2": "applications:\n  - name: hark\n    import_path: hark_serving.app:app\n",
        "rayClusterConfig": {
            "headGroupSpec": {
                "rayStartParams": {},
                "template": {
                    "spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.60.0"}]}
                },
            }
        },
    },
}


@pytest.mark.parametrize("crd", ["rayservices", "rayclusters", "rayjobs"])
def test_kuberay_crd_is_established(test_env: Environment, crd: str) -> None:
    established = test_env.kubectl(
        "get",
        f"crd/{crd}.ray.io",
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
    )
    versions = test_env.kubectl(
        "get", f"crd/{crd}.ray.io", "-o", "jsonpath={.spec.versions[*].name}"
    )
    assert established.stdout == "True"
    assert "v1" in versions.stdout.split()


def test_rayservice_passes_server_side_dry_run(test_env: Environment, namespace: str) -> None:
    result = apply_yaml(test_env, json.dumps(RAY_SERVICE), namespace=namespace, dry_run=True)

    assert "rayservice.ray.io/hark serverside-applied (server dry run)" in result.stdout
    missing = test_env.kubectl("get", "rayservice", "hark", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_rayservice_schema_violation_is_rejected(test_env: Environment, namespace: str) -> None:
    bad = json.loads(json.dumps(RAY_SERVICE))
    bad["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"] = "not-a-map"

    result = apply_yaml(test_env, json.dumps(bad), namespace=namespace, dry_run=True, check=False)

    assert result.returncode != 0
    assert "spec.rayClusterConfig.headGroupSpec.rayStartParams" in result.stderr
