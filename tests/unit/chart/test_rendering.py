"""What `helm template` makes of the chart, read as a specification."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import CHART, REPO, VALUES_FILES, Helm, Rendered, env_of, render, render_fails

RBAC_KINDS = ("Role", "ClusterRole")


def rules_of(rendered: Rendered) -> list[dict[str, Any]]:
    return [rule for kind in RBAC_KINDS for role in rendered.all(kind) for rule in role["rules"]]


def grants(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, resourceName or '*') of every permission a role gives."""
    out = set()
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or ["*"]:
                        out.add((group, resource, verb, name))
    return out


JOB_GRANTS = (
    {
        ("hark.dev", "transcriptionjobs", verb, "*")
        for verb in ("get", "list", "watch", "patch", "update", "delete")
    }
    | {
        ("hark.dev", sub, verb, "*")
        for sub in ("transcriptionjobs/status", "transcriptionjobs/finalizers")
        for verb in ("get", "patch", "update")
    }
    | {("", "events", "create", "*"), ("", "events", "patch", "*")}
)


# -- the chart itself ---------------------------------------------------------------


def test_the_chart_is_api_v2_and_its_app_version_is_the_python_package_version() -> None:
    import tomllib

    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == project["version"] == "0.1.0"


def test_it_has_no_dependencies_so_it_installs_without_the_network() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())

    assert "dependencies" not in meta
    assert not (CHART / "charts").exists()


@pytest.mark.parametrize(
    "values_file", [None, *VALUES_FILES], ids=lambda p: p.name if p else "defaults"
)
def test_helm_lint_strict_passes(helm: Helm, chart: Path, values_file: Path | None) -> None:
    args = ["lint", "--strict", chart] + (["--values", values_file] if values_file else [])

    result = helm.run(*args)

    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda p: p.name)
def test_every_values_file_renders(helm: Helm, chart: Path, values_file: Path) -> None:
    rendered = render(helm, chart, values_files=[values_file])

    assert {"Deployment", "RayService", "ConfigMap", "Service"} <= set(rendered.kinds())


def test_each_template_makes_one_kind_of_resource(helm: Helm, chart: Path, tmp_path: Path) -> None:
    everything = {
        "operator": {"watchNamespaces": ["a", "b"]},
        "auth": {"enabled": True},
        "storage": {
            "profiles": {
                "x": {
                    "readBuckets": ["calls-in"],
                    "credentials": {"accessKeyId": "k", "secretAccessKey": "s"},
                }
            },
            "defaultProfile": "x",
        },
        "serve": {"ingressResource": {"enabled": True}},
        "monitoring": {
            "podMonitor": {"enabled": True},
            "serviceMonitor": {"enabled": True},
            "dashboard": {"enabled": True},
            "prometheusRule": {"enabled": True},
        },
        "networkPolicy": {"enabled": True},
        "podDisruptionBudget": {"enabled": True},
        "console": {"jobs": {"enabled": True, "namespaces": []}},
        "notifications": {"enabled": True, "tokenSecret": "hark-notify"},
    }
    cluster_wide = {**everything, "operator": {"watchNamespaces": []}}
    kinds: dict[str, set[str]] = {}
    for values in (everything, cluster_wide):
        text = render(helm, chart, values=values, tmp=tmp_path).text
        for block in text.split("\n---\n"):
            source = re.search(r"^# Source: (\S+)", block, re.M)
            doc = yaml.safe_load(block)
            if source and doc:
                kinds.setdefault(source[1], set()).add(doc["kind"])

    assert {t: k for t, k in kinds.items() if len(k) != 1} == {}
    assert len(kinds) == len(list((CHART / "templates").rglob("*.yaml")))


# -- RBAC ---------------------------------------------------------------------------


def test_it_creates_a_cluster_role_when_no_watch_namespaces_are_set(defaults: Rendered) -> None:
    # No Namespace access: a cluster-wide kopf operator never lists namespaces.
    cluster_role = defaults.one("ClusterRole")
    binding = defaults.one("ClusterRoleBinding")

    assert grants(cluster_role) == JOB_GRANTS | {
        ("kopf.dev", "clusterkopfpeerings", "get", "*"),
        ("kopf.dev", "clusterkopfpeerings", "list", "*"),
        ("kopf.dev", "clusterkopfpeerings", "watch", "*"),
        ("kopf.dev", "clusterkopfpeerings", "patch", "*"),
    }
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hark-operator", "namespace": "hark"}
    ]
    assert [r["metadata"]["namespace"] for r in defaults.all("Role")] == ["hark"]
    assert defaults.operator_env()["HARK_NAMESPACES"] == ""


def test_it_creates_a_namespaced_role_when_watch_namespaces_is_set(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm, chart, values={"operator": {"watchNamespaces": ["calls", "podcasts"]}}, tmp=tmp_path
    )

    job_roles = [r for r in rendered.all("Role") if r["metadata"]["name"] == "hark-jobs"]
    assert sorted(r["metadata"]["namespace"] for r in job_roles) == ["calls", "podcasts"]
    for role in job_roles:
        assert grants(role) == JOB_GRANTS | {
            ("kopf.dev", "kopfpeerings", verb, "*") for verb in ("get", "list", "watch", "patch")
        }
    bindings = rendered.all("RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["calls", "hark", "podcasts"]
    assert {b["subjects"][0]["namespace"] for b in bindings} == {"hark"}
    assert "ClusterRole" not in rendered.kinds()
    assert "ClusterRoleBinding" not in rendered.kinds()
    assert not any("namespaces" in rule["resources"] for rule in rules_of(rendered))
    assert rendered.operator_env()["HARK_NAMESPACES"] == "calls,podcasts"
    assert sorted(p["metadata"]["namespace"] for p in rendered.all("KopfPeering")) == [
        "calls",
        "podcasts",
    ]
    assert "ClusterKopfPeering" not in rendered.kinds()


def test_in_its_own_namespace_the_operator_reads_its_config_map_and_patches_its_rayservice(
    defaults: Rendered,
) -> None:
    own = defaults.one("Role", "hark-operator")

    assert grants(own) == {
        ("", "configmaps", "get", "hark-config"),
        ("ray.io", "rayservices", "get", "hark"),
        ("ray.io", "rayservices", "patch", "hark"),
        ("", "events", "create", "*"),  # floor changes, announced on the RayService
        ("", "events", "patch", "*"),
    }


def test_the_operator_may_read_exactly_the_secrets_of_the_storage_profiles(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    profiles = {
        "aws": {"readBuckets": ["calls-in"], "credentials": {"existingSecret": "team-s3"}},
        "minio": {
            "writeBuckets": ["calls-out"],
            "credentials": {"accessKeyId": "k", "secretAccessKey": "s"},
        },
        "irsa": {"allowedBuckets": ["calls-both"]},
    }
    rendered = render(
        helm,
        chart,
        values={"storage": {"defaultProfile": "aws", "profiles": profiles}},
        tmp=tmp_path,
    )

    secret_grants = {g for g in grants(rendered.one("Role", "hark-operator")) if g[1] == "secrets"}
    assert secret_grants == {
        ("", "secrets", "get", "team-s3"),
        ("", "secrets", "get", "hark-s3-minio"),
    }
    assert [s["metadata"]["name"] for s in rendered.all("Secret")] == [
        "hark-api-token",  # mounted into pods, never read through the API
        "hark-s3-minio",
    ]


def test_without_profile_secrets_no_rule_mentions_secrets(defaults: Rendered) -> None:
    # A rule with no resourceNames would grant every Secret in the namespace.
    assert not any("secrets" in rule["resources"] for rule in rules_of(defaults))


def test_no_rule_uses_a_wildcard_or_grants_delete_or_create_on_ray(defaults: Rendered) -> None:
    for rule in rules_of(defaults):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field]
        if "rayservices" in rule["resources"]:
            assert set(rule["verbs"]) == {"get", "patch"}
            assert rule["resourceNames"] == ["hark"]


def test_with_another_scaler_the_operator_gets_no_access_to_rayservices(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(helm, chart, values={"operator": {"scaler": "none"}}, tmp=tmp_path)

    assert not any("rayservices" in rule["resources"] for rule in rules_of(rendered))
    assert rendered.operator_env()["HARK_SCALER"] == "none"


# -- the operator Deployment ---------------------------------------------------------


def test_the_operator_runs_as_non_root_on_a_read_only_root_filesystem(defaults: Rendered) -> None:
    pod = defaults.one("Deployment")["spec"]["template"]["spec"]
    container = defaults.operator_container()
    tmp_volume = next(v for v in pod["volumes"] if v["name"] == "tmp")

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert "emptyDir" in tmp_volume
    assert pod["serviceAccountName"] == "hark-operator"
    assert container["resources"]["limits"]["memory"]


def test_the_operator_probes_hit_the_health_endpoint_it_serves(defaults: Rendered) -> None:
    container = defaults.operator_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = defaults.operator_env()

    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert ports == {
        "health": int(env["HARK_HEALTH_PORT"]),
        "metrics": int(env["HARK_METRICS_PORT"]),
    }


def test_the_operator_environment_is_a_valid_operator_settings(defaults: Rendered) -> None:
    from hark_operator.settings import OperatorSettings

    env = defaults.operator_env()
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    fields = {f"HARK_{name.upper()}" for name in OperatorSettings.model_fields}
    logging_vars = {"HARK_LOG_LEVEL", "HARK_LOG_FORMAT"}  # read by hark_serving.logs

    assert set(env) - logging_vars <= fields
    settings = OperatorSettings(
        **{k.removeprefix("HARK_").lower(): v for k, v in plain.items() if k not in logging_vars}
    )
    assert settings.scaler == "kuberay"
    assert settings.rayservice_name == defaults.rayservice()["metadata"]["name"]
    assert settings.serve_url == "http://hark-serve.hark.svc:8000"
    assert settings.storage_profiles == Path("/etc/hark/config/storage-profiles.yaml")
    assert settings.peering_name == defaults.one("ClusterKopfPeering")["metadata"]["name"]
    assert env["HARK_OPERATOR_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_the_operator_scaling_bounds_are_the_gpu_pool_times_gpus_per_worker(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm,
        chart,
        values={
            "ray": {"workers": {"minReplicas": 1, "maxReplicas": 3, "gpusPerWorker": 2}},
            "scaling": {"itemsPerReplica": 5, "scaleDownDelaySeconds": 42},
        },
        tmp=tmp_path,
    )
    env = rendered.operator_env()
    transcriber = rendered.serve_deployment("Transcriber")["autoscaling_config"]

    assert (env["HARK_SCALE_MIN_REPLICAS"], env["HARK_SCALE_MAX_REPLICAS"]) == ("2", "6")
    assert (transcriber["min_replicas"], transcriber["max_replicas"]) == (2, 6)
    assert (env["HARK_ITEMS_PER_REPLICA"], env["HARK_SCALE_DOWN_DELAY_SECONDS"]) == ("5", "42")


def test_image_tags_default_to_the_app_version_and_digests_pin_them(
    helm: Helm, chart: Path, tmp_path: Path, defaults: Rendered
) -> None:
    digest = "sha256:" + "ab" * 32
    pinned = render(helm, chart, values={"operator": {"image": {"digest": digest}}}, tmp=tmp_path)

    assert defaults.operator_container()["image"] == "ghcr.io/hark-dev/hark-operator:0.1.0"
    assert defaults.head_container()["image"] == "ghcr.io/hark-dev/hark-serve:0.1.0"
    assert defaults.worker_container()["image"] == "ghcr.io/hark-dev/hark-serve:0.1.0"
    assert pinned.operator_container()["image"] == f"ghcr.io/hark-dev/hark-operator:0.1.0@{digest}"


def test_auth_is_on_by_default_with_one_token_per_identity_read_from_files(
    defaults: Rendered,
) -> None:
    secret = defaults.one("Secret", "hark-api-token")
    assert set(secret["data"]) == {"token", "itemsToken"}
    assert secret["data"]["token"] != secret["data"]["itemsToken"]
    for container in (defaults.head_container(), defaults.worker_container()):
        env = env_of(container)
        assert env["HARK_API_TOKEN_FILE"] == "/etc/hark/auth/token"
        assert env["HARK_ITEMS_TOKEN_FILE"] == "/etc/hark/auth/itemsToken"
        assert "HARK_API_TOKEN" not in env and "HARK_ITEMS_TOKEN" not in env
        assert {"name": "auth", "mountPath": "/etc/hark/auth", "readOnly": True} in container[
            "volumeMounts"
        ]
    operator = defaults.operator_container()
    # The operator holds only its own token: no client token, no way to call the client routes.
    assert env_of(operator)["HARK_ITEMS_TOKEN_FILE"] == "/etc/hark/auth/itemsToken"
    assert "HARK_API_TOKEN_FILE" not in env_of(operator)
    (auth,) = [v for v in defaults.one("Deployment")["spec"]["template"]["spec"]["volumes"]
               if v["name"] == "auth"]  # fmt: skip
    assert auth["secret"]["secretName"] == "hark-api-token"
    assert auth["secret"]["items"] == [{"key": "itemsToken", "path": "itemsToken"}]


def test_given_tokens_or_an_existing_secret_replace_the_generated_ones(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    made = render(
        helm, chart, values={"auth": {"token": "t0k", "itemsToken": "1t3m"}}, tmp=tmp_path
    )
    assert made.one("Secret", "hark-api-token")["data"] == {
        "token": "dDBr",
        "itemsToken": "MXQzbQ==",
    }
    existing = render(
        helm,
        chart,
        values={"auth": {"existingSecret": "api", "secretKey": "bearer", "itemsSecretKey": "op"}},
        tmp=tmp_path,
    )
    assert "hark-api-token" not in [s["metadata"]["name"] for s in existing.all("Secret")]
    assert env_of(existing.worker_container())["HARK_ITEMS_TOKEN_FILE"] == "/etc/hark/auth/op"
    assert env_of(existing.head_container())["HARK_API_TOKEN_FILE"] == "/etc/hark/auth/bearer"
    head_volumes = defaults_volumes(existing)
    assert head_volumes["auth"]["secret"]["secretName"] == "api"


def defaults_volumes(rendered: Rendered) -> dict[str, Any]:
    spec = rendered.rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    return {v["name"]: v for v in spec["volumes"]}


def test_ray_pods_outlive_the_worker_drain_and_spool_to_a_sized_volume(defaults: Rendered) -> None:
    cluster = defaults.rayservice()["spec"]["rayClusterConfig"]
    specs = [
        cluster["headGroupSpec"]["template"]["spec"],
        defaults.worker_group()["template"]["spec"],
    ]
    for spec in specs:
        assert spec["terminationGracePeriodSeconds"] >= 600
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["spool"]["emptyDir"] == {"sizeLimit": "16Gi"}
        (container,) = spec["containers"]
        assert env_of(container)["HARK_UPLOAD_DIR"] == "/var/lib/hark/spool"
        assert container["resources"]["limits"]["ephemeral-storage"] == "24Gi"
        assert {"name": "spool", "mountPath": "/var/lib/hark/spool"} in container["volumeMounts"]


def test_a_grace_period_shorter_than_the_drain_is_refused(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    error = render_fails(helm, chart, {"ray": {"terminationGracePeriodSeconds": 30}}, tmp_path)
    assert "terminationGracePeriodSeconds" in error


def test_without_peering_the_operator_runs_standalone_and_is_never_doubled(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm, chart, values={"operator": {"peering": {"enabled": False}}}, tmp=tmp_path
    )

    assert rendered.operator_env()["HARK_STANDALONE"] == "true"
    assert rendered.one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert "ClusterKopfPeering" not in rendered.kinds()
    assert not any("clusterkopfpeerings" in r["resources"] for r in rules_of(rendered))


# -- the RayService -----------------------------------------------------------------
