"""RBAC is on: permissions follow Roles/RoleBindings, ServiceAccount tokens work."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.env.environment import Environment
from tests.env.kube import apply_yaml

pytestmark = pytest.mark.integration

RBAC = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nobody}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmap-reader}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}
subjects:
  - {kind: ServiceAccount, name: reader}
"""


def can_i(env: Environment, namespace: str, who: str, *what: str) -> str:
    result = env.kubectl(
        "auth", "can-i", *what, "-n", namespace, f"--as=system:serviceaccount:{who}", check=False
    )
    return result.stdout.strip()


def test_can_i_follows_role_bindings(test_env: Environment, namespace: str) -> None:
    apply_yaml(test_env, RBAC, namespace=namespace)
    other = f"{namespace}-elsewhere"
    test_env.kubectl("create", "namespace", other)

    try:
        assert can_i(test_env, namespace, f"{namespace}:reader", "get", "configmaps") == "yes"
        assert can_i(test_env, namespace, f"{namespace}:reader", "list", "configmaps") == "yes"
        assert can_i(test_env, namespace, f"{namespace}:reader", "delete", "configmaps") == "no"
        assert can_i(test_env, namespace, f"{namespace}:reader", "get", "secrets") == "no"
        assert can_i(test_env, namespace, f"{namespace}:nobody", "get", "configmaps") == "no"
        # A RoleBinding grants nothing outside its namespace.
        assert can_i(test_env, other, f"{namespace}:reader", "get", "configmaps") == "no"
    finally:
        test_env.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_service_account_token_authenticates_with_its_own_permissions(
    test_env: Environment, namespace: str, tmp_path: Path
) -> None:
    apply_yaml(test_env, RBAC, namespace=namespace)
    token = test_env.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    empty = tmp_path / "kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    # Only the token: the admin client certificate from KUBECONFIG must not be sent.
    as_reader = [
        f"--kubeconfig={empty}",
        f"--server={test_env.api_url}",
        f"--certificate-authority={test_env.ca_file}",
        f"--token={token}",
        "-n",
        namespace,
    ]

    whoami = test_env.kubectl(
        *as_reader, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
    )
    allowed = test_env.kubectl(*as_reader, "get", "configmaps", check=False)
    denied = test_env.kubectl(*as_reader, "get", "secrets", check=False)

    assert whoami.stdout == f"system:serviceaccount:{namespace}:reader"
    assert allowed.returncode == 0, allowed.stderr
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert f'User "system:serviceaccount:{namespace}:reader" cannot list resource "secrets"' in (
        denied.stderr
    )
