"""What `helm template` makes of the chart, read as a specification."""

from __future__ import annotations

import re
import tempfile
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


def test_the_head_runs_on_cpu_and_the_ray_autoscaler_is_on(defaults: Rendered) -> None:
    cluster = defaults.rayservice()["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]

    assert head["rayStartParams"]["num-gpus"] == "0"
    assert not any(
        "nvidia.com/gpu" in str(v) for v in defaults.head_container()["resources"].values()
    )
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 120
    assert cluster["rayVersion"] == "2.60.0"
    # KubeRay builds its serve Service from a head port named "serve".
    assert {"name": "serve", "containerPort": 8000} in defaults.head_container()["ports"]


def test_the_gpu_worker_group_is_the_elastic_pool_described_by_values(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    workers = {
        "minReplicas": 0,
        "maxReplicas": 6,
        "gpusPerWorker": 1,
        "nodeSelector": {"pool": "l4"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
    }
    rendered = render(
        helm,
        chart,
        values={"ray": {"workers": workers, "autoscaler": {"idleTimeoutSeconds": 600}}},
        tmp=tmp_path,
    )
    group = rendered.worker_group()
    pod = group["template"]["spec"]

    assert (group["minReplicas"], group["maxReplicas"], group["replicas"]) == (0, 6, 0)
    assert rendered.worker_container()["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == workers["nodeSelector"]
    assert pod["tolerations"] == workers["tolerations"]
    assert pod["affinity"] == workers["affinity"]
    assert pod["automountServiceAccountToken"] is False
    assert (
        rendered.rayservice()["spec"]["rayClusterConfig"]["autoscalerOptions"]["idleTimeoutSeconds"]
        == 600
    )


def test_the_transcriber_takes_one_gpu_and_starts_at_the_pool_floor(defaults: Rendered) -> None:
    transcriber = defaults.serve_deployment("Transcriber")
    app = defaults.serve_app()

    assert transcriber["ray_actor_options"]["num_gpus"] == 1
    assert transcriber["autoscaling_config"]["min_replicas"] == 0
    assert transcriber["autoscaling_config"]["max_replicas"] == 4
    assert "initial_replicas" not in transcriber["autoscaling_config"]
    assert app["import_path"] == "hark_serving.serve.app:build_app"
    assert app["route_prefix"] == "/"
    assert [d["name"] for d in app["deployments"]] == ["Ingress", "Worker", "Transcriber"]


def test_a_cpu_only_pool_asks_for_no_gpu(helm: Helm, chart: Path) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/cpu-dev.yaml"])

    assert "nvidia.com/gpu" not in str(rendered.worker_container()["resources"])
    assert rendered.serve_deployment("Transcriber")["ray_actor_options"]["num_gpus"] == 0
    assert rendered.serve_app()["args"]["transcriber_num_gpus"] == 0


def test_ray_containers_get_only_settings_the_serve_app_reads(defaults: Rendered) -> None:
    from hark_serving.serve.proxy_guard import PROXY_CALLBACK_ENV
    from hark_serving.serve.settings import ServeSettings

    fields = {f"HARK_{name.upper()}" for name in ServeSettings.model_fields}
    for container in (defaults.head_container(), defaults.worker_container()):
        env = env_of(container)
        assert set(env) - {"HARK_LOG_LEVEL", "HARK_LOG_FORMAT", PROXY_CALLBACK_ENV} <= fields
        # Serve's proxy loads Hark's admission control from this import path.
        assert env[PROXY_CALLBACK_ENV] == "hark_serving.serve.proxy_guard.middlewares"
        assert env["HARK_MODEL"] == "iic/SenseVoiceSmall"
        assert env["HARK_MODEL_CACHE"] == "/var/cache/hark/models"
        assert env["HARK_STORAGE_PROFILES"] == "/etc/hark/config/storage-profiles.yaml"


def test_the_model_cache_can_be_a_persistent_volume_claim(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm,
        chart,
        values={
            "model": {
                "source": "/models/SenseVoiceSmall",
                "cache": {"mountPath": "/models", "existingClaim": "sensevoice", "readOnly": True},
            }
        },
        tmp=tmp_path,
    )
    pod = rendered.worker_group()["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "model-cache")
    mount = next(
        m for m in rendered.worker_container()["volumeMounts"] if m["name"] == "model-cache"
    )

    assert volume["persistentVolumeClaim"] == {"claimName": "sensevoice", "readOnly": True}
    assert mount == {"name": "model-cache", "mountPath": "/models", "readOnly": True}
    assert env_of(rendered.worker_container())["HARK_MODEL"] == "/models/SenseVoiceSmall"


def test_the_storage_profiles_file_loads_and_its_secrets_are_mounted_where_it_says(
    helm: Helm, chart: Path
) -> None:
    from hark_serving.storage.profiles import ProfilesFile

    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    spec = ProfilesFile.model_validate(rendered.profiles_file())
    pod = rendered.worker_group()["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in rendered.worker_container()["volumeMounts"]}
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}

    assert spec.default == "archive"
    assert sorted(spec.profiles) == ["archive", "minio"]
    for profile in spec.profiles.values():
        volume = mounts[str(profile.credentials_dir)]
        assert secrets[volume] == profile.credentials_secret
    assert spec.profiles["minio"].endpoint_url == "http://minio.storage.svc:9000"


def test_with_no_profiles_the_serve_app_reaches_no_bucket(defaults: Rendered) -> None:
    from hark_serving.errors import BucketNotAllowed
    from hark_serving.serve.settings import ServeSettings
    from hark_serving.storage.uris import S3Uri

    assert defaults.profiles_file() == {"default": "default", "profiles": {}}
    path = Path(tempfile.mkdtemp()) / "profiles.yaml"
    path.write_text(yaml.safe_dump(defaults.profiles_file()))
    store = ServeSettings(storage_profiles=path).profiles().store(None)
    with pytest.raises(BucketNotAllowed):
        store.check_allowed(S3Uri("any-bucket", "a.wav"))


def test_the_http_service_selects_serve_ready_ray_pods_of_this_release(defaults: Rendered) -> None:
    service = defaults.one("Service", "hark-serve")
    head_labels = defaults.rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"][
        "metadata"
    ]["labels"]
    worker_labels = defaults.worker_group()["template"]["metadata"]["labels"]
    operator_labels = defaults.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = dict(service["spec"]["selector"])

    assert selector.pop("ray.io/serve") == "true"  # set on the pods by KubeRay
    assert selector.items() <= head_labels.items()
    assert selector.items() <= worker_labels.items()
    assert not selector.items() <= operator_labels.items()
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "serve", "protocol": "TCP"}
    ]
    assert {"name": "serve", "containerPort": 8000} in defaults.worker_container()["ports"]


def test_long_release_names_are_cut_to_what_kubernetes_and_kuberay_accept(
    helm: Helm, chart: Path
) -> None:
    release = ("transcription-" * 4)[:52] + "z"  # helm's own limit: 53 characters
    rendered = render(helm, chart, release=release)

    names = [
        d["metadata"]["name"]
        for d in rendered.docs
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding")
    ]
    assert all(len(n) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) for n in names)
    assert len(rendered.rayservice()["metadata"]["name"]) <= 47
    assert len(set((d["kind"], d["metadata"]["name"]) for d in rendered.docs)) == len(rendered.docs)
    labels = [v for d in rendered.docs for v in d["metadata"].get("labels", {}).values()]
    assert all(len(v) <= 63 for v in labels)


# -- optional resources ---------------------------------------------------------------


def test_optional_resources_are_off_by_default_and_security_is_on(defaults: Rendered) -> None:
    assert sorted(defaults.kinds()) == sorted(
        [
            "ClusterKopfPeering",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "NetworkPolicy",
            "Pod",  # the `helm test` hook: created only by `helm test`
            "RayService",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount",
            "ServiceAccount",
        ]
    )


def test_by_default_the_network_policies_admit_only_what_each_port_needs(
    defaults: Rendered,
) -> None:
    policy = defaults.one("NetworkPolicy", "hark-ray")
    ray_pods = {"podSelector": policy["spec"]["podSelector"]}
    operator_peer = {
        "podSelector": {
            "matchLabels": defaults.one("Deployment")["spec"]["selector"]["matchLabels"]
        }
    }
    rules = policy["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in rules if "ports" in rule}
    everything_from = [rule["from"] for rule in rules if "ports" not in rule]
    # GCS (6379), client (10001) and every other Ray port: Ray pods only.
    assert everything_from == [[ray_pods]]
    assert all("from" in rule and rule["from"] for rule in rules)  # no rule open to all
    assert set(by_port) == {8000, 8265, 8080}
    kuberay = [p for p in by_port[8265] if "kuberay-operator" in str(p)]
    assert by_port[8265] == [operator_peer, *kuberay]
    helm_test = {"podSelector": {"matchLabels": defaults.one("Pod")["metadata"]["labels"]}}
    helm_test["podSelector"]["matchLabels"] = {
        k: v
        for k, v in helm_test["podSelector"]["matchLabels"].items()
        if k
        in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
    }
    # No other client until configured; the `helm test` pod may ask /healthz.
    assert by_port[8000] == [operator_peer, helm_test, *kuberay]
    monitoring = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    assert by_port[8080] == [monitoring]
    operator_policy = defaults.one("NetworkPolicy", "hark-operator")
    assert [r["from"] for r in operator_policy["spec"]["ingress"]] == [[monitoring]]


def test_the_example_ingress_exposes_only_the_transcription_routes(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    rendered = render(
        helm, chart, values={"serve": {"ingressResource": {"enabled": True}}}, tmp=tmp_path
    )
    (rule,) = rendered.one("Ingress")["spec"]["rules"]
    paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
    assert paths == {
        ("/v1/transcribe", "Exact"),
        ("/v1/audio/transcriptions", "Exact"),
        ("/healthz", "Exact"),
    }


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/items", "/metrics"])
def test_an_ingress_path_that_would_publish_items_or_metrics_is_refused(
    helm: Helm, chart: Path, tmp_path: Path, path: str
) -> None:
    hosts = [{"host": "h.example.com", "paths": [{"path": path, "pathType": "Prefix"}]}]
    values = {"serve": {"ingressResource": {"enabled": True, "hosts": hosts}}}
    error = render_fails(helm, chart, values, tmp_path)
    assert f'the path "{path}" would make /v1/items or /metrics public' in error


def test_the_monitors_scrape_ports_the_pods_have(helm: Helm, chart: Path) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    pod_monitor = rendered.one("PodMonitor")
    service_monitor = rendered.one("ServiceMonitor")
    metrics_service = rendered.one("Service", "hark-operator-metrics")
    operator_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    worker_labels = rendered.worker_group()["template"]["metadata"]["labels"]

    assert pod_monitor["apiVersion"] == service_monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= worker_labels.items()
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert {"name": "metrics", "containerPort": 8080} in rendered.worker_container()["ports"]
    assert pod_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        service_monitor["spec"]["selector"]["matchLabels"].items()
        <= metrics_service["metadata"]["labels"].items()
    )
    assert metrics_service["spec"]["selector"].items() <= operator_labels.items()
    assert (
        service_monitor["spec"]["endpoints"][0]["port"]
        == metrics_service["spec"]["ports"][0]["name"]
    )


def test_the_network_policy_lets_kuberay_reach_the_dashboard_and_the_operator_the_api(
    helm: Helm, chart: Path
) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    policy = rendered.one("NetworkPolicy", "hark-ray")
    by_port = {
        rule["ports"][0]["port"]: rule.get("from")
        for rule in policy["spec"]["ingress"]
        if "ports" in rule
    }
    operator_peer = {
        "podSelector": {
            "matchLabels": rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
        }
    }

    assert operator_peer in by_port[8000]
    assert operator_peer in by_port[8265]
    assert any("kuberay-operator" in str(peer) for peer in by_port[8265])
    assert any("kuberay-operator" in str(peer) for peer in by_port[8000])
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= (
        rendered.worker_group()["template"]["metadata"]["labels"].items()
    )


def test_the_disruption_budget_covers_only_the_worker_pods(helm: Helm, chart: Path) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    selector = rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    head_labels = rendered.rayservice()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"][
        "metadata"
    ]["labels"]

    assert selector.items() <= rendered.worker_group()["template"]["metadata"]["labels"].items()
    assert not selector.items() <= head_labels.items()


def test_the_ingress_routes_to_the_http_service(helm: Helm, chart: Path) -> None:
    rendered = render(helm, chart, values_files=[REPO / "deploy/values/gpu-pool.yaml"])
    (rule,) = rendered.one("Ingress")["spec"]["rules"]

    assert rule["host"] == "hark.internal.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "hark-serve",
        "port": {"name": "http"},
    }


def test_the_notes_say_how_to_submit_a_job_watch_it_and_call_the_endpoint(
    helm: Helm, chart: Path, tmp_path: Path
) -> None:
    # `helm template` leaves NOTES.txt out; render it as a template file instead.
    notes_chart = tmp_path / "hark"
    import shutil

    shutil.copytree(chart, notes_chart)
    (notes_chart / "templates" / "notes.yaml").write_text(
        '# {{ include (print $.Template.BasePath "/NOTES.txt") . | replace "\\n" "\\n# " }}\n'
    )

    text = helm.run(
        "template",
        "hark",
        notes_chart,
        "--namespace",
        "hark",
        "--show-only",
        "templates/notes.yaml",
    ).stdout

    assert "kind: TranscriptionJob" in text
    assert "kubectl get tj" in text
    assert "port-forward svc/hark-serve 8000:8000" in text
    assert "/v1/transcribe" in text


def test_helm_test_asks_the_serve_apps_healthz_through_its_service(defaults: Rendered) -> None:
    pod = defaults.one("Pod")
    service = defaults.one("Service", "hark-serve")
    (container,) = pod["spec"]["containers"]
    port = service["spec"]["ports"][0]["port"]

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["image"] == defaults.operator_container()["image"]  # nothing else to pull
    assert f'"http://hark-serve.hark.svc:{port}/healthz"' in container["args"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_helm_test_pod_can_be_left_out(helm: Helm, chart: Path, tmp_path: Path) -> None:
    rendered = render(helm, chart, values={"helmTest": {"enabled": False}}, tmp=tmp_path)

    assert "Pod" not in rendered.kinds()
