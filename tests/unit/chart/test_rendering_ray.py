"""The Ray pods the chart renders: CPU head, the elastic GPU worker group, the
Transcriber's GPU, the settings and volumes the Serve app reads, the HTTP Service and names."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, Helm, Rendered, env_of, render


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
    # The CPU fast path: precision auto (int8 on a CPU) and the replica's CPU batch budget.
    assert not {"precision", "batch_frames"} & set(rendered.serve_app()["args"])


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
